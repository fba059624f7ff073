"""Pricing rows of the store: a session's tariff and cost, prepaid accounts and their ledger, CSMS user prices.

Functions here run on the store's worker thread inside a transaction the caller opened, so a session's cost and
its prepaid debit are committed together with the session row they belong to.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PricingStart:
    """What is stored with a new session: the tariff in force (a snapshot), its package and limits."""

    tariff_id: str | None
    tariff_json: str | None
    package: str | None
    currency: str
    limits_json: str
    prepaid_id_tag: str | None = None


@dataclass(frozen=True, slots=True)
class PricingUpdate:
    """The running (or final) local cost of a session and the cost meter's state that produced it."""

    meter_state: str | None
    breakdown: str | None
    cost: Decimal | None


@dataclass(frozen=True, slots=True)
class PricingRow:
    session_id: str
    tariff_id: str | None
    tariff_json: str | None
    package: str | None
    currency: str
    limits: dict[str, Any]
    prepaid_id_tag: str | None
    meter_state: str | None
    breakdown: dict[str, Any] | None
    cost: Decimal | None
    final: bool
    csms_cost: Decimal | None
    csms_final: bool
    csms_text: str | None
    prepaid_paid: Decimal | None = None  # what the prepaid account paid for the session (once it ended)
    prepaid_shortfall: Decimal | None = None  # what it could not pay (its balance never goes below zero)

    @property
    def shown_cost(self) -> Decimal | None:
        """The figure the driver sees: the CSMS's when it sent one, else ours."""
        return self.csms_cost if self.csms_cost is not None else self.cost


@dataclass(frozen=True, slots=True)
class PrepaidAccount:
    id_tag: str
    balance: Decimal
    currency: str
    updated_at: str


_COLUMNS = (
    "session_id, tariff_id, tariff, package, currency, limits, prepaid_id_tag, meter_state, breakdown, cost, "
    "final, csms_cost, csms_final, csms_text"
)


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def row_of(row: sqlite3.Row, paid: Decimal | None = None) -> PricingRow:
    return PricingRow(
        session_id=row["session_id"],
        tariff_id=row["tariff_id"],
        tariff_json=row["tariff"],
        package=row["package"],
        currency=row["currency"],
        limits=json.loads(row["limits"]),
        prepaid_id_tag=row["prepaid_id_tag"],
        meter_state=row["meter_state"],
        breakdown=None if row["breakdown"] is None else json.loads(row["breakdown"]),
        cost=_decimal(row["cost"]),
        final=bool(row["final"]),
        csms_cost=_decimal(row["csms_cost"]),
        csms_final=bool(row["csms_final"]),
        csms_text=row["csms_text"],
        prepaid_paid=paid,
        prepaid_shortfall=None if paid is None or row["cost"] is None else max(Decimal(0), Decimal(row["cost"]) - paid),
    )


def insert(conn: sqlite3.Connection, session_id: str, start: PricingStart) -> None:
    conn.execute(
        "INSERT INTO session_pricing (session_id, tariff_id, tariff, package, currency, limits, prepaid_id_tag) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (session_id, start.tariff_id, start.tariff_json, start.package, start.currency, start.limits_json,
         start.prepaid_id_tag),
    )


def fetch(conn: sqlite3.Connection, session_id: str) -> PricingRow | None:
    row = conn.execute(f"SELECT {_COLUMNS} FROM session_pricing WHERE session_id = ?", (session_id,)).fetchone()
    if row is None:
        return None
    debit_row = conn.execute("SELECT amount FROM prepaid_ledger WHERE session_id = ?", (session_id,)).fetchone()
    return row_of(row, None if debit_row is None else -Decimal(debit_row["amount"]))


def update(conn: sqlite3.Connection, session_id: str, update: PricingUpdate) -> None:
    conn.execute(
        "UPDATE session_pricing SET meter_state = ?, breakdown = ?, cost = ? WHERE session_id = ? AND final = 0",
        (update.meter_state, update.breakdown, None if update.cost is None else str(update.cost), session_id),
    )


def finish(conn: sqlite3.Connection, session_id: str, update_: PricingUpdate | None, at_text: str) -> None:
    """Make the session's cost final and debit its prepaid account, once."""
    if update_ is not None:
        update(conn, session_id, update_)
    row = fetch(conn, session_id)
    if row is None or row.final:
        return
    conn.execute("UPDATE session_pricing SET final = 1 WHERE session_id = ?", (session_id,))
    if row.prepaid_id_tag is not None and row.cost is not None:
        debit(conn, row.prepaid_id_tag, row.cost, session_id, at_text)


def debit(conn: sqlite3.Connection, id_tag: str, amount: Decimal, session_id: str, at_text: str) -> None:
    account = conn.execute("SELECT balance FROM prepaid_accounts WHERE id_tag = ?", (id_tag,)).fetchone()
    if account is None:
        log.warning("prepaid account %s vanished before session %s ended; nothing debited", id_tag, session_id)
        return
    if conn.execute("SELECT 1 FROM prepaid_ledger WHERE session_id = ?", (session_id,)).fetchone() is not None:
        return
    # A balance never goes below zero: what the last meter sample and the EV's stop drew beyond the budget is taken
    # from what is left and the rest is written down as a shortfall (the session's cost stays the full cost).
    available = max(Decimal(0), Decimal(account["balance"]))
    taken = min(amount, available)
    balance = available - taken
    note = "session" if taken == amount else f"session (shortfall {amount - taken})"
    conn.execute("UPDATE prepaid_accounts SET balance = ?, updated_at = ? WHERE id_tag = ?",
                 (str(balance), at_text, id_tag))
    conn.execute(
        "INSERT INTO prepaid_ledger (id_tag, session_id, amount, balance_after, at, note) VALUES (?, ?, ?, ?, ?, ?)",
        (id_tag, session_id, str(-taken), str(balance), at_text, note),
    )


def set_balance(conn: sqlite3.Connection, id_tag: str, balance: Decimal, currency: str, at_text: str,
                note: str) -> PrepaidAccount:
    old = conn.execute("SELECT balance FROM prepaid_accounts WHERE id_tag = ?", (id_tag,)).fetchone()
    change = balance - (Decimal(0) if old is None else Decimal(old["balance"]))
    conn.execute(
        "INSERT INTO prepaid_accounts (id_tag, balance, currency, updated_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (id_tag) DO UPDATE SET balance = excluded.balance, currency = excluded.currency, "
        "updated_at = excluded.updated_at",
        (id_tag, str(balance), currency, at_text),
    )
    conn.execute(
        "INSERT INTO prepaid_ledger (id_tag, session_id, amount, balance_after, at, note) VALUES (?, NULL, ?, ?, ?, ?)",
        (id_tag, str(change), str(balance), at_text, note),
    )
    return PrepaidAccount(id_tag, balance, currency, at_text)


def account(conn: sqlite3.Connection, id_tag: str) -> PrepaidAccount | None:
    row = conn.execute("SELECT id_tag, balance, currency, updated_at FROM prepaid_accounts WHERE id_tag = ?",
                       (id_tag,)).fetchone()
    return None if row is None else PrepaidAccount(row["id_tag"], Decimal(row["balance"]), row["currency"],
                                                   row["updated_at"])


def accounts(conn: sqlite3.Connection) -> list[PrepaidAccount]:
    rows = conn.execute("SELECT id_tag, balance, currency, updated_at FROM prepaid_accounts ORDER BY id_tag")
    return [PrepaidAccount(r["id_tag"], Decimal(r["balance"]), r["currency"], r["updated_at"]) for r in rows]
