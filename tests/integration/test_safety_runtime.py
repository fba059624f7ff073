"""Fault injection on the whole charger (runtime, core, simulators, store): each safety rule of a real charger,
observed at the simulated devices."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from chargepoint.ports.events import ChargerEvent, StatusChanged
from tests.integration.harness import Charger, make_config, running_charger

pytestmark = pytest.mark.timeout(30)


async def _closed_since(charger: Charger) -> float:
    """When the contactor was last commanded closed (monotonic)."""
    history = charger.sim().contactor.history
    assert history and history[-1].closed
    return history[-1].at_s


async def test_stalled_pilot_sampler_opens_the_contactor_within_its_bound(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"pilot_timeout_s": 0.1})
    async with running_charger(config) as charger:
        await charger.charge()
        stalled_at_s = time.monotonic()
        charger.sim().apply("fault", "pilot-stall")
        await charger.wait_for(lambda: not charger.sim().contactor.commanded_closed(), timeout_s=2, what="open")
        opened_after_s = charger.sim().contactor.history[-1].at_s - stalled_at_s
        assert opened_after_s < 0.1 + 0.1  # the bound, plus one loop turn on a loaded runner
        assert charger.status()["faults"] == ["PilotLost"]
        charger.sim().apply("clear-fault")  # samples flow again: not a latched fault
        await charger.wait_for(lambda: charger.status()["faults"] == [], what="PilotLost cleared")


async def test_cable_rating_from_pp_limits_the_offer_and_an_open_pp_withdraws_it(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("plug", "13")
        charger.sim().apply("charge")
        await charger.wait_status("Charging")
        assert charger.status()["cable_max_A"] == 13.0
        assert charger.sim().offered_A() == pytest.approx(12.96)
        charger.sim().apply("fault", "pp-open")
        await charger.wait_status("SuspendedEVSE")
        assert charger.status()["cable_max_A"] is None
        assert charger.sim().offered_A() == 0.0
        # Not a fault: the EV stops drawing, then the contactor opens without breaking load.
        await charger.wait_for(lambda: not charger.sim().contactor.commanded_closed(), what="open")
        assert max(charger.sim().phase_currents_A()) < 1.0


async def test_tethered_cable_rating_caps_the_offer(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"tethered_cable": True, "cable_rating_A": 16.0})
    async with running_charger(config) as charger:
        await charger.charge()
        assert charger.sim().offered_A() == pytest.approx(15.96)
        assert charger.status()["cable_max_A"] == 16.0


async def test_rcd_wire_break_reads_as_a_trip(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("fault", "rcd-wire-break")
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "GroundFailure"
        assert not charger.sim().contactor.commanded_closed()


@pytest.mark.parametrize("ventilation", [False, True])
async def test_state_D_charges_only_with_ventilation(tmp_path: Path, ventilation: bool) -> None:
    config = make_config(tmp_path, charger={"ventilation_available": ventilation})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("plug")
        await charger.wait_status("SuspendedEV")
        charger.sim().apply("vent")
        if ventilation:
            await charger.wait_status("Charging")
        else:
            await charger.wait_status("SuspendedEVSE")
            await asyncio.sleep(0.3)
            assert not any(entry.closed for entry in charger.sim().contactor.history)
            assert charger.status()["session"]["energy_Wh"] == 0


async def test_an_ev_ignoring_a_lower_limit_is_cut_off_within_grace_plus_trip_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"overcurrent_trip_s": 0.5})
    async with running_charger(config) as charger:
        await charger.charge()
        charger.sim().apply("fault", "overcurrent")  # the EV draws its maximum whatever the pilot says
        charger.app.set_current_limit(1, "csms", 10.0)
        await charger.wait_for(lambda: charger.sim().offered_A() < 10.5, what="lower offer")
        lowered_at_s = time.monotonic()
        await charger.wait_status("Faulted", timeout_s=5)
        tripped_after_s = time.monotonic() - lowered_at_s
        # grace 1 s (harness) + trip 0.5 s + one meter poll (0.1 s) + loop slack
        assert 1.0 <= tripped_after_s <= 1.0 + 0.5 + 0.1 + 0.4
        assert charger.status()["error_code"] == "OverCurrentFailure"


async def test_remote_stop_withdraws_the_pwm_and_opens_without_load(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        await asyncio.sleep(0.3)
        assert max(charger.sim().phase_currents_A()) > 20
        charger.app.stop_transaction(1, "Remote")
        await charger.wait_for(lambda: not charger.sim().contactor.commanded_closed(), what="open")
        pwm_off = [p for p in charger.sim().pilot.history if p.duty_percent == 0.0][-1]
        opened = charger.sim().contactor.history[-1]
        assert pwm_off.at_s < opened.at_s
        assert max(charger.sim().phase_currents_A()) < 1.0  # the EV had stopped: no load broken
        await charger.wait_status("Finishing")


async def test_weld_survives_a_restart_keeps_the_plug_locked_and_trips_the_breaker(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    state_file = tmp_path / "sim-state.json"
    async with running_charger(config) as charger:
        await charger.charge()
        charger.sim().apply("fault", "weld")
        charger.sim().apply("unplug")
        await charger.wait_status("Faulted")
        assert "ContactorWelded" in charger.status()["faults"]
        assert charger.sim().shunt_trip.tripped()  # the second means of disconnection
        assert charger.sim().lock.is_locked()
        assert await charger.app.unlock(1) == "UnlockFailed"
        charger.station.save(state_file)
    async with running_charger(config) as charger:
        assert charger.station.restore(state_file)
        await charger.wait_for(lambda: "ContactorWelded" in charger.status()["faults"], what="latched weld restored")
        unlocks_before = [e for e in charger.sim().lock.history if not e.locked]
        assert await charger.app.unlock(1) == "UnlockFailed"
        assert [e for e in charger.sim().lock.history if not e.locked] == unlocks_before
        assert charger.sim().lock.is_locked()
        assert (await charger.app.clear_faults(1, "test"))["connectors"][0]["remaining"] == ["ContactorWelded"]


class _Recorder(logging.Handler):
    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    def emit(self, record: logging.LogRecord) -> None:
        self.events.append(f"log: {record.getMessage()[:60]}")


class _Exploding:
    """A listener with a bug: it raises once the connector is charging."""

    def charger_event(self, event: ChargerEvent) -> None:
        if isinstance(event, StatusChanged) and event.status == "Charging":
            raise RuntimeError("listener bug")


async def test_on_an_unhandled_exception_the_contactor_opens_before_anything_else(tmp_path: Path) -> None:
    events: list[str] = []
    handler = _Recorder(events)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        with pytest.raises(BaseException) as raised:  # the task group wraps it in an ExceptionGroup
            async with running_charger(make_config(tmp_path), listener=_Exploding()) as charger:
                contactor = charger.sim().contactor
                original_open = contactor.open

                async def recording_open() -> Any:
                    events.append("contactor open")
                    return await original_open()

                contactor.open = recording_open  # type: ignore[method-assign]
                store_close = charger.store.close

                async def recording_close() -> None:
                    events.append("store close")
                    await store_close()

                charger.store.close = recording_close  # type: ignore[method-assign]
                events.clear()
                await charger.charge()
                await asyncio.sleep(1)
        assert "listener bug" in repr(raised.value)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    first = events.index("contactor open")
    charging_at = max(i for i, e in enumerate(events) if "Charging" in e)
    # Between the failure (right after "Charging" was reported) and the open, nothing: no log, no store, no teardown.
    assert first == charging_at + 1, events[charging_at:first + 3]


async def test_a_lock_forced_open_mid_session_opens_the_contactor(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("fault", "lock-forced")
        await charger.wait_status("Faulted", timeout_s=2)
        assert charger.status()["faults"] == ["ConnectorLockFailure"]
        assert not charger.sim().contactor.commanded_closed()
