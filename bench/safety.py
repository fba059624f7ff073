"""Safety reaction, end to end: a pilot change at the (simulated) device -> the contactor command at the device.

Two set-ups, with the event loop loaded as in production:

1. **Simulated hardware in the charger's process** (``[hardware] backend = "sim"``), built by the composition root
   as the daemon builds it. The clock starts when the simulated EV changes its pilot state (the reading the
   simulator publishes, ``SimPilot.latest().measured_at_s``) and stops when ``SimContactor`` receives the open
   command (its ``history`` entry, ``time.monotonic()`` on both sides). In between: the pilot sampler, the pilot
   loop, the runtime's queue, the core, the command. Meanwhile every connector charges, with an OCPP 1.6 session
   to the test CSMS (another process, on 127.0.0.1) sending MeterValues every second, the meter read every 0.1 s
   over Modbus TCP, the sessions and meter values journaled in SQLite and logging at INFO.
2. **Each EVSE board simulator** (``chargepoint board-sim``, its own process on a pty) driven by the daemon
   (``chargepoint run``, ``[hardware] backend = "board"``): see ``bench.safety_boards``.

Each cycle is charge -> event -> re-arm. The core allows ``contactor_closes_per_min_max`` closes a minute per
connector (10 by default); the benchmark sets 60, the most the schema allows, and spaces one connector's closes by
``CLOSE_SPACING_S``: a connector yields at most one event a second, so the in-process set-up measures several
connectors in turn. Their sessions are short (one or two events), so one more connector charges for the whole run
and keeps a transaction with its MeterValues every second going.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from bench.safety_common import (
    CLOSE_SPACING_S,
    CLOSES_PER_MIN_MAX,
    EVENT_DELAY_MAX_S,
    MAX_TARGET_MS,
    P99_TARGET_MS,
    CsmsProcess,
    figure_line,
    percentile,
    until,
)
from chargepoint.composition.charger import build_charger
from chargepoint.composition.devices import build_hardware, station_of
from chargepoint.config.loader import parse_config
from chargepoint.runtime.app import ChargerApp
from chargepoint.store import Store
from simulators.devices import ContactorCommand
from simulators.station import SimConnector

__all__ = ["KINDS", "percentile", "run"]

KINDS = ("C->B", "->A", "->E", "->F")
STIMULI: dict[str, tuple[str, str | None]] = {
    "C->B": ("pause", None),
    "->A": ("unplug", None),
    "->E": ("fault", "pilot-short"),
    "->F": ("fault", "pilot-negative"),
}
LABELS = {
    "C->B": "C->B (EV pauses)      ",
    "->A": "->A (unplug)          ",
    "->E": "->E (pilot short)     ",
    "->F": "->F (pilot at -12 V)  ",
}
CHARGE_POINT_ID = "BENCH-SIM"
SEED = 20261211


class _CommandWatch(list[ContactorCommand]):
    """``SimContactor.history`` that also hands the next open command to whoever waits for it."""

    def __init__(self, items: Iterable[ContactorCommand]) -> None:
        super().__init__(items)
        self.open_waiter: asyncio.Future[ContactorCommand] | None = None

    def append(self, item: ContactorCommand) -> None:
        super().append(item)
        waiter = self.open_waiter
        if not item.closed and waiter is not None and not waiter.done():
            waiter.set_result(item)


def _watch(sim: SimConnector) -> _CommandWatch:
    watch = _CommandWatch(sim.contactor.history)
    sim.contactor.history = watch
    return watch


def _last_close_s(watch: _CommandWatch) -> float:
    return next((command.at_s for command in reversed(watch) if command.closed), -math.inf)


async def _arm(app: ChargerApp, sim: SimConnector, watch: _CommandWatch, after_close_s: float) -> float:
    """Bring the connector back to charging, contactor closed; returns when it was commanded closed."""
    wait_s = after_close_s + CLOSE_SPACING_S - time.monotonic()
    if wait_s > 0:
        await asyncio.sleep(wait_s)
    if sim.faults:
        sim.apply("clear-fault")
    if not sim.ev.plugged:
        sim.apply("plug")
    if not sim.ev.requesting:
        sim.apply("charge")
    core = app.connectors[sim.connector_id].core

    def charging() -> bool:
        return core.contactor_commanded and sim.contactor.feedback_closed() and str(core.status) == "Charging"

    await until(charging, 10, f"connector {sim.connector_id} charging again", poll_s=0.05)
    return _last_close_s(watch)


async def _event(sim: SimConnector, watch: _CommandWatch, kind: str) -> float:
    """Change the pilot as ``kind`` says; milliseconds until the contactor received the open command."""
    loop = asyncio.get_running_loop()
    opened: asyncio.Future[ContactorCommand] = loop.create_future()
    watch.open_waiter = opened
    before = sim.pilot.latest()
    action, argument = STIMULI[kind]
    sim.apply(action, argument)
    changed = sim.pilot.latest()
    if changed is before:
        raise RuntimeError(f"connector {sim.connector_id}: {kind} did not change the pilot reading")
    command = await asyncio.wait_for(opened, 5)
    watch.open_waiter = None
    return (command.at_s - changed.measured_at_s) * 1000


async def _measure(events: int, connectors: int, workdir: Path) -> tuple[dict[str, list[float]], dict[str, int]]:
    async with CsmsProcess(workdir) as csms:
        config = parse_config(
            {
                "charger": {
                    "connectors": connectors + 1,  # the last one charges all along
                    "free_vend": True,
                    "meter_poll_interval_s": 0.1,
                    "contactor_closes_per_min_max": CLOSES_PER_MIN_MAX,
                },
                "hardware": {"backend": "sim"},
                "ocpp": {"csms_url": csms.url, "charge_point_id": CHARGE_POINT_ID,
                         "meter_value_sample_interval_s": 1},
                "storage": {"dir": str(workdir)},
            },
            workdir / "config.toml",
        )
        hardware = await build_hardware(config)
        try:
            store = await Store.open(config.storage.database_path)
            try:
                station = station_of(hardware)
                if station is None:
                    raise RuntimeError("the safety benchmark needs the simulated backend")
                app = build_charger(config, hardware, store)
                results = await _cycle(app, events, station.connectors[:-1], station.connectors[-1])
            finally:
                await store.close()
        finally:
            await hardware.aclose()
        return results, await csms.counts()


async def _cycle(app: ChargerApp, events: int, sims: list[SimConnector], background: SimConnector
                 ) -> dict[str, list[float]]:
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    rng = random.Random(SEED)
    watches = {sim.connector_id: _watch(sim) for sim in sims}
    async with asyncio.TaskGroup() as tg:
        run_task = tg.create_task(app.run(stop, ready=on_ready))
        try:
            await asyncio.wait_for(ready.wait(), 20)
            await until(lambda: app.csms is not None and app.csms.connected, 20, "the CSMS connection")
            await until(lambda: all(c.last_reading is not None for c in app.connectors.values()), 20, "the meters")
            await _arm(app, background, _watch(background), -math.inf)
            arming = {
                sim.connector_id: tg.create_task(_arm(app, sim, watches[sim.connector_id], -math.inf))
                for sim in sims
            }
            for i in range(events):
                sim = sims[i % len(sims)]
                kind = KINDS[(i // len(sims) + i % len(sims)) % len(KINDS)]  # each connector sees every kind
                watch = watches[sim.connector_id]
                closed_s = await arming[sim.connector_id]
                await asyncio.sleep(rng.uniform(0, EVENT_DELAY_MAX_S))
                results[kind].append(await _event(sim, watch, kind))
                arming[sim.connector_id] = tg.create_task(_arm(app, sim, watch, closed_s))
            for task in arming.values():
                await task
        finally:
            stop.set()
        await run_task
    return results


def _logging_to(path: Path) -> tuple[logging.Handler, list[tuple[logging.Logger, int]]]:
    """Logging as the daemon has it (INFO, pymodbus quiet), to a file instead of journald."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root, pymodbus = logging.getLogger(), logging.getLogger("pymodbus")
    saved = [(root, root.level), (pymodbus, pymodbus.level)]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    pymodbus.setLevel(logging.CRITICAL)
    return handler, saved


