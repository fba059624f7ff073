"""The real daemon process against the test CSMS: kill -9 at any moment, Reset re-executing in place."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from pathlib import Path

import pytest

from simulators.csms import DropCall, TestCsms
from tests.integration.test_cli import CONFIG as SIM_CONFIG
from tests.integration.test_cli import Daemon, cli

CP_ID = "CP-PROC-1"
CARD = "04A1B2C3"

# The CLI tests' fast simulated charger, pointed at the test CSMS.
CONFIG = SIM_CONFIG + """\
[ocpp]
csms_url = "{url}"
charge_point_id = "{cp_id}"
meter_value_sample_interval_s = 1
"""

KILL_ROUNDS = int(os.environ.get("CHARGEPOINT_KILL_ROUNDS", "3"))


def write_config(tmp_path: Path, csms: TestCsms) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path, url=csms.url, cp_id=CP_ID))
    return path


async def start_daemon(config_path: Path) -> Daemon:
    daemon = Daemon(config_path)
    await asyncio.to_thread(daemon.start)
    return daemon


def transaction_calls(csms: TestCsms) -> list[tuple[str, dict[str, object]]]:
    return [(f.action or "", f.payload or {}) for f in csms.frames
            if f.direction == "in" and f.message_type == "CALL"
            and f.action in ("StartTransaction", "StopTransaction", "MeterValues")]


async def test_kill_9_during_sessions_loses_and_duplicates_nothing(tmp_path: Path, csms: TestCsms) -> None:
    """Sessions with kill -9 at random moments: every session is started and stopped exactly once at the CSMS,
    each stop after its start, and the sessions killed mid-way stop with reason PowerLoss.

    A kill between sending a StartTransaction and reading its answer makes the charger send the identical
    message again after the restart (at-least-once: it cannot know whether the CSMS got it); the test CSMS
    answers such a retransmission with the same transactionId, as a careful CSMS does, so it still counts as
    one transaction. Anything else sent twice fails the test."""
    config_path = write_config(tmp_path, csms)
    rng = random.Random(1234)
    daemon = await start_daemon(config_path)
    try:
        for _ in range(KILL_ROUNDS):
            await csms.wait_connected(CP_ID)
            await asyncio.to_thread(daemon.sim, "plug")
            await asyncio.to_thread(daemon.sim, "tap", CARD)
            await asyncio.to_thread(daemon.sim, "charge")
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            await asyncio.to_thread(daemon.stop, signal.SIGKILL)
            daemon = await start_daemon(config_path)
            await asyncio.to_thread(daemon.sim, "unplug")
        await csms.wait_connected(CP_ID)
        # Drain: wait until the CSMS has heard of every session's end.
        for _ in range(300):
            calls = transaction_calls(csms)
            stops = [p for a, p in calls if a == "StopTransaction"]
            if len(stops) >= len(csms.transaction_ids) > 0:
                break
            await asyncio.sleep(0.05)
    finally:
        await asyncio.to_thread(daemon.stop)
    calls = transaction_calls(csms)
    starts = [p for a, p in calls if a == "StartTransaction"]
    stops = [p for a, p in calls if a == "StopTransaction"]
    assert 1 <= len(csms.transaction_ids) <= KILL_ROUNDS
    assert len(starts) == len(csms.transaction_ids) + csms.retransmitted_starts
    assert len(stops) == len(csms.transaction_ids), calls
    stopped_ids = [p["transactionId"] for p in stops]
    assert sorted(stopped_ids) == sorted(set(stopped_ids)), "a transaction was stopped twice"
    assert set(stopped_ids) == set(csms.transaction_ids), "a start was never stopped, or a stop has no start"
    for action, payload in calls:
        if action != "StartTransaction":
            assert payload["transactionId"] in csms.transaction_ids
    assert all(p["reason"] == "PowerLoss" for p in stops)


async def test_reset_restarts_the_firmware_in_place_and_boots_again(tmp_path: Path, csms: TestCsms) -> None:
    config_path = write_config(tmp_path, csms)
    daemon = await start_daemon(config_path)
    try:
        await csms.wait_connected(CP_ID)
        await asyncio.to_thread(daemon.sim, "plug")
        await asyncio.to_thread(daemon.sim, "tap", CARD)
        await asyncio.to_thread(daemon.sim, "charge")
        await csms.wait_for_call("StartTransaction")
        pid = daemon.process.pid if daemon.process else None
        boots = len(csms.calls("BootNotification"))
        mark = len(csms.frames)
        assert (await csms.call(CP_ID, "Reset", {"type": "Soft"})) == {"status": "Accepted"}
        stop = await csms.wait_for_call("StopTransaction", timeout_s=15)
        assert stop.payload is not None and stop.payload["reason"] == "SoftReset"
        await csms.wait_for_call("BootNotification", after=mark, timeout_s=20)
        assert len(csms.calls("BootNotification")) == boots + 1
        assert daemon.process is not None and daemon.process.pid == pid  # the same process, re-executed
        # The simulated car stayed plugged in across the reset.
        await asyncio.to_thread(daemon.wait_status, "Preparing")
    finally:
        await asyncio.to_thread(daemon.stop)


@pytest.mark.parametrize("kind", ["Hard"])
async def test_hard_reset_stops_with_reason_hard_reset(tmp_path: Path, csms: TestCsms, kind: str) -> None:
    config_path = write_config(tmp_path, csms)
    daemon = await start_daemon(config_path)
    try:
        await csms.wait_connected(CP_ID)
        await asyncio.to_thread(daemon.sim, "plug")
        await asyncio.to_thread(daemon.sim, "tap", CARD)
        await csms.wait_for_call("StartTransaction")
        await csms.call(CP_ID, "Reset", {"type": kind})
        stop = await csms.wait_for_call("StopTransaction", timeout_s=15)
        assert stop.payload is not None and stop.payload["reason"] == "HardReset"
    finally:
        await asyncio.to_thread(daemon.stop)


@pytest.mark.parametrize("link", ["dropped", "frozen"])
async def test_sigterm_with_a_call_in_flight_stops_the_daemon_in_seconds(tmp_path: Path, csms: TestCsms,
                                                                         link: str) -> None:
    """Issue 13.2: a CALL waiting for its answer on a dead link must not hold a shutdown for its 30 s timeout."""
    config_path = write_config(tmp_path, csms)
    daemon = await start_daemon(config_path)
    try:
        await csms.wait_connected(CP_ID)
        await asyncio.to_thread(daemon.sim, "plug")
        await asyncio.to_thread(daemon.sim, "tap", CARD)
        await asyncio.to_thread(daemon.sim, "charge")
        await csms.wait_for_call("StartTransaction")
        waiting = asyncio.Event()

        def swallow(_cp: str, _payload: dict[str, object]) -> dict[str, object]:
            waiting.set()
            raise DropCall  # the transaction's MeterValues waits for an answer that never comes

        csms.set_handler("MeterValues", swallow)
        await asyncio.wait_for(waiting.wait(), 10)
        if link == "dropped":
            await csms.disconnect(CP_ID, abrupt=True)
        else:
            await csms.freeze(CP_ID)  # half-open: no answer, no close, no pong
        started = time.monotonic()
        code = await asyncio.to_thread(daemon.stop)
        took_s = time.monotonic() - started
    finally:
        await asyncio.to_thread(daemon.stop)
    assert code == 0, daemon.log()[-2000:]
    # A gentle stop of the charging session (about 1 s), at most DELIVER_ON_STOP_S (3 s) for the queued messages,
    # and the close of the link (at most 1 s on a frozen one).
    assert took_s < 7, took_s


async def test_chargepoint_qr_shows_the_code_of_a_free_connector(tmp_path: Path, csms: TestCsms) -> None:
    config_path = write_config(tmp_path, csms)
    config_path.write_text(config_path.read_text() + '[qr]\nenabled = true\npayment_url = "https://pay.example.com/s"\n'
                           'key = "shared-with-the-payment-backend"\n')
    daemon = await start_daemon(config_path)
    try:
        await csms.wait_connected(CP_ID)
        png = tmp_path / "code.png"
        shown = await asyncio.to_thread(cli, "qr", "--config", str(config_path), "--connector", "1", "--png", str(png))
        assert shown.returncode == 0, shown.stderr
        assert "https://pay.example.com/s?cp=CP-PROC-1&c=1&" in shown.stdout
        assert "█" in shown.stdout or "▀" in shown.stdout  # the code itself, drawn on the terminal
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        await asyncio.to_thread(daemon.sim, "plug")
        await asyncio.to_thread(daemon.sim, "tap", CARD)
        await csms.wait_for_call("StartTransaction")
        busy = await asyncio.to_thread(cli, "qr", "--config", str(config_path))
        assert busy.returncode == 1 and "connector 1 is not free" in busy.stderr
    finally:
        await asyncio.to_thread(daemon.stop)
