"""A hostile CSMS: a fuzzer that throws frames at a real charging daemon and checks that it stands.

The daemon (``python -m chargepoint run``, simulated hardware) connects to this CSMS, registers and starts a
session that charges throughout. Then ``frames`` hostile frames go out as fast as the link takes them, a seeded
mix of:

- CALLs of every CSMS->CP action with mutated payloads (wrong types, missing and unknown fields, huge, negative,
  NaN and Infinity numbers, long strings, deep nesting); actions that would legitimately end the session or
  restart the charger (Reset, RemoteStopTransaction, UnlockConnector, firmware updates, ChangeAvailability,
  ChangeConfiguration, certificate changes) are only ever sent with a payload their schema refuses;
- CALLRESULTs and CALLERRORs for calls never made, unknown message types, arrays too short, non-arrays;
- text that is not JSON, binary frames, frames of a few hundred kB.

It checks what issue 13 asks of the charger: the daemon never exits; every identifiable CALL (a JSON array
``[2, "<id>", ...]``) is answered exactly once; memory levels off (RSS in the last half of the run grows by less
than ``rss_growth_limit_MiB``); the session that charges throughout is not ended (no StopTransaction, still
Charging). The charger's own CALLs are answered as a CSMS would, so it stays registered.

Run: ``python -m bench --hostile-csms [--hostile-frames N] [--hostile-seed S]``; the test suite runs a bounded
size (``tests/e2e/test_hostile_csms.py``, ``CHARGEPOINT_FUZZ_FRAMES``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import websockets
from websockets.asyncio.server import ServerConnection

from bench.ocpp import CARD, DaemonProcess, rss_MiB, write_config

SUBPROTOCOL = "ocpp1.6"
MAX_FRAME_BYTES = 1024 * 1024  # the daemon's default max_frame_bytes: larger frames close the link by design
SAFE_ACTIONS = (
    "CancelReservation", "ChangeConfiguration", "ClearCache", "ClearChargingProfile", "DataTransfer",
    "GetCompositeSchedule", "GetConfiguration", "GetDiagnostics", "GetLocalListVersion", "RemoteStartTransaction",
    "ReserveNow", "SendLocalList", "SetChargingProfile", "TriggerMessage", "GetInstalledCertificateIds",
    "ExtendedTriggerMessage", "GetLog",
)
# Sent only with a payload their schema refuses: valid ones would end the session or restart the charger, which is
# the charger doing as told, not failing.
SCHEMA_BROKEN_ONLY = ("Reset", "RemoteStopTransaction", "UnlockConnector", "UpdateFirmware", "SignedUpdateFirmware",
                      "ChangeAvailability", "InstallCertificate", "DeleteCertificate", "CertificateSigned")
REQUIRED_FIELDS = {  # one required field of each schema-broken action, removed or mistyped
    "Reset": "type", "RemoteStopTransaction": "transactionId", "UnlockConnector": "connectorId",
    "UpdateFirmware": "location", "SignedUpdateFirmware": "requestId", "ChangeAvailability": "type",
    "InstallCertificate": "certificate", "DeleteCertificate": "certificateHashData",
    "CertificateSigned": "certificateChain",
}
# Keys a ChangeConfiguration may touch without changing what the fuzz measures (credentials and intervals that
# reconnect or silence the charger are left alone).
HARMLESS_KEYS = ("ClockAlignedDataInterval", "MeterValuesAlignedData", "LocalAuthorizeOffline", "NoSuchKey",
                 "StopTxnSampledData", "AllowOfflineTxForUnknownId", "ConnectionTimeOut")
REPLIES: dict[str, Callable[[], dict[str, Any]]] = {
    "BootNotification": lambda: {"status": "Accepted", "currentTime": _now(), "interval": 300},
    "Heartbeat": lambda: {"currentTime": _now()},
    "Authorize": lambda: {"idTagInfo": {"status": "Accepted"}},
    "StartTransaction": lambda: {"transactionId": 4711, "idTagInfo": {"status": "Accepted"}},
    "StopTransaction": lambda: {},
    "DataTransfer": lambda: {"status": "UnknownVendorId"},
    "SignCertificate": lambda: {"status": "Rejected"},
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------------------ frames


def _value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(14)
    if kind == 0:
        return rng.choice([float("nan"), float("inf"), -float("inf")])
    if kind == 1:
        return rng.choice([10**308 * 10, 1e308, -1e308, 2**70, -(2**70), -1, 0, 2**31])
    if kind == 2:
        return "x" * rng.choice([0, 1, 51, 500, 20_000])
    if kind == 3 and depth < 3:
        return [_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 4 and depth < 3:
        return {rng.choice(["a", "connectorId", "key", "value", "csChargingProfiles"]): _value(rng, depth + 1)}
    if kind == 5:
        return None
    if kind == 6:
        return rng.choice([True, False])
    if kind == 7:
        return "\u0000\ud7ff\u202e<script>"
    if kind == 8:
        return "2026-13-45T99:99:99Z"
    return rng.randrange(-5, 100)


def _mutated_call(rng: random.Random, unique_id: str) -> str:
    action = rng.choice(SAFE_ACTIONS + SCHEMA_BROKEN_ONLY)
    payload: dict[str, Any] = {}
    for _ in range(rng.randrange(5)):
        payload[rng.choice(["connectorId", "idTag", "key", "value", "type", "requestedMessage", "duration",
                            "chargingProfileId", "location", "vendorId", "listVersion", "unknownField"])] = _value(rng)
    if action == "ChangeConfiguration" and rng.random() < 0.5:
        payload = {"key": rng.choice(HARMLESS_KEYS), "value": str(_value(rng))[:500]}
    elif action == "ChangeConfiguration":
        payload["key"] = rng.choice(HARMLESS_KEYS) if isinstance(payload.get("key"), str) else payload.get("key", 5)
    if action in SCHEMA_BROKEN_ONLY:
        payload[REQUIRED_FIELDS[action]] = {"broken": True}  # an object where the schema wants a scalar or more
        if rng.random() < 0.5:
            payload.pop(REQUIRED_FIELDS[action])
    if action == "RemoteStartTransaction":
        payload["connectorId"] = rng.choice([2, 3, -1, 2**40])  # never connector 1's running session
    if action == "GetDiagnostics" or action == "GetLog":
        payload["location" if action == "GetDiagnostics" else "log"] = rng.choice(
            ["http://127.0.0.1:9/x", "sftp://nowhere/", 5, {"remoteLocation": "ftp://127.0.0.1:9/"}])
    text = json.dumps([2, unique_id, action, payload], allow_nan=True)
    return text


def hostile_frame(rng: random.Random, n: int) -> tuple[str | bytes, str | None]:
    """One frame and the CALL id the charger must answer (None: nothing to answer)."""
    unique_id = f"hx-{n}"
    kind = rng.randrange(100)
    if kind < 55:
        return _mutated_call(rng, unique_id), unique_id
    if kind < 65:
        return json.dumps([rng.choice([3, 4]), f"stray-{n}", {}] if rng.random() < 0.5 else
                          [4, f"stray-{n}", "GenericError", "", {}]), None
    if kind < 70:
        return json.dumps([rng.choice([0, 1, 5, 99, -1]), unique_id, "Heartbeat", {}]), None
    if kind < 74:
        return rng.choice(["[2]", "[]", "{}", "null", '[2, 5, "Heartbeat", {}]', '[2, "", "Heartbeat", {}]']), None
    if kind < 80:
        broken = f'[2, "{unique_id}", "GetConfiguration", {{"key": [' + rng.choice(['"a"', "", "{", "NaN,"])
        return broken, unique_id  # the id is readable: it gets a FormationViolation
    if kind < 84:
        return "\u0000" * rng.randrange(1, 100) + "not json at all", None
    if kind < 88:
        return bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))), None
    if kind < 92:
        depth = rng.choice([50, 500, 5000])
        return f'[2, "{unique_id}", "DataTransfer", ' + "[" * depth + "]" * depth + "]", unique_id
    if kind < 95:
        size = rng.choice([100_000, 400_000, MAX_FRAME_BYTES - 1000])
        return json.dumps([2, unique_id, "DataTransfer", {"vendorId": "v", "data": "y" * size}]), unique_id
    return json.dumps([2, unique_id, "GetConfiguration", {"key": ["HeartbeatInterval"]}]), unique_id


def _call_id(frame: str | bytes) -> str | None:
    """As the charger must see it: an id it can answer, however broken the rest (text frames only)."""
    if isinstance(frame, bytes):
        return None
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):
        return None
    if isinstance(data, list) and len(data) >= 2 and data[0] == 2 and isinstance(data[1], str) and data[1]:
        return data[1]
    return None


# ------------------------------------------------------------------------------------------------ the CSMS


@dataclass
class FuzzReport:
    frames: int
    seed: int
    elapsed_s: float = 0.0
    calls_sent: int = 0
    answered: int = 0
    unanswered: list[str] = field(default_factory=list)
    answered_twice: list[str] = field(default_factory=list)
    refused_over_limit: int = 0
    daemon_alive: bool = True
    reconnects: int = 0
    stop_transactions: int = 0
    final_status: str = ""
    faults: list[str] = field(default_factory=list)  # the fault log of the run: a starved safety loop shows here
    rss_MiB: list[float] = field(default_factory=list)
    rss_growth_limit_MiB: float = 20.0

    @property
    def rss_growth_MiB(self) -> float:
        """Growth over the second half of the run: memory must level off, whatever the first half took."""
        if len(self.rss_MiB) < 2:
            return 0.0
        half = self.rss_MiB[len(self.rss_MiB) // 2:]
        return max(half) - half[0]

    @property
    def ok(self) -> bool:
        return (self.daemon_alive and not self.unanswered and not self.answered_twice and not self.faults
                and self.stop_transactions == 0 and self.final_status == "Charging"
                and self.rss_growth_MiB < self.rss_growth_limit_MiB)

    def lines(self) -> list[str]:
        peak = max(self.rss_MiB, default=float("nan"))
        return [
            f"hostile CSMS: {self.frames} frames (seed {self.seed}) in {self.elapsed_s:.1f} s "
            f"({self.frames / max(self.elapsed_s, 1e-9):.0f} frames/s)",
            f"  identifiable CALLs {self.calls_sent}: answered {self.answered}, unanswered {len(self.unanswered)}, "
            f"answered twice {len(self.answered_twice)}; handled {self.calls_sent - self.refused_over_limit}, "
            f"refused over the limits {self.refused_over_limit}",
            f"  daemon alive: {self.daemon_alive}; reconnects {self.reconnects}; "
            f"StopTransaction {self.stop_transactions}; connector 1 at the end: {self.final_status}; "
            f"faults {self.faults or 'none'}",
            f"  daemon RSS: start {self.rss_MiB[0] if self.rss_MiB else float('nan'):.1f} MiB, peak {peak:.1f} MiB, "
            f"growth over the second half {self.rss_growth_MiB:.1f} MiB (limit {self.rss_growth_limit_MiB:g})",
            f"  RSS samples (MiB): {' '.join(f'{r:.0f}' for r in self.rss_MiB)}",
            f"  verdict: {'PASS' if self.ok else 'FAIL'}",
        ]


class HostileCsms:
    def __init__(self) -> None:
        self.ws: ServerConnection | None = None
        self.connected = asyncio.Event()
        self.charging = asyncio.Event()
        self.connections = 0
        self.answers: dict[str, int] = {}
        self.refused_over_limit = 0
        self.stop_transactions = 0
        self._answer = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled():
            task.exception()  # a reply lost with the link is the link's story, told elsewhere

    async def answered_all(self, ids: list[str]) -> None:
        while any(i not in self.answers for i in ids):
            self._answer.clear()
            await self._answer.wait()

    async def serve(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.connections += 1
        self.connected.set()
        try:
            async for raw in ws:
                await self._received(ws, raw)
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws is ws:
                self.ws = None
                self.connected.clear()

    async def _received(self, ws: ServerConnection, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except ValueError:
            return
        if not isinstance(message, list) or len(message) < 3:
            return
        if message[0] == 2 and len(message) >= 4:
            action = str(message[2])
            if action == "StopTransaction":
                self.stop_transactions += 1
            if action == "StatusNotification" and message[3].get("status") == "Charging":
                self.charging.set()
            reply = REPLIES.get(action, dict)()
            # Sent by a task of its own: this reader must never stop reading while a send waits for the charger
            # to read (both sides blocked on writes would be a deadlock of the test, not of the charger).
            task = asyncio.create_task(ws.send(json.dumps([3, message[1], reply])))
            self._sends.add(task)
            task.add_done_callback(self._sent)
        elif message[0] in (3, 4) and isinstance(message[1], str):
            self.answers[message[1]] = self.answers.get(message[1], 0) + 1
            self._answer.set()
            if message[0] == 4 and len(message) > 3 and str(message[3]).startswith("refused:"):
                self.refused_over_limit += 1


async def fuzz(frames: int, seed: int = 13, rss_growth_limit_MiB: float = 20.0,
               settle_s: float = 2.0) -> FuzzReport:
    rng = random.Random(seed)
    report = FuzzReport(frames, seed, rss_growth_limit_MiB=rss_growth_limit_MiB)
    csms = HostileCsms()
    with tempfile.TemporaryDirectory(prefix="hostile-csms-") as scratch:
        workdir = Path(scratch)
        async with websockets.serve(csms.serve, "127.0.0.1", 0, subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                                    max_size=None, ping_interval=None) as server:
            port = server.sockets[0].getsockname()[1]
            config = write_config(workdir, f"ws://127.0.0.1:{port}", meter_poll_interval_s=1.0, sample_interval_s=5)
            daemon = DaemonProcess(config)
            daemon.spawn()
            try:
                await daemon.wait_ready()
                await asyncio.wait_for(csms.connected.wait(), 20)
                # Registered (its BootNotification answered), so the card is authorized online, not refused offline.
                deadline = time.monotonic() + 20
                while not (await daemon.status())["csms_connected"]:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the daemon did not register with the hostile CSMS")
                    await asyncio.sleep(0.05)
                for action, argument in (("plug", None), ("tap", CARD), ("charge", None)):
                    await daemon.sim(action, argument)
                await asyncio.wait_for(csms.charging.wait(), 20)
                expected: list[str] = []
                started = time.monotonic()
                report.rss_MiB.append(rss_MiB(daemon.pid)[0])
                sample_every = max(1, frames // 40)
                for n in range(frames):
                    frame, _ = hostile_frame(rng, n)
                    ws = csms.ws
                    if ws is None:  # the link was closed (a hostile frame may do that): wait for the reconnect
                        await asyncio.wait_for(csms.connected.wait(), 60)
                        ws = csms.ws
                        assert ws is not None
                    unique_id = _call_id(frame)
                    try:
                        await ws.send(frame)
                    except websockets.ConnectionClosed:
                        continue
                    if unique_id is not None:
                        expected.append(unique_id)
                    if n % 50 == 0:
                        await asyncio.sleep(0)  # let this CSMS's reader read, as a CSMS that reads at all does
                    if n % sample_every == 0:
                        if not daemon.alive():
                            break
                        report.rss_MiB.append(rss_MiB(daemon.pid)[0])
                        await asyncio.sleep(0)
                # The last answers come in order after the flood: wait for them (bounded), then a little more.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(csms.answered_all(expected[-50:]), settle_s + frames / 2000)
                await asyncio.sleep(settle_s)
                report.elapsed_s = time.monotonic() - started
                report.daemon_alive = daemon.alive()
                if report.daemon_alive:
                    report.rss_MiB.append(rss_MiB(daemon.pid)[0])
                    status = await daemon.status()
                    report.final_status = str(status["connectors"][0]["status"])
                report.calls_sent = len(expected)
                report.answered = sum(1 for i in expected if csms.answers.get(i, 0) >= 1)
                report.unanswered = [i for i in expected if i not in csms.answers][:20]
                report.answered_twice = [i for i in expected if csms.answers.get(i, 0) > 1][:20]
                report.refused_over_limit = csms.refused_over_limit
                report.reconnects = csms.connections - 1
                report.stop_transactions = csms.stop_transactions
                report.faults = _faults(workdir / "chargepoint.db")
            finally:
                with contextlib.suppress(Exception):
                    await daemon.stop()
                (Path(tempfile.gettempdir()) / "hostile-csms-last-daemon.log").write_bytes(daemon.log_path.read_bytes())
                if not report.daemon_alive or not report.ok:
                    kept = Path(tempfile.gettempdir()) / "hostile-csms-daemon.log"
                    kept.write_bytes(daemon.log_path.read_bytes())
                    print(f"the daemon's log: {kept}")
    return report


def _faults(database: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT code, action, source FROM fault_log ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [f"{code} {action} ({source})" for code, action, source in rows]


def run(frames: int, seed: int) -> list[str]:
    return asyncio.run(fuzz(frames, seed)).lines()


if __name__ == "__main__":
    import sys

    print("\n".join(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000, 13)))
