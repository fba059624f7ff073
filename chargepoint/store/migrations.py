"""Numbered schema migrations of the persistent store.

They live in a Python module rather than in ``.sql`` files so that they ship inside the wheel without any
package-data configuration. Rules that keep upgrades safe on chargers in the field:

- numbers start at 1 and never skip; ``PRAGMA user_version`` holds the number of the last one applied;
- a released migration is never edited, only followed by a new one;
- no ``IF NOT EXISTS``: running a migration twice must fail loudly rather than hide a version mix-up.
"""

from __future__ import annotations

from typing import Final

# Datetimes are ISO-8601 UTC text (``2024-05-01T12:00:00.000000+00:00``): fixed width, so text order is
# time order, and readable with the sqlite3 shell on a charger in the field.
_0001_SESSIONS: Final = """
CREATE TABLE sessions (
    seq                 INTEGER PRIMARY KEY,
    session_id          TEXT    NOT NULL UNIQUE,
    connector_id        INTEGER NOT NULL,
    id_tag              TEXT    NOT NULL,
    started_at          TEXT    NOT NULL,
    meter_start_Wh      INTEGER NOT NULL,
    stopped_at          TEXT    NULL,
    meter_stop_Wh       INTEGER NULL,
    stop_reason         TEXT    NULL,
    last_meter_Wh       INTEGER NOT NULL,
    last_meter_at       TEXT    NOT NULL,
    -- Filled in by the OCPP adapter once StartTransaction.conf arrives (possibly long after, if offline).
    csms_transaction_id INTEGER NULL,
    -- A session is either open (no stop fields) or closed (all of them): never half-closed.
    CHECK ((stopped_at IS NULL) = (meter_stop_Wh IS NULL)),
    CHECK ((stopped_at IS NULL) = (stop_reason IS NULL))
);
-- Boot recovery and the runtime look up open sessions; a partial index keeps that cheap forever.
CREATE INDEX sessions_open ON sessions (connector_id) WHERE stopped_at IS NULL;
CREATE INDEX sessions_started_at ON sessions (started_at);
"""

_0002_KV: Final = """
CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# OCPP state. The outbox holds transaction messages (and, while offline, other messages that must survive)
# from before they are sent until the CSMS answered; AUTOINCREMENT so a deleted head's seq is never reused
# and the order of delivery is the order of insertion, across restarts.
_0003_OCPP: Final = """
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    action     TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    session_id TEXT    NULL REFERENCES sessions (session_id),
    attempts   INTEGER NOT NULL DEFAULT 0,
    not_before REAL    NOT NULL DEFAULT 0,
    created_at TEXT    NOT NULL
);
CREATE TABLE auth_cache (
    id_tag        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    expiry_date   TEXT NULL,
    parent_id_tag TEXT NULL,
    updated_at    TEXT NOT NULL
);
CREATE TABLE local_auth_list (
    id_tag        TEXT PRIMARY KEY,
    status        TEXT NOT NULL,
    expiry_date   TEXT NULL,
    parent_id_tag TEXT NULL
);
CREATE TABLE charging_profiles (
    profile_id   INTEGER PRIMARY KEY,
    connector_id INTEGER NOT NULL,
    purpose      TEXT    NOT NULL,
    stack_level  INTEGER NOT NULL,
    payload      TEXT    NOT NULL
);
CREATE TABLE reservations (
    reservation_id INTEGER PRIMARY KEY,
    connector_id   INTEGER NOT NULL,
    id_tag         TEXT    NOT NULL,
    parent_id_tag  TEXT    NULL,
    expiry_date    TEXT    NOT NULL
);
CREATE UNIQUE INDEX sessions_csms_transaction_id ON sessions (csms_transaction_id)
    WHERE csms_transaction_id IS NOT NULL;
