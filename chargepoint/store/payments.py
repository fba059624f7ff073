"""The payment journal: every step of a card payment, written before it is sent to the terminal and after it
answered, each with a ledger record in the same transaction.

States, in order (a step is written as ``*_requested`` first, so a crash between request and answer leaves a
record that says what to ask the terminal after the restart):

    preauth_requested -> preauthorized | declined | failed
    preauthorized -> capture_requested -> captured          (the session's cost, the rest released)
    preauthorized -> cancel_requested -> cancelled          (nothing to pay: the whole pre-authorisation released)

``captured`` never exceeds ``preauthorized`` (the store refuses it: a capture above its pre-authorisation is a
fraud control as much as a bug). Functions here run on the store's worker thread.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any, Final

from chargepoint.errors import StoreError

OPEN_STATES: Final = frozenset({"preauth_requested", "preauthorized", "capture_requested", "cancel_requested"})
FINAL_STATES: Final = frozenset({"declined", "failed", "captured", "cancelled"})
TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    "preauth_requested": frozenset({"preauthorized", "declined", "failed"}),
    "preauthorized": frozenset({"capture_requested", "cancel_requested"}),
    "capture_requested": frozenset({"captured", "cancel_requested", "failed"}),
    "cancel_requested": frozenset({"cancelled", "failed"}),
}


class PaymentRefused(StoreError):
    """A payment step the journal does not allow (a capture above the pre-authorisation, a skipped state)."""


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    payment_id: str
    connector_id: int
    state: str
    currency: str
    requested: Decimal
    created_at: str
    updated_at: str
    session_id: str | None = None
    id_tag: str | None = None
    preauthorized: Decimal | None = None
    captured: Decimal | None = None
    released: Decimal | None = None
    receipt_no: int | None = None
    trace_no: int | None = None
    terminal_id: str | None = None
    aid: str | None = None
    card_last4: str | None = None
    card_scheme: str | None = None
    card_token: str | None = None
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Decimal) else v) for f in fields(self)}


_COLUMNS: Final = tuple(f.name for f in fields(PaymentRecord))
_DECIMALS: Final = frozenset({"requested", "preauthorized", "captured", "released"})


def _row(row: sqlite3.Row) -> PaymentRecord:
    values = {name: row[name] for name in _COLUMNS}
    for name in _DECIMALS:
        if values[name] is not None:
            values[name] = Decimal(values[name])
    return PaymentRecord(**values)


def insert(conn: sqlite3.Connection, record: PaymentRecord) -> None:
    values = [str(v) if isinstance(v, Decimal) else v for v in (getattr(record, name) for name in _COLUMNS)]
    conn.execute(f"INSERT INTO payments ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", values)


def fetch(conn: sqlite3.Connection, payment_id: str) -> PaymentRecord:
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments WHERE payment_id = ?", (payment_id,)).fetchone()
    if row is None:
        raise StoreError(f"no payment {payment_id}")
    return _row(row)


def update(conn: sqlite3.Connection, payment_id: str, state: str, at_text: str,
           changes: dict[str, Any]) -> PaymentRecord:
    """Move a payment to ``state`` with ``changes``; refuses a transition the journal does not allow."""
    current = fetch(conn, payment_id)
    if state != current.state and state not in TRANSITIONS.get(current.state, frozenset()):
        raise PaymentRefused(f"payment {payment_id}: {current.state} -> {state} is not a step a payment takes")
    unknown = set(changes) - set(_COLUMNS)
    if unknown:
        raise ValueError(f"unknown payment fields {sorted(unknown)}")
    captured = changes.get("captured", current.captured)
    preauthorized = changes.get("preauthorized", current.preauthorized)
    if captured is not None and (preauthorized is None or Decimal(captured) > Decimal(preauthorized)):
        raise PaymentRefused(f"payment {payment_id}: a capture of {captured} above its pre-authorisation "
                             f"{preauthorized} is refused")
    values = {name: (str(v) if isinstance(v, Decimal) else v) for name, v in changes.items()}
    values.update(state=state, updated_at=at_text)
    conn.execute(f"UPDATE payments SET {', '.join(f'{name} = ?' for name in values)} WHERE payment_id = ?",
                 (*values.values(), payment_id))
    return fetch(conn, payment_id)


def listing(conn: sqlite3.Connection, limit: int, open_only: bool = False) -> list[PaymentRecord]:
    where = f"WHERE state IN ({', '.join('?' * len(OPEN_STATES))})" if open_only else ""
    args: tuple[Any, ...] = tuple(sorted(OPEN_STATES)) if open_only else ()
    rows = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM payments {where} ORDER BY created_at DESC, rowid DESC "
                        "LIMIT ?", (*args, limit)).fetchall()
    return [_row(r) for r in rows]
