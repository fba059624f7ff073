"""OCPP 1.6 on the wire: timestamps, stop reasons, and the CSMS's clock as the charger follows it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

log = logging.getLogger(__name__)

CLOCK_WARN_OFFSET_S = 60.0


def wire_time(at: datetime) -> str:
    """OCPP timestamps: UTC, millisecond precision, 'Z'."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


_V16_REASONS = frozenset({"EmergencyStop", "EVDisconnected", "HardReset", "Local", "Other", "PowerLoss", "Reboot",
                          "Remote", "SoftReset", "UnlockCommand", "DeAuthorized"})


def wire_reason(reason: str | None) -> str:
    """OCPP 1.6 has no reason for a reached limit (CostLimitReached ...): the record keeps it, the wire says Other."""
    return reason if reason in _V16_REASONS else "Other"


def energy_value(at: datetime, value_Wh: int, context: str) -> dict[str, Any]:
    """A MeterValue with the energy register alone (Transaction.Begin and .End of StopTransaction)."""
    return {"timestamp": wire_time(at), "sampledValue": [{
        "value": str(value_Wh), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh",
        "location": "Outlet"}]}


class CsmsClock:
    """The CSMS's clock as measured from each BootNotification and Heartbeat answer: every timestamp the charger
    sends is on it."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self.synced = False

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset_s)

    def on_csms_clock(self, at: datetime) -> datetime:
        """A time of the charger's clock, on the CSMS's."""
        return at + timedelta(seconds=self.offset_s)

    def sync(self, current_time: str) -> None:
        try:
            csms_now = parse_time(current_time)
        except ValueError:
            log.warning("CSMS sent an unreadable currentTime %.100r", current_time)
            return
        self.offset_s = (csms_now - datetime.now(UTC)).total_seconds()
        if not self.synced and abs(self.offset_s) > CLOCK_WARN_OFFSET_S:
            # Messages stamped before now used the unsynchronised clock; OCPP 1.6 has no field to flag them,
            # so at least the log says so.
            log.warning("the system clock was %.0f s off the CSMS's; timestamps of messages recorded before this "
                        "synchronisation may be off by as much", self.offset_s)
        elif not self.synced or abs(self.offset_s) > 1:
            log.info("clock synchronised with the CSMS (offset %.3f s)", self.offset_s)
        self.synced = True
