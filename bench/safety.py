"""Safety reaction: simulated pilot change to the contactor-open command, with meter polling and logging on.

The measured path is the production one: the simulator publishes a new pilot reading, the pilot
loop classifies it, the event goes through the queue into the core, and the runtime executes
``OpenContactor`` on the contactor port. The clock stops when ``contactor.open()`` has returned.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

from chargepoint.composition.charger import build_charger
from chargepoint.composition.devices import build_hardware, station_of
from chargepoint.config.loader import parse_config
from chargepoint.core.commands import CloseContactor, Command, OpenContactor
from chargepoint.store import Store

KINDS = ("C->B", "->A", "->E", "->F")


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


async def measure(events: int, workdir: Path) -> dict[str, list[float]]:
    config = parse_config(
        {
            "hardware": {"backend": "sim"},
            "charger": {"meter_poll_interval_s": 0.1, "pwm_min_update_interval_s": 0.0},
            "simulator": {"contactor_feedback_delay_s": 0.0, "lock_delay_s": 0.0, "ev_follow_s": 0.0},
            "storage": {"dir": str(workdir)},
        },
        workdir / "config.toml",
    )
    # Logging runs as in production (INFO, to a file instead of journald).
    handler = logging.FileHandler(workdir / "bench.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    hardware = await build_hardware(config)
    store = await Store.open(config.storage.database_path)
    app = build_charger(config, hardware, store)
    station = station_of(hardware)
    assert station is not None
    sim = station.connector(1)
    loop = asyncio.get_running_loop()
    waiters: dict[type, asyncio.Future[float]] = {}

    def on_command(connector_id: int, command: Command) -> None:
        future = waiters.pop(type(command), None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())

    app.on_command = on_command

    def expect(kind: type) -> asyncio.Future[float]:
        future: asyncio.Future[float] = loop.create_future()
        waiters[kind] = future
        return future

    stop = asyncio.Event()
    run_task = asyncio.create_task(app.run(stop))
    results: dict[str, list[float]] = {kind: [] for kind in KINDS}
    try:
        while app.status()["connectors"][0]["meter_energy_Wh"] is None:  # noqa: ASYNC110 - polls the sim
            await asyncio.sleep(0.01)
        for i in range(events):
            kind = KINDS[i % len(KINDS)]
            closed = expect(CloseContactor)
            if sim.faults:
                sim.apply("clear-fault")
            if not sim.ev.plugged:
                sim.apply("plug")
            if not sim.ev.requesting:
                sim.apply("charge")
            await asyncio.wait_for(closed, 5)
            while not sim.contactor.feedback_closed():  # noqa: ASYNC110 - polls the sim
                await asyncio.sleep(0)
            opened = expect(OpenContactor)
            t0 = time.perf_counter()
            if kind == "C->B":
                sim.apply("pause")
            elif kind == "->A":
                sim.apply("unplug")
            elif kind == "->E":
                sim.apply("fault", "pilot-short")
            else:
                sim.apply("fault", "pilot-negative")
            t1 = await asyncio.wait_for(opened, 5)
            results[kind].append((t1 - t0) * 1000)
    finally:
        stop.set()
        await run_task
        await store.close()
        await hardware.aclose()
        root.removeHandler(handler)
    return results


def run(events: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-") as tmp:
        results = asyncio.run(measure(events, Path(tmp)))
    lines = [f"safety reaction, pilot change -> contactor open command ({events} events, meter polling 10/s, "
             "logging INFO):"]
    everything = sorted(v for values in results.values() for v in values)
    for kind, values in [*results.items(), ("all", everything)]:
        values = sorted(values)
        lines.append(
            f"  {kind:>5}: n={len(values):5d}  p50 {percentile(values, 0.5):.3f} ms  "
            f"p99 {percentile(values, 0.99):.3f} ms  max {values[-1]:.3f} ms"
        )
    lines.append("  target: p99 <= 2 ms, max <= 50 ms")
    return lines
