"""The event history the availability and usage reports read, recorded by the real app on simulated hardware into a
real SQLite file: boots, statuses with their causes, faults, start attempts, clean stops and the outages between."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargepoint import __version__
from chargepoint.store import HistoryEvent, Store
from tests.integration.harness import make_config, running_charger

CARD = "04A1B2C3"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


async def all_events(store: Store) -> list[HistoryEvent]:
    return await store.history_events(EPOCH, datetime.now(UTC) + timedelta(days=1))


def kinds(events: list[HistoryEvent], *wanted: str) -> list[tuple[int, str, str, str]]:
    return [(e.connector_id, e.kind, e.value, e.detail) for e in events if e.kind in wanted]


async def test_a_run_records_its_boot_statuses_a_session_a_fault_and_its_clean_stop(tmp_path: Path) -> None:
    config = make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": [CARD]})
    async with running_charger(config) as charger:
        await charger.charge(card=CARD)
        charger.sim().apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        charger.sim().apply("clear-fault")
        await charger.wait_for(lambda: charger.status()["status"] != "Faulted", what="fault cleared")
        await asyncio.sleep(1.2)  # one flush
        store = charger.store
        events = await all_events(store)
        assert kinds(events, "boot") == [(0, "boot", __version__, "")]
        statuses = [value for _, _, value, _ in kinds(events, "status")]
        assert statuses[0] == "Available" and "Charging" in statuses and "Faulted" in statuses
        assert (1, "fault", "GroundFailure", "raised") in kinds(events, "fault")
        assert (1, "fault", "GroundFailure", "cleared") in kinds(events, "fault")
        assert (1, "attempt", "started", CARD) in kinds(events, "attempt")
        assert [e.boot for e in events] == [1] * len(events)
    reopened = await Store.open(config.storage.database_path)
    try:
        last = (await all_events(reopened))[-1]
        assert (last.connector_id, last.kind, last.value) == (0, "stop", "Reboot")
    finally:
        await reopened.close()


async def test_a_run_that_ended_without_a_clean_stop_leaves_an_outage_from_its_last_sign_of_life(
        tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_charger(config):
        pass
    store = await Store.open(config.storage.database_path)
    try:
        # As a power cut leaves it: the last run never said it stopped, and its last refresh of "alive" came before
        # its last events (alive is refreshed once a minute); the later of the two is its last sign of life.
        seen = (datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="microseconds")
        await store.set_kv("history.clean_stop", "0")
        await store.set_kv("history.alive_at", seen)
        last_event_at = (await all_events(store))[-1].at
        assert last_event_at > seen
    finally:
        await store.close()
    async with running_charger(config) as charger:
        events = await all_events(charger.store)
    down = [e for e in events if e.kind == "down"]
    assert [(e.at, e.value, e.boot) for e in down] == [(last_event_at, "unknown", 1)]
    boots = [e for e in events if e.kind == "boot"]
    assert [e.boot for e in boots] == [1, 2]
    assert down[0].at < boots[1].at  # the outage runs from the last sign of life to the next boot


async def test_an_outage_after_a_reported_mains_loss_is_the_grids(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    async with running_charger(config) as charger:
        charger.sim().apply("fault", "power-loss")
        await charger.wait_status("Unavailable")
        await asyncio.sleep(1.2)
        events = await all_events(charger.store)
        assert (1, "mains", "lost", "") in kinds(events, "mains")
        assert (1, "status", "Unavailable", "mains") in kinds(events, "status")
        await charger.store.set_kv("history.clean_stop", "0")
    store = await Store.open(config.storage.database_path)
    try:
        await store.set_kv("history.clean_stop", "0")  # the power did not come back before the Pi went dark
    finally:
        await store.close()
    async with running_charger(config) as charger:
        events = await all_events(charger.store)
    assert [e.value for e in events if e.kind == "down"] == ["mains"]


async def test_a_new_firmware_version_is_in_the_boot_event(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    store = await Store.open(config.storage.database_path)
    try:
        await store.set_kv("history.version", "0.0.9")
    finally:
        await store.close()
    async with running_charger(config) as charger:
        events = await all_events(charger.store)
    assert kinds(events, "boot") == [(0, "boot", __version__, "updated from 0.0.9")]


async def test_pruning_keeps_the_newest_events_within_the_row_limit(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "chargepoint.db")
    try:
        now = datetime.now(UTC)
        old = (now - timedelta(days=500)).isoformat(timespec="microseconds")
        recent = [HistoryEvent((now - timedelta(minutes=n)).isoformat(timespec="microseconds"), 0.0, 1, 1, "status",
                               f"S{n}") for n in range(5, 0, -1)]
        await store.history_append([HistoryEvent(old, 0.0, 1, 1, "status", "Old"), *recent])
        dropped = await store.history_prune(now - timedelta(days=400), max_rows=3)
        assert dropped == 3  # the 500-day-old one, then the two oldest over the limit
        assert [e.value for e in await all_events(store)] == ["S3", "S2", "S1"]
    finally:
        await store.close()
