"""What the two safety set-ups share: the figures and their targets, child processes, the CSMS process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

ROOT = Path(__file__).resolve().parents[1]
P99_TARGET_MS = 10.0
MAX_TARGET_MS = 100.0
# The core allows contactor_closes_per_min_max closes in any 60 s (10 by default, at most 60). The benchmarks set 60
# and space the closes of one connector by at least this much, so that the limiter never holds a close back: on an
# EVSE board a held-back close is a relay the board closed by itself, which the daemon then takes for a weld.
CLOSES_PER_MIN_MAX = 60
CLOSE_SPACING_S = 1.1
# The event comes this long (uniformly drawn) after the connector is ready, so that it falls anywhere in the meter
# polling (0.1 s) and MeterValues (1 s) cycles.
EVENT_DELAY_MAX_S = 0.25


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def figure_line(label: str, values_ms: list[float], *, targets: bool = True) -> str:
    """``label: n, p50, p99, max`` and whether the targets are met."""
    if not values_ms:
        return f"    {label}: no events"
    values = sorted(values_ms)
    p99, worst = percentile(values, 0.99), values[-1]
    verdict = ""
    if targets:
        met = p99 <= P99_TARGET_MS and worst <= MAX_TARGET_MS
        verdict = "  targets met" if met else "  TARGETS MISSED"
    return (f"    {label}: n={len(values)}  p50 {percentile(values, 0.5):.2f} ms  p99 {p99:.2f} ms  "
            f"max {worst:.2f} ms{verdict}")


def child_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")


async def stop_process(process: asyncio.subprocess.Process, timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it does not exit within ``timeout_s``; its exit code."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            async with asyncio.timeout(timeout_s):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode


async def until(predicate: Callable[[], bool], timeout_s: float, what: str, poll_s: float = 0.02) -> None:
    """Poll ``predicate`` (only while a connector is being made ready, never during a measurement)."""
    deadline_s = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline_s:
            raise TimeoutError(f"timed out after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(poll_s)


class CsmsProcess:
    """``bench.safety_csms`` as a child process: the test CSMS on 127.0.0.1, off the measured event loop."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self._stderr: TextIO | None = None
        self._lock = asyncio.Lock()
        self.url = ""

    async def __aenter__(self) -> CsmsProcess:
        self._stderr = (self._directory / "csms.err").open("w")
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.safety_csms",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=self._stderr,
            env=child_env(), cwd=ROOT,
        )
        try:
            hello = await self._read(timeout_s=20)
            self.url = str(hello["url"])
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.stdin is not None:
                process.stdin.close()  # end of stdin: the CSMS stops its server and exits
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await process.wait()
            await stop_process(process)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    async def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self._process is not None and self._process.stdout is not None
        async with asyncio.timeout(timeout_s):
            line = await self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the CSMS process exited; see {self._directory / 'csms.err'}")
        reply = json.loads(line)
        assert isinstance(reply, dict)
        return reply

    async def _ask(self, command: str, timeout_s: float = 15) -> dict[str, Any]:
        async with self._lock:
            assert self._process is not None and self._process.stdin is not None
            self._process.stdin.write(command.encode() + b"\n")
            await self._process.stdin.drain()
            return await self._read(timeout_s)

    async def remote_stop(self, charge_point_id: str, transaction_id: int) -> float:
        """Send RemoteStopTransaction; the unix time just before the CSMS sent it."""
        reply = await self._ask(f"remote-stop {charge_point_id} {transaction_id}")
        if reply.get("status") != "Accepted":
            raise RuntimeError(f"RemoteStopTransaction of {transaction_id} not accepted: {reply}")
        return float(reply["t"])

    async def configure(self, charge_point_id: str, key: str, value: str) -> None:
        """ChangeConfiguration, as an operator would send it."""
        reply = await self._ask(f"configure {charge_point_id} {key} {value}")
        if reply.get("status") != "Accepted":
            raise RuntimeError(f"ChangeConfiguration {key}={value} not accepted: {reply}")

    async def counts(self) -> dict[str, int]:
        """The CALLs the CSMS received so far, by action."""
        reply = await self._ask("counts")
        counts = reply["counts"]
        assert isinstance(counts, dict)
        return {str(action): int(n) for action, n in counts.items()}
