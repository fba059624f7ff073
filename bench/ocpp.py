"""OCPP figures, and the kill -9 durability scenario shared with ``tests/e2e/test_ocpp_durability.py``.

- start-up: ``Popen`` of ``python -m chargepoint run`` -> BootNotification received by the test CSMS, with a
  long outbox and a large local authorization list in the database;
- RSS of that daemon (``/proc/<pid>/status``) a few seconds after registering;
- durable enqueue latency as the event loop sees it, with a 1 ms ticker measuring how late the loop runs;
- queue drain rate: queued transaction messages delivered to the loopback CSMS, messages per second;
- durability: a charging daemon killed with SIGKILL at random moments and restarted while the CSMS goes
  down and up; afterwards every transaction message must have reached the CSMS exactly once.

The test CSMS (``simulators.csms.TestCsms``) runs on this process's event loop; the daemon is a real
subprocess, driven through its control socket (no CLI process per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.safety import percentile
from chargepoint.cli.control_client import request as control_request
from chargepoint.core.ocpp_auth import IdTagEntry
from chargepoint.errors import ControlError
from chargepoint.store import OutboxMessage, SessionRecord, Store
from simulators.csms import Frame, TestCsms

ROOT = Path(__file__).resolve().parents[1]
CP_ID = "CP-BENCH-1"
CARD = "04B3E4C5"
TRANSACTION_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
DB_NAME = "chargepoint.db"

DAEMON_CONFIG = """\
[charger]
connectors = {connectors}
meter_poll_interval_s = {meter_poll_interval_s}
contactor_feedback_timeout_s = 0.3
[hardware]
backend = "sim"
[simulator]
contactor_feedback_delay_s = 0.01
lock_delay_s = 0.01
ev_follow_s = 0.1
[storage]
dir = "{dir}"
[ocpp]
csms_url = "{url}"
charge_point_id = "{cp_id}"
meter_value_sample_interval_s = {sample_interval_s}
"""


def write_config(
    workdir: Path,
    csms_url: str,
    *,
    connectors: int = 1,
    meter_poll_interval_s: float = 1.0,
    sample_interval_s: int = 60,
) -> Path:
    path = workdir / "config.toml"
    path.write_text(DAEMON_CONFIG.format(
        connectors=connectors, meter_poll_interval_s=meter_poll_interval_s, dir=workdir, url=csms_url, cp_id=CP_ID,
        sample_interval_s=sample_interval_s,
    ))
    return path


def wire_time(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def meter_values_payload(connector_id: int, at: datetime, energy_Wh: int) -> dict[str, Any]:
    return {
        "connectorId": connector_id,
        "transactionId": 0,  # patched at send time with the CSMS's id
        "meterValue": [{"timestamp": wire_time(at), "sampledValue": [
            {"value": str(energy_Wh), "context": "Sample.Periodic", "measurand": "Energy.Active.Import.Register",
             "unit": "Wh", "location": "Outlet"}]}],
    }


def _start_message(payload: dict[str, Any]) -> Callable[[str], list[OutboxMessage]]:
    return lambda session_id: [OutboxMessage("StartTransaction", payload, session_id)]


def _stop_message(payload: dict[str, Any]) -> Callable[[SessionRecord], list[OutboxMessage]]:
    return lambda record: [OutboxMessage("StopTransaction", payload, record.session_id)]


async def queue_closed_sessions(store: Store, messages: int, *, per_session: int = 1000, id_tag: str = CARD,
                                connector_id: int = 1) -> int:
    """Queue ``messages`` undelivered transaction messages, as a charger offline for a long time would have:
    closed sessions, each StartTransaction + MeterValues + StopTransaction. Returns the number of sessions."""
    if messages <= 0:
        return 0
    sessions = 0
    at = datetime.now(UTC) - timedelta(seconds=messages + 60)
    energy_Wh = 1000
    left = messages
    while left > 0:
        size = min(per_session, left)
        if size < 2:  # a lone message still needs its own session: a short MeterValues-less one is 2
            size = 2
        start_payload = {"connectorId": connector_id, "idTag": id_tag, "meterStart": energy_Wh,
                         "timestamp": wire_time(at)}
        record = await store.begin_session(connector_id, id_tag, energy_Wh, at,
                                           messages=_start_message(start_payload))
        batch: list[OutboxMessage] = []
        for _ in range(size - 2):
            at += timedelta(seconds=1)
            energy_Wh += 3
            batch.append(OutboxMessage("MeterValues", meter_values_payload(connector_id, at, energy_Wh),
                                       record.session_id))
            if len(batch) == 1000:
                await store.enqueue(batch)
                batch = []
        if batch:
            await store.enqueue(batch)
        at += timedelta(seconds=1)
        stop_payload = {"transactionId": 0, "idTag": id_tag, "meterStop": energy_Wh, "timestamp": wire_time(at),
                        "reason": "Local"}
        await store.end_session(record.session_id, energy_Wh, at, "Local", messages=_stop_message(stop_payload))
        at += timedelta(seconds=1)
        sessions += 1
        left -= size
    return sessions


async def prepare_database(path: Path, *, queued: int = 0, per_session: int | None = None, cards: int = 0,
                           extra_cards: Sequence[str] = (), keys: dict[str, str] | None = None) -> None:
    """A database as the daemon would find it at boot: ``queued`` outbox messages, a local list of ``cards``
    (+ ``extra_cards``) accepted idTags, and OCPP keys as a CSMS would have set them (ChangeConfiguration)."""
    store = await Store.open(path)
    try:
        entries = [IdTagEntry(f"{i:08X}", "Accepted") for i in range(cards)]
        entries += [IdTagEntry(tag, "Accepted") for tag in extra_cards]
        if entries:
            await store.local_list_update(1, entries, full=True)
        for name, value in (keys or {}).items():
            await store.set_kv("ocpp.key." + name, value)
        await queue_closed_sessions(store, queued, per_session=per_session or max(2, queued))
    finally:
        await store.close()


def copy_database(template: Path, target_dir: Path) -> Path:
    target = target_dir / DB_NAME
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            (target_dir / (DB_NAME + suffix)).unlink()
    shutil.copyfile(template, target)
    os.chmod(target, 0o600)
    return target


# ------------------------------------------------------------------------------------------ the daemon


def rss_MiB(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", float("nan")), values.get("VmHWM", float("nan"))


class DaemonProcess:
    """``python -m chargepoint run`` as a subprocess, driven through its control socket."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.workdir = config_path.parent
        self.log_path = self.workdir / "daemon.log"
        self.socket_path = self.workdir / "control.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def spawn(self) -> float:
        """Start the process; returns the perf_counter() just before Popen."""
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        with self.log_path.open("ab") as log:
            self.spawned_at = time.perf_counter()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chargepoint", "run", "--config", str(self.config_path)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )
        return self.spawned_at

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    async def request(self, payload: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
        return await control_request(self.socket_path, payload, timeout_s)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until the control socket answers (it opens once the app runs)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"daemon exited with {self.process and self.process.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(ControlError, OSError, ValueError):
                reply = await self.request({"op": "status"}, timeout_s=2.0)
                if reply.get("ok"):
                    return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"daemon not ready within {timeout_s} s:\n{self.log_tail()}")

    async def sim(self, action: str, argument: str | None = None, connector: int = 1) -> dict[str, Any]:
        return await self.request({"op": "sim", "connector": connector, "action": action, "argument": argument})

    async def status(self) -> dict[str, Any]:
        reply = await self.request({"op": "status"})
        status = reply.get("status")
        assert isinstance(status, dict)
        return status

    async def kill(self) -> None:
        """SIGKILL, as a power cut would: no shutdown code runs."""
        if self.alive():
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
        await self.wait_exit(10)

    async def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if self.process is None:
            return None
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            await self.wait_exit(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await self.wait_exit(10)
        return self.process.returncode

    async def wait_exit(self, timeout_s: float) -> None:
        if self.process is not None:
            await asyncio.to_thread(self.process.wait, timeout_s)


# ------------------------------------------------------------------------------------------ start-up and RSS


@dataclass
class StartupRun:
    boot_ms: float
    rss_MiB: float
    hwm_MiB: float


async def _one_startup(template: Path, workdir: Path, settle_s: float) -> StartupRun:
    copy_database(template, workdir)
    async with TestCsms() as csms:
        boot_at: list[float] = []

        def on_frame(frame: Frame) -> None:
            if not boot_at and frame.direction == "in" and frame.action == "BootNotification":
                boot_at.append(time.perf_counter())

        csms.on_frame = on_frame
        daemon = DaemonProcess(write_config(workdir, csms.url))
        t0 = daemon.spawn()
        try:
            await csms.wait_for_call("BootNotification", timeout_s=60)
            await asyncio.sleep(settle_s)  # registered, draining the queue, local list in memory
            rss, hwm = rss_MiB(daemon.pid)
        finally:
            await daemon.stop()
    return StartupRun((boot_at[0] - t0) * 1000, rss, hwm)


def startup_and_rss(queued: int, cards: int, runs: int, settle_s: float = 3.0) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-ocpp-") as tmp:
        template = Path(tmp) / "template.db"
        t0 = time.perf_counter()
        asyncio.run(prepare_database(template, queued=queued, cards=cards))
        prepare_s = time.perf_counter() - t0
        work = Path(tmp) / "run"
        work.mkdir()
        results = [asyncio.run(_one_startup(template, work, settle_s)) for _ in range(runs)]
    boots = sorted(r.boot_ms for r in results)
    return [
        f"process start -> BootNotification at the CSMS, {queued} queued outbox messages and a {cards}-card local "
        f"list in the database ({runs} runs, database prepared in {prepare_s:.1f} s):",
        f"  p50 {percentile(boots, 0.5):.0f} ms  max {boots[-1]:.0f} ms   (target <= 1500 ms)",
        f"daemon RSS with that state loaded, {settle_s:g} s after BootNotification (queue draining):",
        f"  RSS max {max(r.rss_MiB for r in results):.1f} MiB, peak (VmHWM) {max(r.hwm_MiB for r in results):.1f} "
        "MiB   (target <= 60 MiB)",
    ]


# ------------------------------------------------------------------------------------------ enqueue latency


async def _enqueue_latency(template: Path, workdir: Path, samples: int) -> tuple[list[float], list[float]]:
    store = await Store.open(copy_database(template, workdir))
    lags_ms: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        while not stop.is_set():
            t0 = time.perf_counter()
            await asyncio.sleep(0.001)
            lags_ms.append((time.perf_counter() - t0 - 0.001) * 1000)

    latencies_ms: list[float] = []
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(ticker())
            await asyncio.sleep(0.05)
            at = datetime.now(UTC)
            for i in range(samples):
                message = OutboxMessage("MeterValues", meter_values_payload(1, at + timedelta(seconds=i), 1000 + i))
                t0 = time.perf_counter()
                await store.enqueue([message])
                latencies_ms.append((time.perf_counter() - t0) * 1000)
            stop.set()
    finally:
        await store.close()
    return latencies_ms, lags_ms


def enqueue_latency(samples: int, queued: int, cards: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-ocpp-") as tmp:
        template = Path(tmp) / "template.db"
        asyncio.run(prepare_database(template, queued=queued, cards=cards))
        work = Path(tmp) / "run"
        work.mkdir()
        latencies, lags = asyncio.run(_enqueue_latency(template, work, samples))
    latencies.sort()
    lags.sort()
    return [
        f"durable enqueue of one MeterValues (WAL, synchronous=FULL, {samples} back to back, {queued} already "
        "queued), as the event loop sees it:",
        f"  p50 {percentile(latencies, 0.5):.2f} ms  p99 {percentile(latencies, 0.99):.2f} ms  "
        f"max {latencies[-1]:.2f} ms   (target p99 <= 5 ms)",
        f"  1 ms ticker meanwhile: {len(lags)} ticks, lag p99 {percentile(lags, 0.99):.2f} ms  max {lags[-1]:.2f} ms "
        "(the loop is not blocked by the disk)",
    ]


# ------------------------------------------------------------------------------------------ drain rate


async def _drain(template: Path, workdir: Path, messages: int) -> tuple[float, float, int]:
    copy_database(template, workdir)
    async with TestCsms() as csms:
        seen: list[float] = []
        boot_at: list[float] = []

        def on_frame(frame: Frame) -> None:
            if frame.direction == "in" and frame.message_type == "CALL" and frame.action in TRANSACTION_ACTIONS:
                seen.append(time.perf_counter())
            elif not boot_at and frame.direction == "in" and frame.action == "BootNotification":
                boot_at.append(time.perf_counter())

        csms.on_frame = on_frame
        daemon = DaemonProcess(write_config(workdir, csms.url))
        daemon.spawn()
        try:
            await csms.wait_for_call("BootNotification", timeout_s=60)
            deadline = time.monotonic() + 60 + messages / 20
            while len(seen) < messages:
                if time.monotonic() > deadline or not daemon.alive():
                    raise RuntimeError(f"only {len(seen)} of {messages} delivered:\n{daemon.log_tail()}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            extra = len(seen) - messages
        finally:
            await daemon.stop()
    elapsed_s = seen[messages - 1] - seen[0]
    rate = (messages - 1) / elapsed_s if elapsed_s > 0 else float("inf")
    return rate, seen[messages - 1] - boot_at[0], extra


def drain_rate(messages: int) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-ocpp-") as tmp:
        template = Path(tmp) / "template.db"
        asyncio.run(prepare_database(template, queued=messages))
        work = Path(tmp) / "run"
        work.mkdir()
        rate, total_s, extra = asyncio.run(_drain(template, work, messages))
    return [
        f"queue drain to a loopback CSMS: {messages} queued transaction messages, one CALL in flight:",
        f"  {rate:.0f} messages/s (first to last CALL); all delivered {total_s:.1f} s after BootNotification"
        f"{'' if extra == 0 else f', {extra} more than queued!'}   (target >= 200/s)",
    ]


# ------------------------------------------------------------------------------------------ durability


@dataclass
class Interruption:
    kind: str  # "kill" or "csms-down"
    mark: int  # len(csms.frames) once every frame of the interrupted connection was read


@dataclass
class DurabilityReport:
    seed: int
    kills: int = 0
    outages: int = 0
    connectors: int = 0
    backlog: int = 0
    enqueued: int = 0  # outbox rows ever written (sqlite_sequence of the AUTOINCREMENT outbox)
    delivered: int = 0  # distinct transaction messages received by the CSMS
    retransmissions: int = 0  # byte-identical resends of a message whose answer was lost in a kill or outage
    duplicated: int = 0
    lost: int = 0
    transactions: int = 0
    left_in_outbox: int = -1
    elapsed_s: float = 0.0
    by_action: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {a}" for a, n in sorted(self.by_action.items()))
        lines = [
            f"durability (seed {self.seed}): {self.connectors} connectors charging, MeterValues every 1 s, "
            f"{self.kills} x kill -9, {self.outages} CSMS outages, {self.elapsed_s:.0f} s",
            f"  {self.enqueued} transaction messages queued ({self.backlog} before the first start), "
            f"{self.delivered} delivered ({counts}), {self.transactions} transactions",
            f"  lost {self.lost}, duplicated {self.duplicated}, identical retransmissions after a lost answer "
            f"{self.retransmissions}, left in the outbox {self.left_in_outbox}   (target: 0 lost, 0 duplicated)",
        ]
        lines += [f"  PROBLEM: {p}" for p in self.problems[:30]]
        if len(self.problems) > 30:
            lines.append(f"  ... and {len(self.problems) - 30} more problems")
        return lines


def payload_text(frame: Frame) -> str:
    """The payload exactly as it was on the wire (the frame minus its message type, id and action)."""
    prefix = json.dumps([2, frame.unique_id, frame.action], separators=(",", ":"))[:-1] + ","
    if frame.raw.startswith(prefix) and frame.raw.endswith("]"):
        return frame.raw[len(prefix):-1]
    return json.dumps(frame.payload, separators=(",", ":"))


def is_transaction_message(frame: Frame) -> bool:
    if frame.direction != "in" or frame.message_type != "CALL" or frame.action not in TRANSACTION_ACTIONS:
        return False
    # MeterValues without a transaction (clock-aligned while idle) are not queued: not transaction messages.
    return frame.action != "MeterValues" or (frame.payload is not None and "transactionId" in frame.payload)


def identity(action: str, payload: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two messages the same message, whatever else differs."""
    if action == "StartTransaction":
        return action, payload.get("connectorId"), payload.get("timestamp")
    if action == "StopTransaction":
        return action, payload.get("transactionId")
    values = payload.get("meterValue") or [{}]
    first = values[0] if isinstance(values[0], dict) else {}
    sampled = first.get("sampledValue") or [{}]
    context = sampled[0].get("context") if isinstance(sampled[0], dict) else None
    return action, payload.get("transactionId"), payload.get("connectorId"), first.get("timestamp"), context


def analyse(
    frames: Sequence[Frame],
    interruptions: Sequence[Interruption],
    transaction_ids: dict[int, dict[str, Any]],
    report: DurabilityReport,
) -> None:
    """Fill ``report`` from what the CSMS received: distinct messages, legitimate retransmissions, duplicates,
    transaction references, stops and meter value order. ``report.enqueued`` must already be set."""
    marks = sorted(i.mark for i in interruptions)
    first_seen: dict[str, int] = {}  # payload text -> index in ``transaction`` of its first arrival
    last_seen: dict[str, int] = {}
    by_identity: dict[tuple[Any, ...], str] = {}
    transaction: list[tuple[int, Frame, str]] = [(i, f, payload_text(f)) for i, f in enumerate(frames)
                                                 if is_transaction_message(f)]
    unique: list[tuple[Frame, dict[str, Any]]] = []
    for position, (index, frame, text) in enumerate(transaction):
        payload = frame.payload or {}
        action = frame.action or ""
        if text in last_seen:
            previous_position = last_seen[text]
            previous_index = transaction[previous_position][0]
            interrupted = any(previous_index < mark <= index for mark in marks)
            # Between the two sends the charger must not have moved on to another message: it would have
            # deleted this one first (delivery is strictly in order, one CALL at a time).
            moved_on = any(t != text for _, _, t in transaction[previous_position + 1:position])
            if interrupted and not moved_on:
                report.retransmissions += 1
            else:
                report.duplicated += 1
                report.problems.append(f"sent again without a lost answer: {action} {text[:160]}")
            last_seen[text] = position
            continue
        first_seen[text] = position
        last_seen[text] = position
        key = identity(action, payload)
        if key in by_identity:
            report.duplicated += 1
            report.problems.append(f"{action} sent twice with different content: {by_identity[key][:120]} / "
                                   f"{text[:120]}")
        by_identity[key] = text
        unique.append((frame, payload))
        report.by_action[action] = report.by_action.get(action, 0) + 1
    report.delivered = len(unique)
    report.lost = max(0, report.enqueued - report.delivered)
    if report.lost:
        report.problems.append(f"{report.lost} queued messages never reached the CSMS")
    if report.delivered > report.enqueued:
        report.problems.append(f"the CSMS got {report.delivered} distinct messages but only {report.enqueued} "
                               "were queued")
    report.transactions = len(transaction_ids)
    stops: dict[int, int] = {}
    meter_times: dict[int, list[str]] = {}
    for frame, payload in unique:
        if frame.action == "StartTransaction":
            continue
        transaction_id = payload.get("transactionId")
        if transaction_id not in transaction_ids:
            report.problems.append(f"{frame.action} refers to unknown transaction {transaction_id}")
            continue
        if frame.action == "StopTransaction":
            stops[transaction_id] = stops.get(transaction_id, 0) + 1
        else:
            meter_times.setdefault(transaction_id, []).append(str(payload["meterValue"][0].get("timestamp")))
    for transaction_id in transaction_ids:
        if stops.get(transaction_id, 0) != 1:
            report.problems.append(f"transaction {transaction_id} stopped {stops.get(transaction_id, 0)} times")
    for transaction_id, times in meter_times.items():
        if times != sorted(times):
            report.problems.append(f"meter values of transaction {transaction_id} out of timestamp order")


def outbox_counts(db_path: Path) -> tuple[int, int, int, int]:
    """(transaction messages ever queued, rows left, open sessions, sessions without a CSMS transaction id),
    read-only."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        # Security event notifications go through the outbox too; they are not transaction messages.
        security = int(conn.execute("SELECT count(*) FROM security_log WHERE queued = 1").fetchone()[0])
        ever = 0 if row is None else int(row[0]) - security
        left = int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])
        open_sessions = int(conn.execute("SELECT count(*) FROM sessions WHERE stopped_at IS NULL").fetchone()[0])
        unconfirmed = int(conn.execute(
            "SELECT count(*) FROM sessions WHERE csms_transaction_id IS NULL").fetchone()[0])
    finally:
        conn.close()
    return ever, left, open_sessions, unconfirmed


async def durability(
    workdir: Path,
    *,
    messages: int = 300,
    kills: int = 8,
    seed: int | None = None,
    connectors: int = 4,
    backlog: int = 0,
    aligned: bool = True,
    outages: bool = True,
    say: Callable[[str], None] = print,
) -> DurabilityReport:
    """Charge on every connector, kill -9 the daemon ``kills`` times at random moments (restarting it and
    charging again each time) while the CSMS goes down and up, until ``messages`` transaction messages were
    queued; then drain, stop the daemon, and account for every message at the CSMS.

    Each charging connector queues a sampled MeterValues every second (MeterValueSampleInterval 1) and, with
    ``aligned``, a clock-aligned one too (ClockAlignedDataInterval 1). ``backlog`` messages of closed
    sessions are queued before the first start, as after a long time offline."""
    seed = random.randrange(1_000_000) if seed is None else seed
    say(f"durability: seed {seed}")
    rng = random.Random(seed)
    report = DurabilityReport(seed=seed, connectors=connectors, backlog=backlog)
    db_path = workdir / DB_NAME
    keys = {"LocalPreAuthorize": "true"}  # the card is in the local list: no Authorize round trip
    if aligned:
        keys["ClockAlignedDataInterval"] = "1"
    await prepare_database(db_path, queued=backlog, per_session=200, extra_cards=[CARD], keys=keys)
    started = time.monotonic()
    interruptions: list[Interruption] = []
    async with TestCsms() as csms:
        config = write_config(workdir, csms.url, connectors=connectors, meter_poll_interval_s=0.2,
                              sample_interval_s=1)
        daemon = DaemonProcess(config)
        stop_chaos = asyncio.Event()

        counted = [0, 0]  # frames looked at, transaction messages among them

        def queued_so_far() -> int:
            for frame in csms.frames[counted[0]:]:
                counted[1] += is_transaction_message(frame)
            counted[0] = len(csms.frames)
            return counted[1]

        # A kill "in flight" lands right when a transaction CALL reaches the CSMS, i.e. in the window where the
        # charger sent a message but has not yet deleted it: the case that forces a retransmission.
        kill_on_next_call = asyncio.Event()
        in_flight_hit = asyncio.Event()

        def on_frame(frame: Frame) -> None:
            if kill_on_next_call.is_set() and is_transaction_message(frame) and daemon.alive():
                kill_on_next_call.clear()
                in_flight_hit.set()
                if rng.random() < 0.5:
                    assert daemon.process is not None
                    daemon.process.send_signal(signal.SIGKILL)  # before the CSMS even answers

        csms.on_frame = on_frame

        async def mark_after_disconnect(kind: str) -> None:
            # Every frame of the interrupted connection must be recorded before the mark.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    while csms.connected(CP_ID):  # noqa: ASYNC110 - TestCsms has no disconnect event
                        await asyncio.sleep(0.01)
            interruptions.append(Interruption(kind, len(csms.frames)))

        async def chaos() -> None:
            while not stop_chaos.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rng.uniform(2.0, 8.0)):
                        await stop_chaos.wait()
                if stop_chaos.is_set():
                    return
                csms.accepting = False
                await csms.disconnect(CP_ID)
                await mark_after_disconnect("csms-down")
                report.outages += 1
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(rng.uniform(0.3, 3.0)):
                        await stop_chaos.wait()
                csms.accepting = True

        async def start_charging() -> None:
            for connector in range(1, connectors + 1):
                for action, argument in (("plug", None), ("tap", CARD), ("charge", None)):
                    reply = await daemon.sim(action, argument, connector)
                    if not reply.get("ok"):
                        raise RuntimeError(f"sim {action} on connector {connector}: {reply}")

        # The gap between kills that spreads them over the run: live messages come at ~1/s per connector
        # (2/s with clock-aligned values).
        live = max(0, messages - backlog)
        gap_s = max(1.0, live / (connectors * (2 if aligned else 1)) / max(1, kills))
        daemon.spawn()
        try:
            async with asyncio.TaskGroup() as tg:
                chaos_task = tg.create_task(chaos()) if outages else None
                while report.kills < kills or queued_so_far() < messages:
                    if not daemon.alive():
                        raise RuntimeError(f"the daemon died on its own:\n{daemon.log_tail()}")
                    early = report.kills < kills and rng.random() < 0.15
                    if not early:
                        await daemon.wait_ready()
                        await start_charging()
                    if report.kills >= kills:
                        await asyncio.sleep(0.5)
                        while queued_so_far() < messages:
                            await asyncio.sleep(0.5)
                            if not daemon.alive():
                                raise RuntimeError(f"the daemon died on its own:\n{daemon.log_tail()}")
                        break
                    # A random moment: sometimes while it boots and recovers, sometimes right when a transaction
                    # message is in flight, otherwise anywhere while it charges.
                    moment = "during start-up" if early else "while charging"
                    if early:
                        await asyncio.sleep(rng.uniform(0.0, 0.8))
                    elif rng.random() < 0.35:
                        await asyncio.sleep(rng.uniform(0.0, gap_s))
                        in_flight_hit.clear()
                        kill_on_next_call.set()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(2 * gap_s + 5):
                                await in_flight_hit.wait()
                        kill_on_next_call.clear()
                        moment = "with a message in flight" if in_flight_hit.is_set() else moment
                        await asyncio.sleep(rng.uniform(0.0, 0.003))
                    else:
                        await asyncio.sleep(rng.uniform(0.0, 2 * gap_s))
                    await daemon.kill()
                    report.kills += 1
                    await mark_after_disconnect("kill")
                    say(f"  kill {report.kills}/{kills} ({moment}), {queued_so_far()} transaction messages at the "
                        "CSMS so far")
                    daemon.spawn()
                stop_chaos.set()
                if chaos_task is not None:
                    await chaos_task
            csms.accepting = True
            # Finish: unplug everything (StopTransaction), then wait for the outbox to empty.
            await daemon.wait_ready()
            for connector in range(1, connectors + 1):
                await daemon.sim("unplug", None, connector)
            deadline = time.monotonic() + 120 + messages / 50
            while True:
                _, left, open_sessions, _ = await asyncio.to_thread(outbox_counts, db_path)
                if left == 0 and open_sessions == 0:
                    break
                if time.monotonic() > deadline:
                    report.problems.append(f"not drained: {left} messages left, {open_sessions} open sessions")
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.3)  # the last CALLRESULT reaches the charger
        finally:
            stop_chaos.set()
            code = await daemon.stop()
            if code not in (0, None, -signal.SIGKILL):
                report.problems.append(f"the daemon exited with {code} on SIGTERM")
        enqueued, left, open_sessions, unconfirmed = await asyncio.to_thread(outbox_counts, db_path)
        report.enqueued = enqueued
        report.left_in_outbox = left
        if left:
            report.problems.append(f"{left} messages left in the outbox")
        if open_sessions:
            report.problems.append(f"{open_sessions} sessions still open")
        if unconfirmed:
            report.problems.append(f"{unconfirmed} sessions never got a CSMS transaction id")
        analyse(csms.frames, interruptions, csms.transaction_ids, report)
    report.elapsed_s = time.monotonic() - started
    return report


def durability_run(messages: int, kills: int, connectors: int, backlog: int, seed: int | None,
                   aligned: bool = True) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="cp-bench-durability-") as tmp:
        report = asyncio.run(durability(Path(tmp), messages=messages, kills=kills, seed=seed,
                                        connectors=connectors, backlog=backlog, aligned=aligned,
                                        say=lambda line: print(line, flush=True)))
        if not report.ok:
            log = Path(tmp) / "daemon.log"
            kept = Path(tempfile.gettempdir()) / f"cp-durability-{report.seed}.log"
            shutil.copyfile(log, kept)
            return [*report.lines(), f"  daemon log kept in {kept}"]
    return report.lines()


def run(queued: int, cards: int, starts: int, enqueue_samples: int, drain_messages: int) -> list[str]:
    return [
        *startup_and_rss(queued, cards, starts),
        *enqueue_latency(enqueue_samples, queued, cards),
        *drain_rate(drain_messages),
    ]
