"""Structured fields of a log record: which connector, session, OCPP transaction and message it is about.

A call site passes them as ``extra=log_fields(connector=1, session=...)``; the message text stays as it was. The
daemon's log output (``chargepoint.composition.log_format``) writes them as journal fields under systemd
(``journalctl CHARGEPOINT_CONNECTOR=1``) and as ``key=value`` after the message otherwise. Neutral on purpose
(standard library only), so the runtime and the adapters can use it without knowing where the log goes.
"""

from __future__ import annotations

import logging

# (attribute on the LogRecord, journal field, plain-text key). Journal field names: upper-case ASCII letters,
# digits and underscores, not starting with an underscore (those are journald's own, trusted fields).
FIELDS: tuple[tuple[str, str, str], ...] = (
    ("cp_connector", "CHARGEPOINT_CONNECTOR", "connector"),
    ("cp_session", "CHARGEPOINT_SESSION", "session"),
    ("cp_transaction", "CHARGEPOINT_TRANSACTION", "transaction"),
    ("cp_ocpp_message_id", "CHARGEPOINT_OCPP_MESSAGE_ID", "ocpp_message_id"),
    ("cp_ocpp_action", "CHARGEPOINT_OCPP_ACTION", "ocpp_action"),
)


def log_fields(*, connector: int | None = None, session: str | None = None, transaction: int | str | None = None,
               ocpp_message_id: str | None = None, ocpp_action: str | None = None) -> dict[str, object]:
    """The ``extra`` of a log call; fields left at None are left out.

    ``connector``: the connector id (1, 2 ...; 0 is the charger as a whole); ``session``: the charger's own session
    id (``session_id`` in ``chargepoint status --json`` and ``sessions --json``); ``transaction``: the CSMS's
    transactionId, once it gave one; ``ocpp_message_id``: the unique id of an OCPP CALL (its CALLRESULT or
    CALLERROR carries the same); ``ocpp_action``: the CALL's action.
    """
    values = (connector, session, transaction, ocpp_message_id, ocpp_action)
    return {attribute: value for (attribute, _, _), value in zip(FIELDS, values, strict=True) if value is not None}


def fields_of(record: logging.LogRecord) -> list[tuple[str, str, str]]:
    """(journal field, plain-text key, value as text) of each field the record carries."""
    found = []
    for attribute, journal_name, key in FIELDS:
        value = getattr(record, attribute, None)
        if value is not None:
            found.append((journal_name, key, str(value)))
    return found
