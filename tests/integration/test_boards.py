"""EVSE boards end to end: the real drivers talk to ``chargepoint board-sim`` processes over a pty, then the real
daemon drives a simulated board and is killed with SIGKILL mid-charge.

What a board does when its controller dies is each board's own: an OpenEVSE's heartbeat supervision lowers the
current to 6 A and keeps charging; an EVSE-DIN has no supervision and keeps charging at the last current. The kill
tests assert exactly that, then that the restarted daemon's early safe path opens the relay (what systemd's
``Restart=`` buys; docs/hardware.md says what an installer adds for a controller that does not come back).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chargepoint.core.pilot import PilotState, classify, duty_from_current
from hal.boards import BoardHardware, BoardSettings, create_board_hardware
from hal.drivers.evse_din import EvseDinBoard, ModbusRejected
from hal.drivers.openevse_rapi import decode_frame, open_serial
from hal.errors import HalError
from hal.hardware import LazyMeter
from hal.protocols import EnergyMeter
from hal.registry import load_backend
from simulators.meter_server import MeterServer, MeterValues

pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
KINDS = ("openevse", "evse-din")
SUPERVISION_S = 2  # OpenEVSE heartbeat interval in these tests
Line = dict[str, Any]


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


class BoardSim:
    """``chargepoint board-sim`` as a process: stimuli on its stdin, its JSON lines collected by a thread."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.link = directory / f"{kind}.tty"
        self.lines: list[Line] = []
        self._stderr = (directory / f"{kind}-sim.err").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chargepoint", "board-sim", kind, "--link", str(self.link)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=_env(), cwd=ROOT,
        )
        threading.Thread(target=self._collect, daemon=True).start()
        deadline_s = time.monotonic() + 10
        while not self.link.is_symlink():
            assert self.process.poll() is None and time.monotonic() < deadline_s, "board-sim did not start"
            time.sleep(0.02)

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for text in self.process.stdout:
            self.lines.append(json.loads(text))

    def send(self, *stimuli: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write("".join(f"{s}\n" for s in stimuli))
        self.process.stdin.flush()

    async def wait_for(self, predicate: Callable[[Line], bool], timeout_s: float, what: str,
                       since_s: float = 0.0) -> Line:
        """The first line printed at or after ``since_s`` (unix time) that ``predicate`` accepts."""
        deadline_s = time.monotonic() + timeout_s
        seen = 0
        while True:
            for line in self.lines[seen:]:
                seen += 1
                if line["t"] >= since_s and predicate(line):
                    return line
            if time.monotonic() > deadline_s:
                raise AssertionError(f"board-sim never printed {what}; last lines: {self.lines[-5:]}")
            await asyncio.sleep(0.01)

    def since(self, since_s: float) -> list[Line]:
        return [line for line in self.lines if line["t"] >= since_s]

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._stderr.close()
        return self.process.returncode


@pytest.fixture(params=KINDS)
def sim(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BoardSim]:
    board = BoardSim(request.param, tmp_path)
    yield board
    board.stop()


def _unused_meter() -> EnergyMeter:
    raise AssertionError("the driver tests read no meter")


def board_hardware(sim: BoardSim, **settings: Any) -> BoardHardware:
    kind = "evse-din" if "evse-din" in sim.link.name else "openevse"
    defaults: dict[str, Any] = {"supervision_s": SUPERVISION_S} if kind == "openevse" else {}
    return create_board_hardware(
        BoardSettings(kind=kind, link=str(sim.link), **{**defaults, **settings}),
        meter=LazyMeter(_unused_meter), rfid=load_backend("rfid", "none")(),
        lock=load_backend("lock", "gpio").tethered_cable(), display=load_backend("display", "log")(1),
        tethered_cable_A=32.0 if kind == "openevse" else None,
    )


def pilot_state(hw: BoardHardware) -> PilotState:
    pilot = hw.connectors[0].pilot
    return classify(pilot.latest(), pilot.output()[0])


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- the drivers against the simulators


async def test_a_session_through_the_ports_switches_the_boards_relay(sim: BoardSim) -> None:
    hw = board_hardware(sim)
    try:
        await hw.force_safe()  # as the daemon does first: both boards come up offering current on their own
        await hw.start()
        c = hw.connectors[0]
        sim.send("plug", "charge")
        await until(lambda: pilot_state(hw) is PilotState.B, 2, "state B (the EV sees no PWM yet)")
        duty = duty_from_current(16)
        assert duty is not None
        await c.pilot.set_pwm(duty)
        line = await sim.wait_for(lambda line: line["contactor_closed"], 2, "the relay closing in state C")
        assert (line["pilot"], line["current_A"], line["duty_percent"]) == ("pwm", 16, duty)
        await until(lambda: pilot_state(hw) is PilotState.C, 2, "state C")
        await c.contactor.close()
        await until(c.contactor.feedback_closed, 2, "the relay reported closed")

        opened_s = time.time()
        await c.contactor.open()
        line = await sim.wait_for(lambda line: not line["contactor_closed"], 2, "the relay opening", opened_s)
        assert line["t"] - opened_s < 0.5, "open() must open the relay at once"
        await until(lambda: not c.contactor.feedback_closed(), 2, "the relay reported open")
        await c.pilot.set_high()
        await sim.wait_for(lambda line: line["pilot"] == "high", 2, "+12 V", opened_s)
    finally:
        await hw.aclose()


async def charge(sim: BoardSim, hw: BoardHardware) -> None:
    """Plug, offer 16 A, let the EV charge, close: the relay closed and reported so."""
    c = hw.connectors[0]
    await hw.force_safe()
    await hw.start()
    sim.send("plug", "charge")
    duty = duty_from_current(16)
    assert duty is not None
    await c.pilot.set_pwm(duty)
    await until(lambda: pilot_state(hw) is PilotState.C, 2, "state C")
    await c.contactor.close()
    await until(c.contactor.feedback_closed, 2, "the relay reported closed")


async def test_an_rcd_trip_on_the_board_trips_the_rcd_port_and_opens_the_relay(sim: BoardSim) -> None:
    hw = board_hardware(sim)
    try:
        await charge(sim, hw)
        tripped_s = time.time()
        sim.send("fault rcd")
        await until(hw.connectors[0].rcd.tripped, 2, "the RCD port tripped")
        line = await sim.wait_for(lambda line: not line["contactor_closed"], 2, "the relay open", tripped_s)
        assert line["t"] - tripped_s < 0.5  # the board opens it itself
        sim.send("clear")
        await until(lambda: not hw.connectors[0].rcd.tripped(), 2, "the RCD port reset")
    finally:
        await hw.aclose()


async def test_a_welded_relay_is_reported_by_the_openevse_and_invisible_to_the_evse_din(sim: BoardSim) -> None:
    hw = board_hardware(sim)
    c = hw.connectors[0]
    try:
        await charge(sim, hw)
        sim.send("fault weld")
        await asyncio.sleep(0.1)
        await c.contactor.open()
        await sim.wait_for(lambda line: line["state"] in ("0x08", 3), 2, "the board's stop")
        await asyncio.sleep(0.5)  # longer than the feedback grace
        assert sim.lines[-1]["contactor_closed"], "the contacts stuck"
        if "openevse" in sim.link.name:
            assert c.contactor.feedback_closed(), "the stuck-relay state is a welded contactor on the port"
        else:
            # The EVSE-DIN reports the relay it drives, not its contacts: docs/hardware.md says so.
            assert not c.contactor.feedback_closed()
    finally:
        await hw.aclose()


async def test_the_evse_din_reads_the_cable_rating_on_pp_and_limits_the_offer(tmp_path: Path) -> None:
    sim = BoardSim("evse-din", tmp_path)
    hw = board_hardware(sim)
    try:
        await hw.force_safe()
        await hw.start()
        c = hw.connectors[0]
        assert c.pp.cable_max_A() is None
        sim.send("plug 20")
        await until(lambda: c.pp.cable_max_A() == 20.0, 2, "the 20 A cable on PP")
        duty = duty_from_current(32)
        assert duty is not None
        offered_s = time.time()
        await c.pilot.set_pwm(duty)
        line = await sim.wait_for(lambda line: line["pilot"] == "pwm", 2, "PWM", offered_s)
        assert line["current_A"] == 20  # the board itself keeps to the cable
        with pytest.raises(ModbusRejected) as refused:
            driver = hw.board.driver
            assert isinstance(driver, EvseDinBoard)
            await driver.write(1001, 5)  # read-only register
        assert refused.value.code == 2
    finally:
        await hw.aclose()
        sim.stop()


def test_a_corrupted_rapi_command_is_answered_nk(tmp_path: Path) -> None:
    sim = BoardSim("openevse", tmp_path)
    fd = open_serial(str(sim.link), 115200)
    try:
        os.write(fd, b"$GS^31\r")  # the right checksum is 30
        reply = b""
        deadline_s = time.monotonic() + 2
        while not reply.endswith(b"\r") or b"$NK" not in reply:
            assert time.monotonic() < deadline_s, f"no $NK, got {reply!r}"
            try:
                reply += os.read(fd, 256)
            except BlockingIOError:
                time.sleep(0.01)
        frame = decode_frame(reply[reply.rindex(b"$NK") :].decode())
        assert (frame.kind, frame.seq_id) == ("NK", None)
    finally:
        os.close(fd)
        sim.stop()


async def test_a_board_that_falls_silent_faults_the_pilot(sim: BoardSim) -> None:
    hw = board_hardware(sim, link_timeout_s=0.5, timeout_s=0.2)
    try:
        await hw.start()
        readings = hw.connectors[0].pilot.readings()
        await anext(readings)
        sim.process.kill()  # the board loses power
        started_s = time.monotonic()
        with pytest.raises(HalError, match="link lost"):
            while True:
                await anext(readings)
        assert time.monotonic() - started_s < 1.5
    finally:
        await hw.aclose()


# ---------------------------------------------------------------------- the daemon, killed with SIGKILL

DAEMON_CONFIG = """\
[charger]
free_vend = true
meter_poll_interval_s = 0.2
{cable}
[hardware]
backend = "board"
[hardware.board]
kind = "{kind}"
link = "{link}"
{supervision}
[hardware.meter]
transport = "tcp"
host = "127.0.0.1"
port = {meter_port}
[hardware.rfid]
backend = "none"
[storage]
dir = "{dir}"
"""


class Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.log_path = config_path.parent / "daemon.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chargepoint", "run", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=_env(), cwd=ROOT,
            )

    def signal(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def cleanup(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.mark.parametrize("kind", KINDS)
async def test_kill_9_mid_charge_leaves_the_board_doing_what_its_firmware_does(kind: str, tmp_path: Path) -> None:
    meter = MeterServer(lambda: MeterValues((230.0,) * 3, (0.0,) * 3, 1_000.0, (0.0,) * 3, online=True))
    await meter.start()
    sim = BoardSim(kind, tmp_path)
    config_path = tmp_path / "config.toml"
    config_path.write_text(DAEMON_CONFIG.format(
        kind=kind, link=sim.link, meter_port=meter.port, dir=tmp_path,
        cable="tethered_cable = true" if kind == "openevse" else "",  # an OpenEVSE has no PP input
        supervision=f"supervision_s = {SUPERVISION_S}" if kind == "openevse" else "",
    ))
    daemon = Daemon(config_path)
    try:
        daemon.start()
        await until(lambda: (tmp_path / "control.sock").exists(), 20, "the daemon ready")
        sim.send("plug", "charge")
        try:
            charging = await sim.wait_for(lambda line: line["contactor_closed"], 20, "the relay closed")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{daemon.log()}") from None
        assert charging["current_A"] == 32
        await until(lambda: time.time() > charging["t"] + 1, 2, "a second of charging (heartbeats running)")

        killed_s = time.time()
        assert daemon.signal(signal.SIGKILL) == -signal.SIGKILL
        if kind == "openevse":
            # The heartbeat supervision fires one interval after the last heartbeat: the current drops to the
            # firmware's 6 A minimum and the relay stays closed.
            fallback = await sim.wait_for(lambda line: line["current_A"] == 6, SUPERVISION_S + 1.5,
                                          "the fallback current", killed_s)
            assert fallback["t"] - killed_s <= SUPERVISION_S + 0.5
            assert fallback["duty_percent"] == 10.0 and fallback["heartbeat_missed"]
            assert all(line["contactor_closed"] for line in sim.since(killed_s))
        else:
            # No supervision: nothing changes at all, however long the controller stays dead.
            await until(lambda: time.time() > killed_s + 3, 5, "3 s")
            assert sim.lines[-1]["contactor_closed"] and sim.lines[-1]["current_A"] == 32
            assert sim.since(killed_s) == []

        restarted_s = time.time()
        daemon.start()
        stopped = await sim.wait_for(lambda line: not line["contactor_closed"], 10, "the relay opened", restarted_s)
        assert stopped["t"] - restarted_s < 5, "the early safe path stops the board"
        # The restarted daemon takes the EV back (free vend) and charges again.
        await sim.wait_for(lambda line: line["contactor_closed"] and line["current_A"] == 32, 15,
                           "charging again", stopped["t"])
        assert daemon.signal(signal.SIGTERM) == 0, daemon.log()
        assert not sim.lines[-1]["contactor_closed"]
    finally:
        daemon.cleanup()
        sim.stop()
        await meter.stop()


@pytest.mark.parametrize("kind", KINDS)
async def test_a_close_held_back_by_the_rate_limit_withdraws_the_offer_so_the_board_cannot_close(
    kind: str, tmp_path: Path
) -> None:
    """A board closes its relay by itself for an EV in C under PWM: while the core holds a close back it must not
    offer PWM, or the board's close reads as a welded contactor."""
    meter = MeterServer(lambda: MeterValues((230.0,) * 3, (0.0,) * 3, 1_000.0, (0.0,) * 3, online=True))
    await meter.start()
    sim = BoardSim(kind, tmp_path)
    config_path = tmp_path / "config.toml"
    config_path.write_text(DAEMON_CONFIG.format(
        kind=kind, link=sim.link, meter_port=meter.port, dir=tmp_path,
        cable="tethered_cable = true\ncontactor_closes_per_min_max = 2" if kind == "openevse"
        else "contactor_closes_per_min_max = 2",
        supervision=f"supervision_s = {SUPERVISION_S}" if kind == "openevse" else "",
    ))
    daemon = Daemon(config_path)
    try:
        daemon.start()
        await until(lambda: (tmp_path / "control.sock").exists(), 20, "the daemon ready")
        sim.send("plug")
        for _ in range(2):  # two closes: the limit for this minute (each held long enough for the daemon to see)
            since_s = time.time()
            sim.send("charge")
            await sim.wait_for(lambda line: line["contactor_closed"], 10, "the relay closed", since_s)
            await asyncio.sleep(0.5)
            since_s = time.time()
            sim.send("pause")
            await sim.wait_for(lambda line: not line["contactor_closed"], 10, "the relay open", since_s)
            await asyncio.sleep(0.5)
        # The daemon has used up its closes: it withdraws the offer (a real EV takes far longer than this to ask again).
        await sim.wait_for(lambda line: line["duty_percent"] != 53.3, 5, "the offer withdrawn", since_s)
        held_s = time.time()
        sim.send("charge")
        await until(lambda: time.time() > held_s + 2, 3, "2 s")
        assert not any(line["contactor_closed"] for line in sim.since(held_s)), sim.since(held_s)
        status_cli = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargepoint", "status", "--json", "--config", str(config_path),
            stdout=asyncio.subprocess.PIPE, env=_env(), cwd=ROOT)
        stdout, _ = await asyncio.wait_for(status_cli.communicate(), 20)
        status = json.loads(stdout)
        connector = status["connectors"][0]
        assert connector["faults"] == [] and connector["status"] == "SuspendedEVSE", connector
        assert daemon.signal(signal.SIGTERM) == 0, daemon.log()
    finally:
        daemon.cleanup()
        sim.stop()
        await meter.stop()