def run_simulated(events: int, connectors: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-safety-") as tmp:
        handler, saved = _logging_to(Path(tmp) / "charger.log")
        started_s = time.monotonic()
        try:
            results, counts = asyncio.run(_measure(events, connectors, Path(tmp)))
        finally:
            logging.getLogger().removeHandler(handler)
            handler.close()
            for logger, level in saved:
                logger.setLevel(level)
        elapsed_s = time.monotonic() - started_s
    lines = [
        f"  simulated hardware in the charger's process, {events} events on {connectors} connector(s) in turn, "
        f"{elapsed_s:.0f} s: pilot change at the simulated EV -> open command at the simulated contactor",
        f"    load: one more connector charging all along; OCPP 1.6 to the test CSMS (another process), MeterValues "
        f"every 1 s; every meter read every 0.1 s over Modbus TCP; SQLite journal; logging INFO; the CSMS received "
        f"{counts.get('MeterValues', 0)} MeterValues, {counts.get('StartTransaction', 0)} StartTransaction, "
        f"{counts.get('StopTransaction', 0)} StopTransaction",
    ]
    for kind in KINDS:
        lines.append(figure_line(LABELS[kind], results[kind]))
    lines.append(figure_line("all                   ", [v for values in results.values() for v in values]))
    return lines


def run(events: int, board_events: int = 30, connectors: int = 4) -> Iterator[str]:
    """Both set-ups, their lines as each ends; ``events`` in the charger's process, ``board_events`` through each
    board (0: none)."""
    yield (f"safety reaction, end to end (targets: p99 <= {P99_TARGET_MS:g} ms, max <= {MAX_TARGET_MS:g} ms; "
           f"contactor_closes_per_min_max = {CLOSES_PER_MIN_MAX} for the benchmark):")
    if events > 0:
        yield from run_simulated(events, connectors)
    if board_events > 0:
        from bench import safety_boards

        yield from safety_boards.run(board_events)
