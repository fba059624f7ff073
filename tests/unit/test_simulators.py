"""The simulated hardware keeps the hardware's rules: these are what the runtime's tests stand on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import pytest

from hal.errors import LockError
from hal.protocols import (
    ConnectorLock,
    Contactor,
    ControlPilot,
    MainsMonitor,
    ResidualCurrentMonitor,
    RfidReader,
)
from simulators.ev import offered_current_A
from simulators.station import SimActionError, SimConnector, SimParameters, SimulatedStation

T = TypeVar("T")

FAST = SimParameters(ev_follow_s=0.2, contactor_feedback_delay_s=0.01, lock_delay_s=0.01)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 1.0) -> None:
    """Wait for a simulated device to get somewhere in real time (timers, ramps)."""
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


async def next_of(iterator: AsyncIterator[T], timeout_s: float = 1.0) -> T:
    async with asyncio.timeout(timeout_s):
        return await anext(iterator)


def drawn_A(connector: SimConnector) -> float:
    currents = connector.snapshot()["drawn_A"]
    assert isinstance(currents, list)
    value = currents[0]
    assert isinstance(value, float)
    return value


async def charging(params: SimParameters, duty_percent: float) -> SimConnector:
    connector = SimConnector(1, params)
    connector.apply("plug")
    connector.apply("charge")
    await connector.pilot.set_pwm(duty_percent)
    await connector.contactor.close()
    await eventually(connector.contactor.feedback_closed)
    return connector


@pytest.mark.parametrize(
    ("duty_percent", "expected_A"),
    [(5.0, 0.0), (8.0, 6.0), (9.9, 6.0), (10.0, 6.0), (26.7, 16.02), (50.0, 30.0), (85.0, 51.0),
     (90.0, 65.0), (96.0, 80.0), (97.0, 0.0), (100.0, 0.0)],
)
def test_offered_current_follows_iec_61851_duty_table(duty_percent: float, expected_A: float) -> None:
    assert offered_current_A(duty_percent) == pytest.approx(expected_A)


async def test_devices_implement_the_hal_ports() -> None:
    connector = SimConnector(1, FAST)
    assert isinstance(connector.pilot, ControlPilot)
    assert isinstance(connector.contactor, Contactor)
    assert isinstance(connector.rfid, RfidReader)
    assert isinstance(connector.lock, ConnectorLock)
    assert isinstance(connector.rcd, ResidualCurrentMonitor)
    assert isinstance(connector.mains, MainsMonitor)


async def test_ev_draws_the_lower_of_offered_current_and_its_own_maximum() -> None:
    limited = await charging(SimParameters(ev_max_current_A=16.0, ev_follow_s=0.1,
                                           contactor_feedback_delay_s=0.01), 50.0)
    await eventually(lambda: drawn_A(limited) == pytest.approx(16.0))
    offered = await charging(SimParameters(ev_follow_s=0.1, contactor_feedback_delay_s=0.01), 26.7)
    await eventually(lambda: drawn_A(offered) == pytest.approx(16.02))


async def test_ev_follows_a_lower_duty_within_follow_time() -> None:
    connector = await charging(FAST, 50.0)
    await eventually(lambda: drawn_A(connector) == pytest.approx(30.0))
    await connector.pilot.set_pwm(10.0)
    changed_at_s = time.monotonic()
    assert drawn_A(connector) > 20.0  # it ramps, it does not jump
    await eventually(lambda: drawn_A(connector) == pytest.approx(6.0), timeout_s=1.0)
    assert time.monotonic() - changed_at_s <= FAST.ev_follow_s + 0.1


async def test_ev_draws_nothing_without_pwm_closed_contactor_or_request() -> None:
    connector = await charging(FAST, 26.7)
    await eventually(lambda: drawn_A(connector) > 15.0)
    await connector.pilot.set_high()
    assert drawn_A(connector) < 16.0
    await eventually(lambda: drawn_A(connector) == 0.0)
    await connector.pilot.set_pwm(26.7)
    await eventually(lambda: drawn_A(connector) > 15.0)
    connector.apply("pause")
    assert drawn_A(connector) == 0.0
    connector.apply("charge")
    await eventually(lambda: drawn_A(connector) > 15.0)
    await connector.contactor.open()
    await eventually(lambda: not connector.contactor.feedback_closed())
    assert drawn_A(connector) == 0.0


async def test_overcurrent_ev_ignores_the_offered_current() -> None:
    connector = await charging(FAST, 10.0)
    connector.apply("fault", "overcurrent")
    await eventually(lambda: drawn_A(connector) == pytest.approx(32.0))


async def test_single_phase_ev_loads_only_l1() -> None:
    connector = await charging(SimParameters(ev_phases=1, ev_follow_s=0.05,
                                             contactor_feedback_delay_s=0.01), 26.7)
    await eventually(lambda: drawn_A(connector) > 15.0)
    assert connector.phase_currents_A()[1:] == (0.0, 0.0)


async def test_full_battery_makes_the_ev_leave_state_c_by_itself() -> None:
    params = SimParameters(ev_battery_Wh=1_000, ev_soc_percent=99.0, ev_follow_s=0.01,
                           contactor_feedback_delay_s=0.01, time_scale=100.0)
    connector = await charging(params, 50.0)
    await eventually(lambda: connector.snapshot()["ev_state"] == "B", timeout_s=2.0)
    assert connector.pilot.latest().high_V == 9.0
    assert drawn_A(connector) == 0.0
    with pytest.raises(SimActionError, match="full"):
        connector.apply("charge")


@pytest.mark.parametrize(
    ("actions", "expected_high_V"),
    [([], 12.0), (["plug"], 9.0), (["plug", "charge"], 6.0), (["plug", "vent"], 3.0)],
)
async def test_pilot_levels_follow_the_ev_state(actions: list[str], expected_high_V: float) -> None:
    connector = SimConnector(1, FAST)
    for action in actions:
        connector.apply(action)
    assert connector.pilot.latest().high_V == expected_high_V
    assert connector.pilot.latest().low_V == expected_high_V  # no PWM: no negative half
    await connector.pilot.set_pwm(50.0)
    assert connector.pilot.latest().high_V == expected_high_V
    assert connector.pilot.latest().low_V == -12.0


async def test_pilot_negative_output_reads_minus_12_v() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("plug")
    await connector.pilot.set_negative()
    reading = connector.pilot.latest()
    assert (reading.high_V, reading.low_V) == (-12.0, -12.0)
    assert connector.pilot.output()[0] == "negative"


async def test_pilot_short_reads_state_e() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("plug")
    await connector.pilot.set_pwm(50.0)
    connector.apply("fault", "pilot-short")
    reading = connector.pilot.latest()
    assert (reading.high_V, reading.low_V) == (0.0, 0.0)
    connector.apply("clear-fault")
    assert connector.pilot.latest().high_V == 9.0


async def test_diode_failure_removes_the_negative_half_only_under_pwm_with_an_ev() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("fault", "diode-failure")
    await connector.pilot.set_pwm(50.0)
    assert connector.pilot.latest().low_V == -12.0  # no EV, no diode to miss
    connector.apply("plug")
    assert connector.pilot.latest().high_V == 9.0
    assert connector.pilot.latest().low_V > -10.5


async def test_pilot_readings_yield_current_first_then_every_change_to_each_subscriber() -> None:
    connector = SimConnector(1, FAST)
    first = connector.pilot.readings()
    second = connector.pilot.readings()
    assert [(await next_of(it)).high_V for it in (first, second)] == [12.0, 12.0]
    connector.apply("plug")
    await connector.pilot.set_pwm(20.0)
    a, b = await next_of(first), await next_of(second)
    assert (a.high_V, a.low_V) == (9.0, 9.0)
    assert (b.high_V, b.low_V) == (9.0, 9.0)
    c = await next_of(first)
    assert (c.high_V, c.low_V) == (9.0, -12.0)
    await connector.pilot.set_pwm(30.0)  # same levels: no new reading
    connector.apply("charge")
    d = await next_of(first)
    assert d.high_V == 6.0
    outputs = [(entry.output.value, entry.duty_percent) for entry in connector.pilot.history]
    assert outputs == [("pwm", 20.0), ("pwm", 30.0)]
    await connector.pilot.aclose()
    with pytest.raises(StopAsyncIteration):
        while True:
            await next_of(second)


async def test_contactor_feedback_follows_the_command_after_its_delay() -> None:
    connector = SimConnector(1, SimParameters(contactor_feedback_delay_s=0.05))
    feedback = connector.contactor.feedback()
    assert await next_of(feedback) is False
    await connector.contactor.close()
    assert connector.contactor.commanded_closed() is True
    assert connector.contactor.feedback_closed() is False  # not before the mirror contact confirms
    assert await next_of(feedback) is True
    await connector.contactor.open()
    assert await next_of(feedback) is False
    assert [entry.closed for entry in connector.contactor.history] == [True, False]


async def test_welded_contactor_stays_closed_after_open() -> None:
    connector = await charging(FAST, 26.7)
    connector.apply("fault", "weld")
    await connector.contactor.open()
    await asyncio.sleep(FAST.contactor_feedback_delay_s * 5)
    assert connector.contactor.commanded_closed() is False
    assert connector.contactor.feedback_closed() is True
    connector.apply("clear-fault")
    assert connector.contactor.feedback_closed() is False


async def test_weld_injected_while_open_welds_on_the_next_close() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("fault", "weld")
    assert connector.contactor.feedback_closed() is False
    await connector.contactor.close()
    await eventually(connector.contactor.feedback_closed)
    await connector.contactor.open()
    await asyncio.sleep(FAST.contactor_feedback_delay_s * 5)
    assert connector.contactor.feedback_closed() is True


async def test_contactor_stuck_open_never_confirms_close() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("plug")
    connector.apply("charge")
    await connector.pilot.set_pwm(26.7)
    connector.apply("fault", "contactor-stuck-open")
    await connector.contactor.close()
    await asyncio.sleep(FAST.contactor_feedback_delay_s * 5)
    assert connector.contactor.feedback_closed() is False
    assert drawn_A(connector) == 0.0


async def test_lock_works_and_lock_failure_raises_lock_error() -> None:
    connector = SimConnector(1, FAST)
    await connector.lock.lock()
    assert connector.lock.is_locked()
    connector.apply("fault", "lock-failure")
    with pytest.raises(LockError):
        await connector.lock.unlock()
    assert connector.lock.is_locked()


async def test_fixed_cable_makes_the_lock_tethered_and_a_no_op() -> None:
    connector = SimConnector(1, FAST)
    assert connector.lock.tethered is False
    connector.apply("fault", "fixed-cable")
    assert connector.lock.tethered is True
    connector.apply("fault", "lock-failure")
    await connector.lock.lock()  # a fixed cable has no lock to fail
    assert not connector.lock.is_locked()


async def test_rfid_tap_is_yielded_upper_case() -> None:
    connector = SimConnector(1, FAST)
    tags = connector.rfid.tags()
    assert "04a1b2c3" in connector.apply("tap", "04a1b2c3").lower()
    assert await next_of(tags) == "04A1B2C3"


async def test_rcd_trips_on_ground_fault_and_resets_on_clear() -> None:
    connector = SimConnector(1, FAST)
    trips = connector.rcd.trips()
    assert await next_of(trips) is False
    connector.apply("fault", "ground-fault")
    assert connector.rcd.tripped() is True
    assert await next_of(trips) is True
    connector.apply("clear-fault")
    assert await next_of(trips) is False


async def test_power_loss_stops_the_ev_and_is_reported_by_the_mains_monitor() -> None:
    connector = await charging(FAST, 26.7)
    changes = connector.mains.changes()
    assert await next_of(changes) is True
    await eventually(lambda: drawn_A(connector) > 15.0)
    connector.apply("fault", "power-loss")
    assert await next_of(changes) is False
    assert connector.mains.present() is False
    assert drawn_A(connector) == 0.0
    assert connector.snapshot()["power_W"] == 0.0
    connector.apply("clear-fault")
    assert await next_of(changes) is True
    await eventually(lambda: drawn_A(connector) > 15.0)


@pytest.mark.parametrize(
    ("action", "argument", "message"),
    [
        ("teleport", None, "unknown action"),
        ("fault", "meteor-strike", "unknown fault kind"),
        ("fault", None, "needs a kind"),
        ("tap", None, "needs the card UID"),
        ("charge", None, "no EV is plugged in"),
        ("vent", None, "no EV is plugged in"),
        ("unplug", None, "no EV is plugged in"),
        ("plug", "now", "is not a PP code"),
        ("plug", "16", "is not a PP code"),
    ],
)
def test_impossible_or_malformed_actions_raise_sim_action_error(
    action: str, argument: str | None, message: str
) -> None:
    connector = SimConnector(1, FAST)
    with pytest.raises(SimActionError, match=message) as caught:
        connector.apply(action, argument)
    assert isinstance(caught.value, ValueError)


def test_plugging_twice_is_refused() -> None:
    connector = SimConnector(1, FAST)
    connector.apply("plug")
    with pytest.raises(SimActionError, match="already plugged"):
        connector.apply("plug")


def test_station_rejects_an_absent_connector() -> None:
    station = SimulatedStation(FAST, connector_count=2)
    assert station.connector(2).connector_id == 2
    with pytest.raises(ValueError, match=r"connectors 1\.\.2"):
        station.connector(3)


async def test_snapshot_is_json_able() -> None:
    import json

    connector = await charging(FAST, 26.7)
    connector.apply("fault", "overcurrent")
    state = json.loads(json.dumps(connector.snapshot()))
    assert state["ev_state"] == "C"
    assert state["faults"] == ["overcurrent"]
    assert state["contactor_feedback_closed"] is True
