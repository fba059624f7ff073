"""What the charger tells its adapters (ports.events), seen by a listener attached as the composition root would."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from chargepoint.core.commands import ConnectorStatus
from chargepoint.ports.events import (
    ChargerEvent,
    FaultCleared,
    FaultRaised,
    MeterRead,
    SecurityEvent,
    StatusChanged,
    TransactionEnded,
    TransactionStarted,
)
from tests.integration.harness import Charger, make_config, running_charger


@dataclass
class Recorder:
    """A listener that also notes whether the contactor was commanded closed when each event arrived."""

    charger: Charger | None = None
    events: list[ChargerEvent] = field(default_factory=list)
    contactor_closed_at: dict[int, bool] = field(default_factory=dict)

    def charger_event(self, event: ChargerEvent) -> None:
        if self.charger is not None:
            self.contactor_closed_at[len(self.events)] = self.charger.sim().contactor.commanded_closed()
        self.events.append(event)

    def of(self, kind: type) -> list[ChargerEvent]:
        return [e for e in self.events if isinstance(e, kind)]


async def test_a_session_ended_by_a_ground_fault_is_told_in_order(tmp_path: Path) -> None:
    recorder = Recorder()
    async with running_charger(make_config(tmp_path), listener=recorder) as charger:
        recorder.charger = charger
        assert recorder.events[0] == SecurityEvent("StartupOfTheDevice", "the firmware started",
                                                   recorder.events[0].at)  # type: ignore[union-attr]
        await charger.charge()
        await charger.wait_for(lambda: len(recorder.of(MeterRead)) >= 3, what="meter readings")
        charger.sim().apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        await charger.app.flush_store()
        charger.sim().apply("clear-fault")
        await charger.wait_for(lambda: bool(recorder.of(FaultCleared)), what="fault cleared")

    [started] = recorder.of(TransactionStarted)
    [ended] = recorder.of(TransactionEnded)
    assert isinstance(started, TransactionStarted) and isinstance(ended, TransactionEnded)
    assert (started.connector_id, started.id_tag) == (1, "FREEVEND")
    assert (ended.connector_id, ended.id_tag, ended.reason) == (1, "FREEVEND", "EmergencyStop")
    assert ended.session_id is not None  # the record was written while the session ran
    assert not ended.ev_unplugged
    assert ended.meter_stop_Wh >= started.meter_start_Wh
    assert recorder.events.index(started) < recorder.events.index(ended)
    # Listeners hear of a session's end only after the contactor was commanded open.
    assert recorder.contactor_closed_at[recorder.events.index(ended)] is False

    statuses = [(e.status, e.error_code) for e in recorder.of(StatusChanged) if isinstance(e, StatusChanged)]
    assert (ConnectorStatus.Charging, "NoError") in statuses
    assert (ConnectorStatus.Faulted, "GroundFailure") in statuses
    [raised] = recorder.of(FaultRaised)
    [cleared] = recorder.of(FaultCleared)
    assert raised == FaultRaised(1, "GroundFailure", raised.at)  # type: ignore[union-attr]
    assert cleared == FaultCleared(1, "GroundFailure", cleared.at)  # type: ignore[union-attr]
    faulted = next(e for e in recorder.of(StatusChanged) if getattr(e, "status", None) is ConnectorStatus.Faulted)
    assert recorder.events.index(faulted) < recorder.events.index(raised) < recorder.events.index(cleared)

    readings = [e for e in recorder.of(MeterRead) if isinstance(e, MeterRead)]
    registers = [e.reading.energy_Wh_import for e in readings]
    assert registers == sorted(registers)  # the real Modbus meter's register, in the order it was read


async def test_a_reset_is_a_security_event(tmp_path: Path) -> None:
    recorder = Recorder()
    async with running_charger(make_config(tmp_path), listener=recorder) as charger:
        await charger.app.reset(hard=True)
        assert charger.app.reexec_requested
    resets = [e for e in recorder.of(SecurityEvent) if isinstance(e, SecurityEvent) and e.kind == "ResetOrReboot"]
    assert [e.detail for e in resets] == ["hard reset"]
