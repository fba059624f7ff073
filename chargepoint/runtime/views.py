"""The charger's state and records as the control socket (and so ``chargepoint status``/``sessions``/``prepaid``)
and the diagnostics show them: plain JSON values, field names as documented in the README."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

from chargepoint.core.metering import MeterReading
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import PrepaidAccount, PricingRow, SessionRecord


def meter_status(reading: MeterReading | None, now_s: float, stale_after_s: float) -> dict[str, Any] | None:
    """The meter's last reading, per phase, with its age: ``stale`` once it is older than a few polls (a silent
    meter's last values are history, not the present)."""
    if reading is None:
        return None
    age_s = max(0.0, now_s - reading.measured_at_s)
    phase_power = reading.phase_power_W or (None, None, None)
    return {
        "energy_Wh": reading.energy_Wh_import,
        "power_W": round(reading.power_W, 1),
        "phases": [{"voltage_V": round(v, 1), "current_A": round(i, 2), "power_W": None if p is None else round(p, 1)}
                   for v, i, p in zip(reading.voltage_V, reading.current_A, phase_power, strict=True)],
        "age_s": round(age_s, 1),
        "stale": age_s > stale_after_s,
    }


def connector_status(c: ConnectorRuntime, session_pricing: dict[str, Any], causes: tuple[str, ...] = (),
                     now_s: float | None = None, stale_after_s: float = 5.0) -> dict[str, Any]:
    """``causes``: why the connector is Faulted or Unavailable (its faults; MainsLost, StorageFull, Inoperative)."""
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
    meter = meter_status(reading, time.monotonic() if now_s is None else now_s, stale_after_s)
    live = meter is not None and not meter["stale"]
    shown = c.hw.display.shown()
    return {
        "id": c.connector_id,
        "status": str(c.core.status),
        "error_code": c.core.error_code,
        "causes": list(causes),
        "offered_current_A": round(c.core.offered_current_A, 2),
        "pilot_state": None if c.pilot_state is None else str(c.pilot_state),
        "contactor_closed": c.hw.contactor.feedback_closed(),
        "cable_max_A": c.core.cable_max_A,
        "faults": sorted(str(fault) for fault in c.core.active_faults),
        "power_W": round(reading.power_W, 1) if live and reading is not None else None,  # never a silent meter's
        "meter_energy_Wh": None if reading is None else reading.energy_Wh_import,
        "meter": meter,
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
