"""The security log in the store: every event kept (bounded), its notification queued in the same transaction."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chargepoint.store import SecurityLogEntry, Store, security_log


def entry(kind: str, i: int = 0, critical: bool = False) -> SecurityLogEntry:
    return SecurityLogEntry(f"2026-12-05T10:00:{i % 60:02d}Z", kind, f"detail {i}", critical, True)


def payload(e: SecurityLogEntry) -> dict[str, str]:
    return {"type": e.kind, "timestamp": e.at, "techInfo": e.tech_info}


async def test_an_event_and_its_notification_are_stored_together_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    async with await Store.open(path) as store:
        assert await store.record_security_event(entry("StartupOfTheDevice", critical=True),
                                                 payload(entry("StartupOfTheDevice")))
        assert not await store.record_security_event(entry("LocalOnly", 1), None)  # logged, nothing to send
    async with await Store.open(path) as store:
        head = await store.outbox_head()
        assert head is not None and head.action == "SecurityEventNotification"
        assert head.payload["type"] == "StartupOfTheDevice"
        assert await store.outbox_len() == 1
        log = await store.security_log()
        assert [(e.kind, e.critical, e.queued) for e in log] == [("LocalOnly", False, False),
                                                                 ("StartupOfTheDevice", True, True)]


async def test_a_flood_of_non_critical_events_is_logged_but_queues_only_up_to_the_cap(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "c.db") as store:
        for i in range(security_log.QUEUED_NON_CRITICAL_MAX + 20):
            e = entry("InvalidMessages", i)
            await store.record_security_event(e, payload(e))
        assert await store.outbox_len() == security_log.QUEUED_NON_CRITICAL_MAX
        critical = entry("TamperDetectionActivated", 99, critical=True)
        assert await store.record_security_event(critical, payload(critical))  # a critical one always goes
        assert await store.outbox_len() == security_log.QUEUED_NON_CRITICAL_MAX + 1
        log = await store.security_log()
        assert len(log) == security_log.QUEUED_NON_CRITICAL_MAX + 21
        assert [e.queued for e in log[1:21]] == [False] * 20


async def test_the_log_keeps_the_newest_entries_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(security_log, "KEPT", 10)
    async with await Store.open(tmp_path / "c.db") as store:
        for i in range(25):
            await store.record_security_event(entry("InvalidMessages", i), None)
        kept = await store.security_log(100)
        assert [e.tech_info for e in kept] == [f"detail {i}" for i in range(24, 14, -1)]


async def test_chargepoint_events_lists_the_security_log_newest_first(tmp_path: Path) -> None:
    async with await Store.open(tmp_path / "chargepoint.db") as store:
        await store.record_security_event(entry("StartupOfTheDevice", 1, critical=True), None)
        await store.record_security_event(entry("QrCodeRefused", 2), None)
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[storage]\ndir = "{tmp_path}"\n')
    shown = await asyncio.to_thread(events_cli, config, "--json")
    assert shown.returncode == 0, shown.stderr
    events = json.loads(shown.stdout)["events"]
    assert [(e["type"], e["critical"]) for e in events] == [("QrCodeRefused", False), ("StartupOfTheDevice", True)]
    text = await asyncio.to_thread(events_cli, config)
    assert text.stdout.splitlines()[0].split()[1] == "QrCodeRefused" and "detail 2" in text.stdout


ROOT = Path(__file__).resolve().parents[2]


def events_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", "events", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