"""

# Pricing. A session's tariff snapshot, running and final cost live beside the session, written in the same
# transactions as the session's own rows; money is TEXT holding a Decimal, never REAL.
_0004_PRICING: Final = """
CREATE TABLE session_pricing (
    session_id     TEXT PRIMARY KEY REFERENCES sessions (session_id),
    tariff_id      TEXT    NULL,
    tariff         TEXT    NULL,
    package        TEXT    NULL,
    currency       TEXT    NOT NULL,
    limits         TEXT    NOT NULL,
    prepaid_id_tag TEXT    NULL,
    meter_state    TEXT    NULL,
    breakdown      TEXT    NULL,
    cost           TEXT    NULL,
    final          INTEGER NOT NULL DEFAULT 0,
    csms_cost      TEXT    NULL,
    csms_final     INTEGER NOT NULL DEFAULT 0,
    csms_text      TEXT    NULL
);
CREATE TABLE prepaid_accounts (
    id_tag     TEXT PRIMARY KEY,
    balance    TEXT NOT NULL,
    currency   TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Every change of a balance, so a disputed balance can be explained; a session debits at most once.
CREATE TABLE prepaid_ledger (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id_tag        TEXT NOT NULL,
    session_id    TEXT NULL UNIQUE,
    amount        TEXT NOT NULL,
    balance_after TEXT NOT NULL,
    at            TEXT NOT NULL,
    note          TEXT NULL
);
CREATE TABLE user_prices (
    id_tag      TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    received_at TEXT NOT NULL
);
"""

# Faults: every raise and clearance with time, code and source; the latched ones survive restarts.
_0005_FAULTS: Final = """
CREATE TABLE fault_log (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL,
    connector_id INTEGER NOT NULL,
    code         TEXT NOT NULL,
    action       TEXT NOT NULL CHECK (action IN ('raised', 'latched', 'cleared')),
    source       TEXT NOT NULL
);
CREATE TABLE latched_faults (
    connector_id INTEGER NOT NULL,
    code         TEXT NOT NULL,
    since        TEXT NOT NULL,
    PRIMARY KEY (connector_id, code)
);
"""

# The idTag that stopped a session (OCPP StopTransaction.idTag): a card of the group may stop another's session.
_0006_STOP_ID_TAG: Final = """
ALTER TABLE sessions ADD COLUMN stop_id_tag TEXT;
"""

# The security log (OCPP 1.6 security extension, GetLog SecurityLog): every event, bounded.
_0007_SECURITY_LOG: Final = """
CREATE TABLE security_log (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT    NOT NULL,
    type      TEXT    NOT NULL,
    tech_info TEXT    NOT NULL,
    critical  INTEGER NOT NULL,
    queued    INTEGER NOT NULL
);
"""

# The tamper-evident ledger (store/ledger.py): sessions and payment steps, hash-chained.
_0008_LEDGER: Final = """
CREATE TABLE ledger (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    signature TEXT NULL
);
"""

# How a session was paid for (rfid, card, qr, remote, free): status, exports and the ledger show it.
_0009_PAYMENT_METHOD: Final = """
ALTER TABLE sessions ADD COLUMN payment_method TEXT;
"""

# The payment journal (store/payments.py): each card payment step before it is sent and after it is answered.
_0010_PAYMENTS: Final = """
CREATE TABLE payments (
    payment_id    TEXT PRIMARY KEY,
    connector_id  INTEGER NOT NULL,
    state         TEXT NOT NULL,
    currency      TEXT NOT NULL,
    requested     TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    session_id    TEXT NULL,
    id_tag        TEXT NULL,
    preauthorized TEXT NULL,
    captured      TEXT NULL,
    released      TEXT NULL,
    receipt_no    INTEGER NULL,
    trace_no      INTEGER NULL,
    terminal_id   TEXT NULL,
    aid           TEXT NULL,
    card_last4    TEXT NULL,
    card_scheme   TEXT NULL,
    card_token    TEXT NULL,
    detail        TEXT NULL
);
CREATE INDEX payments_state ON payments (state);
"""

# Signed meter data (OCMF) of a session, exactly as its meter signed it, and the meter's public key to verify it.
_0011_SIGNED_METER_DATA: Final = """
ALTER TABLE sessions ADD COLUMN signed_meter_data TEXT;
ALTER TABLE sessions ADD COLUMN meter_public_key TEXT;
"""

# Availability and usage history (store/history.py): events, operator-declared exclusions, imported sessions.
_0012_HISTORY: Final = """
CREATE TABLE history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT    NOT NULL,
    mono_s       REAL    NOT NULL,
    boot         INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    kind         TEXT    NOT NULL,
    value        TEXT    NOT NULL,
    detail       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX history_at ON history (at);
CREATE TABLE exclusions (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    connector_id INTEGER NOT NULL,
    start        TEXT    NOT NULL,
    end          TEXT    NOT NULL,
    reason       TEXT    NOT NULL CHECK (reason IN ('grid', 'maintenance', 'vandalism', 'operator')),
    note         TEXT    NOT NULL DEFAULT '',
    created_at   TEXT    NOT NULL
);
CREATE TABLE imported_sessions (
    key          TEXT    PRIMARY KEY,
    start        TEXT    NOT NULL,
    stop         TEXT    NOT NULL,
    start_utc    TEXT    NOT NULL,
    connector_id INTEGER NOT NULL,
    energy_Wh    INTEGER NOT NULL,
    id_tag       TEXT    NULL,
    cost         TEXT    NULL,
    source       TEXT    NOT NULL,
    imported_at  TEXT    NOT NULL
);
CREATE INDEX imported_sessions_start ON imported_sessions (start_utc);
"""

# The tally of each UTC day of history (store/rollup.py): what a report of a year reads instead of every event; and
# the index that finds the state a period began in (the last status of each connector ...) without a scan.
_0013_HISTORY_DAYS: Final = """
CREATE INDEX history_group ON history (connector_id, kind, at);
CREATE TABLE history_days (
    day          TEXT    PRIMARY KEY,
    version      INTEGER NOT NULL,
    connectors   INTEGER NOT NULL,
    summary      TEXT    NOT NULL,
    charging     BLOB    NOT NULL
);
"""

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (1, _0001_SESSIONS),
    (2, _0002_KV),
    (3, _0003_OCPP),
    (4, _0004_PRICING),
    (5, _0005_FAULTS),
    (6, _0006_STOP_ID_TAG),
    (7, _0007_SECURITY_LOG),
    (8, _0008_LEDGER),
    (9, _0009_PAYMENT_METHOD),
    (10, _0010_PAYMENTS),
    (11, _0011_SIGNED_METER_DATA),
    (12, _0012_HISTORY),
    (13, _0013_HISTORY_DAYS),
)
"""(number, sql) pairs in the order they are applied."""

SCHEMA_VERSION: Final[int] = MIGRATIONS[-1][0]
"""The ``user_version`` of a database that is fully migrated by this code."""
