"""Safety reaction through each EVSE board simulator: the stimulus written to the board -> the board's relay open.

Four processes on this machine, as a charger with a board has them: the board (``chargepoint board-sim KIND``, on a
pty), the daemon (``chargepoint run`` with ``[hardware] backend = "board"``) that drives it over that line, the test
CSMS (``bench.safety_csms``) and this one, which writes the stimuli, reads the board's output lines and serves the
energy meter (Modbus TCP on 127.0.0.1, the Pi's meter in this topology). The clock is ``time.time()`` on both
sides: taken here just before the stimulus is written (or by the CSMS just before it sends its CALL), and the
board's own timestamp ``t`` on the first output line with ``contactor_closed: false``.

Which paths need the daemon: a board switches its relay itself from the pilot state (``simulators.boards``: the
relay closes in C under PWM and opens when the EV leaves C, unplugs, or when the board sees an RCD trip or a diode
fault), so C->B and ->A measure the board's own reaction: the daemon hears of them afterwards. Neither simulator
has a pilot short (E) or -12 V (F) stimulus, and every fault they model they act on themselves. The path measured
that needs the daemon's command is a remote stop: RemoteStopTransaction from the CSMS -> the daemon withdraws the
offer (OpenEVSE ``$FS``, EVSE-DIN register 1000 = 0) -> the EV leaves C and the board opens its relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

from bench.safety_common import (
    CLOSE_SPACING_S,
    CLOSES_PER_MIN_MAX,
    EVENT_DELAY_MAX_S,
    ROOT,
    CsmsProcess,
    child_env,
    figure_line,
    stop_process,
    until,
)
from chargepoint.cli.control_client import request as control_request
from chargepoint.errors import ControlError
from simulators.meter_server import MeterServer, MeterValues

BOARDS = ("openevse", "evse-din")
PATHS = ("C->B", "->A", "remote stop")
LABELS = {
    "C->B": "C->B: 'pause' written -> relay open, the board's own reaction (no daemon in the path)   ",
    "->A": "->A: 'unplug' written -> relay open, the board's own reaction (no daemon in the path)  ",
    "remote stop": "remote stop: RemoteStopTransaction sent -> daemon withdraws the offer -> relay open",
}
# What makes the EV charge again after each path (the board-sim EV asks for energy only while it sees PWM).
REARM = {
    None: ("plug", "charge"),
    "C->B": ("charge",),
    "->A": ("plug", "charge"),
    "remote stop": ("plug", "charge"),  # after an unplug: the stopped session stays Finishing until the EV leaves
}
CHARGE_POINT_ID = "BENCH-BOARD"
DRAW_A = 10.0  # what the EV draws behind a closed relay: below any offer (the EVSE-DIN boots offering 16 A)
SEED = 20261212
Line = dict[str, Any]


class BoardSimProcess:
    """``chargepoint board-sim KIND --link PATH``: stimuli on its stdin, its JSON output lines collected."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        self.link = directory / f"{kind}.tty"
        self.lines: list[Line] = []
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stderr: TextIO | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        self._stderr = (self._directory / f"{self.kind}-sim.err").open("w")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chargepoint", "board-sim", self.kind, "--link", str(self.link),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._stderr,
            env=child_env(), cwd=ROOT,
        )
        self._reader = asyncio.create_task(self._collect())
        await until(lambda: self.link.is_symlink() or self._exited(), 20, f"{self.kind} board-sim's pty")
        if self._exited():
            raise RuntimeError(f"board-sim {self.kind} exited; see {self._directory / f'{self.kind}-sim.err'}")

    def _exited(self) -> bool:
        return self._process is None or self._process.returncode is not None

    async def _collect(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        while text := await self._process.stdout.readline():
            self.lines.append(json.loads(text))
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def last(self) -> Line | None:
        return self.lines[-1] if self.lines else None

    async def send(self, *stimuli: str) -> float:
        """Write the stimuli; the unix time just before writing."""
        assert self._process is not None and self._process.stdin is not None
        data = "".join(f"{stimulus}\n" for stimulus in stimuli).encode()
        written_s = time.time()
        self._process.stdin.write(data)
        await self._process.stdin.drain()
        return written_s

    async def wait_line(self, predicate: Callable[[Line], bool], since_s: float, timeout_s: float, what: str) -> Line:
        """The first line stamped at or after ``since_s`` (unix time) that ``predicate`` accepts."""
        seen = 0
        async with asyncio.timeout(timeout_s):
            while True:
                changed = self._changed
                for line in self.lines[seen:]:
                    if line["t"] >= since_s and predicate(line):
                        return line
                seen = len(self.lines)
                if self._exited():
                    raise RuntimeError(f"board-sim {self.kind} exited while waiting for {what}")
                await changed.wait()

    async def stop(self) -> None:
        if self._process is not None:
            await stop_process(self._process)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._stderr is not None:
            self._stderr.close()


def _config(kind: str, link: Path, meter_port: int, csms_url: str, directory: Path) -> str:
    lines = [
        "[charger]",
        "free_vend = true",
        "meter_poll_interval_s = 0.1",
        f"contactor_closes_per_min_max = {CLOSES_PER_MIN_MAX}",
    ]
    if kind == "openevse":
        lines.append("tethered_cable = true")  # an OpenEVSE has no PP input
    lines += ["[hardware]", 'backend = "board"']
    if _schema_has_watchdog():
        lines.append('watchdog_device = ""')  # no /dev/watchdog on a development machine
    lines += [
        "[hardware.board]", f'kind = "{kind}"', f'link = "{link}"',
        "[hardware.meter]", 'transport = "tcp"', 'host = "127.0.0.1"', f"port = {meter_port}",
        "[hardware.rfid]", 'backend = "none"',
        "[ocpp]", f'csms_url = "{csms_url}"', f'charge_point_id = "{CHARGE_POINT_ID}"',
        "meter_value_sample_interval_s = 1",
        "[storage]", f'dir = "{directory}"',
        "[logging]", 'level = "INFO"',
    ]
    return "\n".join(lines) + "\n"


def _schema_has_watchdog() -> bool:
    from chargepoint.config.schema import HardwareSettings

    return "watchdog_device" in HardwareSettings.model_fields


class _Meter:
    """The energy meter: the EV draws ``DRAW_A`` on three phases while the board's relay is closed."""

    def __init__(self, board: BoardSimProcess) -> None:
        self._board = board
        self._energy_Wh = 0.0
        self._last_s = time.monotonic()

    def __call__(self) -> MeterValues:
        now_s = time.monotonic()
        line = self._board.last()
        current_A = DRAW_A if line is not None and line["contactor_closed"] else 0.0
        self._energy_Wh += 3 * 230.0 * current_A * (now_s - self._last_s) / 3600
        self._last_s = now_s
        per_phase = self._energy_Wh / 3
        return MeterValues((230.0,) * 3, (current_A,) * 3, self._energy_Wh, (per_phase,) * 3, online=True)


class _Daemon:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.socket = config_path.parent / "control.sock"
        self.log_path = config_path.parent / "daemon.log"
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chargepoint", "run", "--config", str(self.config_path),
                stdout=log, stderr=asyncio.subprocess.STDOUT, env=child_env(), cwd=ROOT,
            )

    async def connector(self) -> dict[str, Any] | None:
        """Connector 1 as ``chargepoint status`` shows it, None while the daemon does not answer."""
        if self._process is None or self._process.returncode is not None:
            raise RuntimeError(f"the daemon exited; its log:\n{self.log()}")
        try:
            reply = await control_request(self.socket, {"op": "status"}, timeout_s=2)
        except ControlError:
            return None
        status = reply.get("status")
        if not reply.get("ok") or not isinstance(status, dict):
            return None
        if not status.get("csms_connected"):
            return None
        connector = status["connectors"][0]
        assert isinstance(connector, dict)
        return connector

    async def wait_connector(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float,
                             what: str) -> dict[str, Any]:
        deadline_s = time.monotonic() + timeout_s
        while True:
            connector = await self.connector()
            if connector is not None and predicate(connector):
                return connector
            if time.monotonic() > deadline_s:
                raise TimeoutError(f"timed out waiting for {what}; last status {connector}\n{self.log()}")
            await asyncio.sleep(0.05)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    async def stop(self) -> int | None:
        if self._process is None:
            return None
        return await stop_process(self._process, timeout_s=15)


