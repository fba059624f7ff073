"""The charger's state and records as the control socket (and so ``chargepoint status``/``sessions``/``prepaid``)
and the diagnostics show them: plain JSON values, field names as documented in the README."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import PrepaidAccount, PricingRow, SessionRecord


def connector_status(c: ConnectorRuntime, session_pricing: dict[str, Any]) -> dict[str, Any]:
    session = None
    if c.session is not None:
        energy_Wh = 0
        if c.last_reading is not None:
            energy_Wh = max(0, c.last_reading.energy_Wh_import - c.session.meter_start_Wh)
        session = {
            "transaction_id": (c.session.csms_transaction_id if c.session.csms_transaction_id is not None
                               else c.session.session_id),
            "session_id": c.session.session_id,
            "id_tag": c.session.id_tag,
            "payment_method": c.session.payment_method,
            **({"preauthorized": c.session.preauthorized} if c.session.payment_method == "card" else {}),
            "energy_Wh": energy_Wh,
            **session_pricing,
            "started_at": c.session.started_at.isoformat(),
            "meter_start_Wh": c.session.meter_start_Wh,
        }
    reading = c.last_reading
    shown = c.hw.display.shown()
    return {
        "id": c.connector_id,
        "status": str(c.core.status),
        "error_code": c.core.error_code,
        "offered_current_A": round(c.core.offered_current_A, 2),
        "pilot_state": None if c.pilot_state is None else str(c.pilot_state),
        "contactor_closed": c.hw.contactor.feedback_closed(),
        "cable_max_A": c.core.cable_max_A,
        "faults": sorted(str(fault) for fault in c.core.active_faults),
        "power_W": None if reading is None else round(reading.power_W, 1),
        "meter_energy_Wh": None if reading is None else reading.energy_Wh_import,
        "session": session,
        "display": None if shown is None else {"kind": str(shown.kind), "lines": list(shown.lines),
                                               "language": shown.language, "qr_code_text": shown.qr_code_text},
    }


def session_row(r: SessionRecord, p: PricingRow | None, ledger: tuple[int, str] | None = None) -> dict[str, Any]:
    return {
        "session_id": r.session_id,
        "connector_id": r.connector_id,
        "id_tag": r.id_tag,
        "started_at": r.started_at.isoformat(),
        "stopped_at": None if r.stopped_at is None else r.stopped_at.isoformat(),
        "meter_start_Wh": r.meter_start_Wh,
        "meter_stop_Wh": r.meter_stop_Wh,
        "energy_Wh": r.energy_Wh,
        "duration_s": None if r.stopped_at is None else round((r.stopped_at - r.started_at).total_seconds()),
        "stop_reason": r.stop_reason,
        "payment_method": r.payment_method,
        "tariff_id": None if p is None else p.tariff_id,
        "package": None if p is None else p.package,
        "cost": None if p is None or p.shown_cost is None else str(p.shown_cost),
        "local_cost": None if p is None or p.cost is None else str(p.cost),
        "csms_cost": None if p is None or p.csms_cost is None else str(p.csms_cost),
        "cost_final": None if p is None else p.final,
        "currency": None if p is None else p.currency,
        "prepaid_paid": None if p is None or p.prepaid_paid is None else str(p.prepaid_paid),
        "prepaid_shortfall": None if p is None or p.prepaid_shortfall is None else str(p.prepaid_shortfall),
        "breakdown": None if p is None else p.breakdown,
        "ledger_seq": None if ledger is None else ledger[0],  # the session's record in the tamper-evident ledger
        "ledger_hash": None if ledger is None else ledger[1],
        # As the meter signed it (OCMF), and the key that verifies it: what a driver or auditor checks the bill with.
        "signed_meter_data": r.signed_meter_data,
        "meter_public_key": r.meter_public_key,
    }


def prepaid_row(a: PrepaidAccount) -> dict[str, Any]:
    return {"id_tag": a.id_tag, "balance": str(a.balance), "currency": a.currency, "updated_at": a.updated_at}


def parse_amount(text: str) -> Decimal:
    """A money amount typed by a person; ``ValueError`` (the control socket's refusal) if it is none."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"not an amount: {text!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {amount}")
    return amount
