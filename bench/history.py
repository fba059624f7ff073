"""Report and forecast on a year of a busy two-connector charger: ``python -m bench --history``.

Builds a database with ``sessions`` sessions (default 20,000) and ``events`` history events (default 500,000: status
changes, faults, attempts, link changes) spread over the year before now, then times ``chargepoint report`` (the
whole year) and ``chargepoint forecast`` as an operator runs them (a process each, Python start-up included) and
reads their peak memory (the child's maximum resident set size). The report is timed once from the events alone and
then, as on a charger, with every whole day tallied (store/rollup.py). Targets (issue 15): report <= 1 s,
forecast <= 5 s, memory <= 50 MiB.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargepoint.store import Store, rollup

ROOT = Path(__file__).resolve().parents[1]
STATUS_CYCLE = ("Preparing", "Charging", "SuspendedEV", "Charging", "Finishing", "Available")


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="microseconds")


def build(database: Path, sessions: int, events: int, seed: int = 5) -> None:
    asyncio.run(_migrate(database))
    rng = random.Random(seed)
    end = datetime.now(UTC).replace(microsecond=0)
    start = end - timedelta(days=365)
    span_s = (end - start).total_seconds()
    conn = sqlite3.connect(database)
    try:
        with conn:
            rows = []
            for n in range(sessions):
                begun = start + timedelta(seconds=span_s * n / sessions + rng.uniform(0, 600))
                stopped = begun + timedelta(minutes=rng.uniform(20, 240))
                energy = rng.randint(2_000, 40_000)
                rows.append((str(uuid.uuid4()), 1 + n % 2, f"CARD{rng.randint(0, 3000)}", _iso(begun), n * 10,
                             _iso(stopped), n * 10 + energy, "Local", n * 10 + energy, _iso(stopped), "rfid"))
            conn.executemany(
                "INSERT INTO sessions (session_id, connector_id, id_tag, started_at, meter_start_Wh, stopped_at, "
                "meter_stop_Wh, stop_reason, last_meter_Wh, last_meter_at, payment_method) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("INSERT INTO history (at, mono_s, boot, connector_id, kind, value, detail) "
                          "VALUES (?, 0, 1, 0, 'boot', '0.1.0', '')", (_iso(start),))
            conn.executemany(
                "INSERT INTO history (at, mono_s, boot, connector_id, kind, value, detail) "
                "VALUES (?, ?, 1, ?, ?, ?, ?)",
                _events(rng, start, span_s, events))
    finally:
        conn.close()


def roll_up(database: Path, connectors: int = 2) -> tuple[int, float]:
    """Tally every whole day as the daemon's history recorder does (store/rollup.py): (days, seconds)."""
    conn = sqlite3.connect(database)
    try:
        started = time.perf_counter()
        today = datetime.now(UTC).date()
        with conn:
            days = rollup.roll_up(conn, connectors, today - timedelta(days=400), today - timedelta(days=1), 10_000)
        return len(days), time.perf_counter() - started
    finally:
        conn.close()


def _events(rng: random.Random, start: datetime, span_s: float, count: int) -> Iterator[tuple[object, ...]]:
    for n in range(count):
        at = start + timedelta(seconds=span_s * n / count)
        connector = 1 + n % 2
        roll = rng.random()
        if roll < 0.002:
            yield _iso(at), float(n), connector, "fault", "GroundFailure", "raised"
        elif roll < 0.004:
            yield _iso(at), float(n), connector, "status", "Faulted", "GroundFailure"
        elif roll < 0.01:
            yield _iso(at), float(n), connector, "attempt", "refused", "connector in use"
        elif roll < 0.012:
            yield _iso(at), float(n), 0, "link", rng.choice(("up", "down")), ""
        else:
            yield _iso(at), float(n), connector, "status", STATUS_CYCLE[(n // 2) % len(STATUS_CYCLE)], ""


async def _migrate(database: Path) -> None:
    store = await Store.open(database)
    await store.close()


# The command runs in a Python of its own that writes its peak resident set (VmHWM, of this process image only) when
# it exits: wait4's ru_maxrss would also count the pages the forked bench process had before the exec.
_PEAK_PROBE = ("import atexit, sys\n"
               "PEAK_FILE = sys.argv[1]\n"
               "def peak():\n"
               "    with open('/proc/self/status') as status, open(PEAK_FILE, 'w') as out:\n"
               "        out.write(next(line.split()[1] for line in status if line.startswith('VmHWM:')))\n"
               "atexit.register(peak)\n"
               "sys.argv = ['chargepoint', *sys.argv[2:]]\n"
               "from chargepoint.cli.entry import main\n"
               "main()\n")


def _timed(config: Path | None, *args: str) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one ``chargepoint`` command in a process of its own."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-peak-", suffix=".kib") as peak:
        command = [sys.executable, "-c", _PEAK_PROBE, peak.name, *args,
                   *(() if config is None else ("--config", str(config)))]
        started = time.perf_counter()
        child = subprocess.run(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        elapsed = time.perf_counter() - started
        if child.returncode != 0:
            raise RuntimeError(f"chargepoint {' '.join(args)} failed: {child.stderr!r}")
        return elapsed, int(peak.read()) / 1024


def run(sessions: int, events: int, repeats: int = 3) -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
        directory = Path(tmp)
        started = time.perf_counter()
        # In a process of its own: the bench process stays small.
        subprocess.run([sys.executable, "-c", f"from bench.history import build; from pathlib import Path; "
                        f"build(Path({str(directory / 'chargepoint.db')!r}), {sessions}, {events})"],
                       cwd=ROOT, check=True, timeout=600)
        config = directory / "config.toml"
        config.write_text(f'[hardware]\nbackend = "sim"\n[charger]\nconnectors = 2\n[storage]\ndir = "{directory}"\n'
                          '[forecast]\ncountry = "DE"\n')
        size_mib = (directory / "chargepoint.db").stat().st_size / 2**20
        yield (f"history: {sessions} sessions and {events} events over a year, two connectors "
               f"(database {size_mib:.0f} MiB, built in {time.perf_counter() - started:.1f} s)")
        idle_s, idle_mib = _timed(None, "--help")
        yield f"  for scale: 'chargepoint --help' takes {idle_s:.2f} s and {idle_mib:.0f} MiB (Python and the CLI)"
        end = datetime.now(UTC)
        year = ("report", "--from", _iso(end - timedelta(days=365)), "--to", _iso(end), "--json")
        elapsed, rss = _timed(config, *year)
        yield (f"  report, the whole year, before any day is tallied (every event read): {elapsed:.2f} s, "
               f"peak RSS {rss:.0f} MiB")
        days, roll_s = roll_up(directory / "chargepoint.db")
        yield (f"  tallying the {days} whole days as the daemon does: {roll_s:.1f} s "
               f"({1000 * roll_s / max(days, 1):.0f} ms a day, once a day on a charger)")
        for name, args in (("report, the whole year", year),
                           ("report, the last 30 days (the default)", ("report", "--json")),
                           ("forecast, 4 weeks", ("forecast", "--weeks", "4", "--json"))):
            times = []
            peak = 0.0
            for _ in range(repeats):
                elapsed, rss = _timed(config, *args)
                times.append(elapsed)
                peak = max(peak, rss)
            yield (f"  {name}: best {min(times):.2f} s, worst {max(times):.2f} s of {repeats} runs "
                   f"(a process each, Python start-up included); peak RSS {peak:.0f} MiB")
