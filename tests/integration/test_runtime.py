"""The runtime on simulated hardware: real core, real SQLite, real Modbus meter server and driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hal.protocols import PilotOutput
from tests.integration.harness import make_config, running_charger

CARD = "04A1B2C3"


async def test_free_vend_session_end_to_end_records_energy_read_over_modbus(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        sim = charger.sim()
        assert sim.contactor.feedback_closed()
        assert sim.pilot.output()[0] is PilotOutput.PWM
        start_Wh = charger.status()["session"]["meter_start_Wh"]
        await charger.wait_for(lambda: charger.status()["session"]["energy_Wh"] > 50, what="energy")
        status = charger.status()
        assert status["offered_current_A"] == pytest.approx(32.0, abs=0.1)
        assert status["power_W"] > 20_000  # 3 x 230 V x 32 A
        sim.apply("unplug")
        await charger.wait_status("Available")
        assert not sim.contactor.commanded_closed()
        await charger.app.flush_store()
        [record] = await charger.store.recent_sessions(1)
        assert record.id_tag == "FREEVEND"
        assert record.stop_reason == "EVDisconnected"
        assert record.meter_start_Wh == start_Wh
        assert record.energy_Wh is not None and record.energy_Wh > 50
        # The recorded stop is what the meter said over Modbus, not an estimate.
        assert record.meter_stop_Wh == pytest.approx(sim.energy_Wh, abs=40)


async def test_allow_list_rejects_unknown_card_and_accepts_known_card(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": [CARD]})
    async with running_charger(config) as charger:
        sim = charger.sim()
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None)
        sim.apply("plug")
        await charger.wait_status("Preparing")
        sim.apply("tap", "DEADBEEF")
        sim.apply("charge")
        await charger.wait_for(lambda: sim.rfid.history != [], what="tap")
        for _ in range(30):  # the rejected card must not start anything, even with the EV asking
            assert charger.status()["session"] is None
            assert not sim.contactor.commanded_closed()
            await asyncio.sleep(0.01)
        sim.apply("tap", CARD.lower())  # readers differ in hex case
        await charger.wait_status("Charging")
        assert charger.status()["session"]["id_tag"] == CARD


async def test_ev_pausing_opens_the_contactor(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("pause")
        await charger.wait_status("SuspendedEV")
        assert not charger.sim().contactor.feedback_closed()
        assert charger.status()["session"] is not None  # pausing does not end the session


async def test_ground_fault_opens_contactor_ends_session_and_clears(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        sim = charger.sim()
        sim.apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "GroundFailure"
        assert not sim.contactor.commanded_closed()
        assert sim.pilot.output()[0] is PilotOutput.NEGATIVE
        await charger.app.flush_store()
        [record] = await charger.store.recent_sessions(1)
        assert record.stop_reason == "EmergencyStop"
        sim.apply("clear-fault")
        await charger.wait_for(lambda: charger.status()["status"] in ("Finishing", "Preparing"), what="recovery")
        assert sim.pilot.output()[0] is PilotOutput.HIGH


async def test_welded_contactor_is_reported_as_power_switch_failure(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        sim = charger.sim()
        sim.apply("fault", "weld")
        sim.apply("pause")  # the core opens the contactor; the contacts stay stuck
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "PowerSwitchFailure"
        assert not sim.contactor.commanded_closed()
        assert sim.contactor.feedback_closed()


async def test_contactor_that_never_closes_is_a_power_switch_failure(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        charger.sim().apply("fault", "contactor-stuck-open")
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None)
        charger.sim().apply("plug")
        await charger.wait_status("SuspendedEV")
        charger.sim().apply("charge")
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "PowerSwitchFailure"
        assert not charger.sim().contactor.commanded_closed()


async def test_meter_going_offline_stops_charging(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("fault", "meter-offline")
        await charger.wait_status("Faulted", timeout_s=10)
        assert charger.status()["error_code"] == "PowerMeterFailure"
        assert not charger.sim().contactor.commanded_closed()
        charger.sim().apply("clear-fault")
        await charger.wait_for(lambda: charger.status()["status"] != "Faulted", timeout_s=10, what="meter back")


async def test_power_loss_ends_the_session_with_reason_power_loss(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("fault", "power-loss")
        await charger.wait_status("Unavailable")
        assert not charger.sim().contactor.commanded_closed()
        await charger.app.flush_store()
        [record] = await charger.store.recent_sessions(1)
        assert record.stop_reason == "PowerLoss"


@pytest.mark.parametrize("kind", ["pilot-short", "diode-failure"])
async def test_pilot_faults_open_the_contactor(tmp_path: Path, kind: str) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        charger.sim().apply("fault", kind)
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "EVCommunicationError"
        assert not charger.sim().contactor.commanded_closed()


async def test_stuck_lock_prevents_charging(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        charger.sim().apply("fault", "lock-failure")
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None)
        charger.sim().apply("plug")
        charger.sim().apply("charge")
        await charger.wait_status("Faulted")
        assert charger.status()["error_code"] == "ConnectorLockFailure"
        assert charger.sim().contactor.history == [] or not any(c.closed for c in charger.sim().contactor.history)


async def test_fixed_cable_charges_without_a_lock(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        charger.sim().apply("fault", "fixed-cable")
        await charger.charge()
        assert not charger.sim().lock.is_locked()


async def test_overcurrent_draw_faults_after_the_grace_time(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"max_current_A": 10}, simulator={"ev_max_current_A": 32})
    async with running_charger(config) as charger:
        await charger.charge()
        charger.sim().apply("fault", "overcurrent")
        await charger.wait_status("Faulted", timeout_s=10)
        assert charger.status()["error_code"] == "OverCurrentFailure"
        assert not charger.sim().contactor.commanded_closed()


async def test_connection_timeout_ends_an_unauthorized_plug_in(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"free_vend": False, "connection_timeout_s": 0.5})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None)
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        await charger.wait_status("Available", timeout_s=3)
        assert charger.status()["session"] is None


async def test_clean_shutdown_ends_the_session_and_leaves_hardware_safe(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_charger(config) as charger:
        await charger.charge()
        sim = charger.sim()
        store = charger.store
    # running_charger has stopped the app; the store was closed, so reopen it.
    assert not sim.contactor.commanded_closed()
    assert sim.pilot.output()[0] is PilotOutput.HIGH
    from chargepoint.store import Store

    reopened = await Store.open(store.path)
    try:
        [record] = await reopened.recent_sessions(1)
        assert record.stop_reason == "Reboot"
        assert await reopened.open_sessions() == []
    finally:
        await reopened.close()


async def test_multiple_connectors_are_independent(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path, charger={"connectors": 2})) as charger:
        await charger.charge(connector_id=2)
        assert charger.status(1)["status"] == "Available"
        assert not charger.sim(1).contactor.commanded_closed()
        assert charger.sim(2).contactor.commanded_closed()