def _charging(connector: dict[str, Any]) -> bool:
    """Charging with the contactor closed, and the CSMS's transaction id known (a remote stop can name it)."""
    session = connector.get("session")
    return (
        connector["status"] == "Charging"
        and bool(connector["contactor_closed"])
        and isinstance(session, dict)
        and isinstance(session.get("transaction_id"), int)
    )


async def _measure_board(kind: str, events: int, directory: Path) -> tuple[dict[str, list[float]], dict[str, int]]:
    results: dict[str, list[float]] = {path: [] for path in PATHS}
    rng = random.Random(SEED)
    board = BoardSimProcess(kind, directory)
    meter = MeterServer(_Meter(board), host="127.0.0.1", port=0, device_id=1)
    daemon: _Daemon | None = None
    async with CsmsProcess(directory) as csms:
        try:
            await meter.start()
            await board.start()
            config_path = directory / "config.toml"
            config_path.write_text(_config(kind, board.link, meter.port, csms.url, directory))
            daemon = _Daemon(config_path)
            await daemon.start()
            await daemon.wait_connector(lambda c: c["meter_energy_Wh"] is not None, 30, "the daemon ready")
            # One connector's sessions last one or two events: clock-aligned MeterValues keep one a second going.
            await csms.configure(CHARGE_POINT_ID, "ClockAlignedDataInterval", "1")
            previous: str | None = None
            closed_s = -math.inf
            for i in range(events):
                # Ready: charging again, no sooner than CLOSE_SPACING_S after the last close.
                wait_s = closed_s + CLOSE_SPACING_S - time.time()
                if wait_s > 0:
                    await asyncio.sleep(wait_s)
                if previous == "remote stop":
                    await board.send("unplug")
                    await daemon.wait_connector(lambda c: c["status"] == "Available", 10, "the EV gone")
                armed_s = await board.send(*REARM[previous])
                line = await board.wait_line(lambda line: bool(line["contactor_closed"]), armed_s, 10,
                                             "the relay closed")
                closed_s = float(line["t"])
                connector = await daemon.wait_connector(_charging, 10, "the daemon charging")
                await asyncio.sleep(rng.uniform(0, EVENT_DELAY_MAX_S))
                path = PATHS[i % len(PATHS)]
                if path == "remote stop":
                    session = connector["session"]
                    started_s = await csms.remote_stop(CHARGE_POINT_ID, int(session["transaction_id"]))
                else:
                    started_s = await board.send("pause" if path == "C->B" else "unplug")
                opened = await board.wait_line(lambda line: not line["contactor_closed"], started_s, 10,
                                               f"the relay open after {path}")
                results[path].append((float(opened["t"]) - started_s) * 1000)
                previous = path
            counts = await csms.counts()
        except TimeoutError as exc:
            raise RuntimeError(f"{kind}: {exc or 'timed out'}; the board's last lines: {board.lines[-4:]}\n"
                               f"the daemon's log:\n{daemon.log() if daemon else ''}") from exc
        finally:
            code = None if daemon is None else await daemon.stop()
            await board.stop()
            await meter.stop()
        if code not in (0, None):
            raise RuntimeError(f"the daemon exited with {code}; its log:\n{daemon.log() if daemon else ''}")
    return results, counts


def run(events: int) -> Iterator[str]:
    """``events`` cycles through each board (the three paths in turn); its lines as each board ends."""
    for kind in BOARDS:
        with tempfile.TemporaryDirectory(prefix=f"cp-bench-{kind}-") as tmp:
            started_s = time.monotonic()
            results, counts = asyncio.run(_measure_board(kind, events, Path(tmp)))
            elapsed_s = time.monotonic() - started_s
        yield from [
            f"  {kind} board-sim (own process, pty) driven by the daemon (chargepoint run, backend \"board\"), "
            f"{events} events in {elapsed_s:.0f} s: stimulus written -> board output line with the relay open "
            "(time.time() on both sides)",
            f"    load: OCPP 1.6 to the test CSMS, MeterValues every 1 s (sampled in transactions, and clock-aligned: "
            f"ClockAlignedDataInterval = 1); meter read every 0.1 s over Modbus TCP; "
            f"SQLite journal; logging INFO; the CSMS received {counts.get('MeterValues', 0)} MeterValues, "
            f"{counts.get('StartTransaction', 0)} StartTransaction, {counts.get('StopTransaction', 0)} "
            "StopTransaction",
        ]
        for path in PATHS:
            yield figure_line(LABELS[path], results[path])
