"""``chargepoint selftest`` on the simulator: every check passes on healthy devices, and each matching simulated fault
makes its own row fail. Also the self-tests a charger runs by itself: the pilot at start, the RCD before a session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.harness import Charger, make_config, running_charger

pytestmark = pytest.mark.timeout(30)

CHECKS = ["pilot", "diode", "rcd", "contactor", "meter", "rfid", "lock"]


async def _selftest(charger: Charger) -> dict[str, dict[str, str]]:
    await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
    rows = await charger.app.selftest()
    assert [row["check"] for row in rows] == CHECKS
    return {row["check"]: row for row in rows}


async def test_every_check_passes_on_healthy_simulated_devices(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path, charger={"free_vend": False})) as charger:
        rows = await _selftest(charger)
        assert {check: row["result"] for check, row in rows.items()} == {
            "pilot": "pass", "diode": "skip", "rcd": "pass", "contactor": "pass", "meter": "pass", "rfid": "pass",
            "lock": "pass"}
        # The short close and the lock cycle happened, and left everything safe and idle.
        history = charger.sim().contactor.history
        assert [entry.closed for entry in history].count(True) == 1 and not history[-1].closed
        assert not charger.sim().lock.is_locked()
        await charger.wait_status("Available")
        assert charger.status()["faults"] == []
        # With an EV plugged in the diode is checked, and the contactor is not closed.
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        rows = await _selftest(charger)
        assert rows["diode"]["result"] == "pass" and rows["contactor"]["result"] == "pass"
        assert [entry.closed for entry in history].count(True) == 1  # no close with an EV plugged in
        assert charger.status()["faults"] == []


@pytest.mark.parametrize(("fault", "check", "plugged"), [
    ("pilot-short", "pilot", False),
    ("pilot-negative", "pilot", False),
    ("pilot-stall", "pilot", False),
    ("diode-failure", "diode", True),
    ("ground-fault", "rcd", False),
    ("rcd-wire-break", "rcd", False),
    ("weld", "contactor", False),
    ("contactor-stuck-open", "contactor", False),
    ("meter-offline", "meter", False),
    ("power-loss", "meter", False),
    ("lock-failure", "lock", False),
])
async def test_each_simulated_fault_fails_its_own_row(tmp_path: Path, fault: str, check: str, plugged: bool) -> None:
    config = make_config(tmp_path, charger={"pilot_timeout_s": 1.0, "free_vend": False})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        if plugged:
            charger.sim().apply("plug")
            await charger.wait_status("Preparing")
        charger.sim().apply("fault", fault)
        rows = await charger.app.selftest()
        failed = {row["check"] for row in rows if row["result"] == "fail"}
        assert check in failed, rows
        if fault not in ("power-loss", "pilot-stall"):  # mains loss fails the RCD test too; a stall, every pilot use
            assert failed == {check}, rows


async def test_selftest_refuses_during_a_session(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.charge()
        with pytest.raises(ValueError, match="in a session"):
            await charger.app.selftest()


async def test_the_rcd_is_tested_before_each_session_and_a_failure_latches(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        rcd = charger.sim().rcd
        await charger.wait_for(lambda: len(rcd.tests) >= 1, what="RCD test at start")
        await charger.charge()
        assert len(rcd.tests) == 2 and all(passed for _, passed in rcd.tests)
        assert rcd.tests[-1][0] < charger.sim().contactor.history[-1].at_s  # tested before the close
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        rcd.test_works = False  # the module no longer trips on its test current
        charger.sim().apply("plug")
        await charger.wait_status("Faulted")
        assert charger.status()["faults"] == ["RcdTestFailed"]
        assert not any(entry.closed for entry in charger.sim().contactor.history[-1:])
        rcd.test_works = True  # replaced; the technician clears the latched fault
        assert (await charger.app.clear_faults(1, "test"))["connectors"][0]["cleared"] == ["RcdTestFailed"]


async def test_the_pilot_generator_is_tested_at_start_with_no_ev(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        await charger.wait_for(lambda: len(charger.sim().pilot.history) >= 2, what="pilot test at start")
        assert [c.output.value for c in charger.sim().pilot.history[:2]] == ["pwm", "high"]
        assert charger.status()["faults"] == []


async def test_on_an_evse_board_the_pi_neither_drives_pwm_nor_closes_the_relay_to_test(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path, charger={"free_vend": False})) as charger:
        await charger.wait_for(lambda: len(charger.sim().pilot.history) >= 2, what="start-up tests done")
        charger.hardware.connectors[0].board_controlled = True  # as hal.boards builds it
        pilot_commands = len(charger.sim().pilot.history)
        rows = await _selftest(charger)
        assert rows["diode"]["result"] == "skip" and rows["contactor"]["result"] == "pass"
        assert "board" in rows["contactor"]["detail"]
        assert len(charger.sim().pilot.history) == pilot_commands + 1  # only the final make-safe (+12 V)
        assert not any(entry.closed for entry in charger.sim().contactor.history)
