"""A corrupt database or a full disk, seen where the operator sees them: the runtime on simulators keeps charging.

The database files are real SQLite files in tmp_path, damaged as an SD card damages them. The full disk is SQLite's
own SQLITE_FULL (``PRAGMA max_page_count`` on the store's connection) together with an injected free-space reading:
filling the machine's real disk is not an option, a small tmpfs needs a mount namespace (the store test
``test_a_really_full_file_system_releases_the_reserve_and_keeps_the_running_session`` does that), and the runtime
only sees the store's full state, which both produce alike. The last test runs the real daemon process.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from chargepoint.composition.charger import build_charger
from chargepoint.composition.devices import build_hardware
from chargepoint.config.schema import Config
from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.store import Store
from tests.integration.harness import Charger, make_config
from tests.integration.test_cli import CONFIG, Daemon, cli
from tests.unit.test_store_recovery import DAMAGE, SESSIONS, make_database


class Heard:
    def __init__(self) -> None:
        self.events: list[ChargerEvent] = []

    def charger_event(self, event: ChargerEvent) -> None:
        self.events.append(event)

    def security(self, kind: str) -> list[SecurityEvent]:
        return [e for e in self.events if isinstance(e, SecurityEvent) and e.kind == kind]


@asynccontextmanager
async def charger_on(config: Config, store: Store, heard: Heard, check_interval_s: float = 0.05
                     ) -> AsyncIterator[Charger]:
    hardware = await build_hardware(config)
    app = build_charger(config, hardware, store)
    app.add_listener(heard)
    app.storage.check_interval_s = check_interval_s
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    task = asyncio.create_task(app.run(stop, ready=on_ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield Charger(app, hardware, store)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await store.close()
        await hardware.aclose()


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
async def test_the_charger_starts_on_a_corrupt_database_tells_the_operator_and_charges(
        tmp_path: Path, damage: str) -> None:
    config = make_config(tmp_path)
    path = config.storage.database_path
    ids = await make_database(path)
    DAMAGE[damage](path)
    heard = Heard()
    store = await Store.open(path, reserve_bytes=0)
    async with charger_on(config, store, heard) as charger:
        [report] = store.corruption
        assert report.moved_to.exists() and report.moved_to.parent == path.parent
        # status and fault list say it, the CSMS hears it as a security event.
        storage = charger.app.status()["storage"]
        assert storage["state"] == "recovered"
        assert storage["corrupt_copies"] == [str(report.moved_to)]
        [fault] = storage["faults"]
        assert fault["code"] == "StorageCorrupt" and report.moved_to.name in fault["detail"]
        listing = await charger.app.fault_listing(10)
        shown = {k: listing["active"][0][k] for k in ("connector_id", "code", "latched")}
        assert shown == {"connector_id": 0, "code": "StorageCorrupt", "latched": True}
        [event] = heard.security("DatabaseCorruptionRecovered")
        assert report.moved_to.name in event.detail
        # Salvaged history is there; the session left open was closed by the usual power-loss recovery.
        recovered = {r.session_id for r in await store.recent_sessions(SESSIONS)}
        assert recovered and recovered <= set(ids)
        assert await store.open_sessions() == []
        # And the charger charges, on the fresh database.
        await charger.charge()
        await charger.wait_for(lambda: charger.status()["session"]["energy_Wh"] > 20, what="energy")
        charger.sim().apply("unplug")
        await charger.wait_status("Available")
        await charger.app.flush_store()
        [latest] = await store.recent_sessions(1)
        assert latest.id_tag == "FREEVEND" and latest.energy_Wh is not None and latest.energy_Wh > 20
        # The technician acknowledges it.
        cleared = await charger.app.clear_faults(None, "technician")
        assert cleared["connectors"][0] == {"connector_id": 0, "cleared": ["StorageCorrupt"], "remaining": []}
        assert charger.app.status()["storage"]["faults"] == []
        history = (await charger.app.fault_listing(10))["history"]
        assert [(h["code"], h["action"]) for h in history if h["connector_id"] == 0] == [
            ("StorageCorrupt", "latched"), ("StorageCorrupt", "cleared")]


async def test_a_full_disk_keeps_the_running_session_refuses_new_ones_and_recovers_by_itself(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    free = {"bytes": 1 << 30}
    store = await Store.open(config.storage.database_path, reserve_bytes=256 * 1024, min_free_bytes=1 << 20,
                             free_bytes=lambda: free["bytes"])
    store.space.retry_s = 0.02
    heard = Heard()
    reserve = tmp_path / "chargepoint.db.reserve"
    async with charger_on(config, store, heard) as charger:
        sim = charger.sim()
        await charger.charge()
        session_id = charger.status()["session"]["session_id"]

        # The disk fills: SQLite itself answers SQLITE_FULL for anything that needs a new page.
        pages = await store._run(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        await store._run(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
        free["bytes"] = 0
        blocked = asyncio.create_task(store.set_kv("something.else", "x" * 50_000))
        await charger.wait_for(lambda: store.full, what="full")
        assert not reserve.exists()  # released for the running session's records
        await charger.wait_for(lambda: charger.app.status()["storage"]["refusing_sessions"], what="refusing")
        [fault] = charger.app.status()["storage"]["faults"]
        assert fault["code"] == "StorageFull" and "disk full" in fault["detail"]
        assert heard.security("MemoryExhaustion")

        # The running session goes on charging, and its readings are still written.
        before = await store.session(session_id)
        assert before is not None
        await charger.wait_for(lambda: charger.status()["session"]["energy_Wh"] > before.last_meter_Wh
                               - before.meter_start_Wh + 30, what="more energy")
        assert charger.status()["status"] == "Charging"
        await charger.app.flush_store()
        during = await store.session(session_id)
        assert during is not None and during.last_meter_Wh > before.last_meter_Wh

        # It ends normally and is recorded; a new plug-in is refused with a clear status.
        sim.apply("unplug")
        await charger.wait_status("Unavailable")
        await charger.app.flush_store()
        ended = await store.session(session_id)
        assert ended is not None and not ended.is_open and ended.stop_reason == "EVDisconnected"
        sim.apply("plug")
        sim.apply("charge")
        for _ in range(30):
            assert charger.status()["session"] is None
            assert not sim.contactor.commanded_closed()
            await asyncio.sleep(0.01)
        assert charger.status()["status"] == "Unavailable"

        # Space comes back: the waiting write lands, the reserve is made again and the waiting car charges.
        await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
        free["bytes"] = 1 << 30
        await asyncio.wait_for(blocked, 5)
        await charger.wait_status("Charging")
        assert not charger.app.status()["storage"]["refusing_sessions"]
        assert charger.app.status()["storage"]["faults"] == []
        assert reserve.stat().st_size == 256 * 1024
        history = (await charger.app.fault_listing(10))["history"]
        assert [(h["code"], h["action"]) for h in history if h["connector_id"] == 0] == [
            ("StorageFull", "raised"), ("StorageFull", "cleared")]


async def test_an_operator_choice_made_while_full_applies_once_space_is_back(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    free: dict[str, int] = {"bytes": 1 << 30}
    free_bytes: Callable[[], int] = lambda: free["bytes"]  # noqa: E731
    store = await Store.open(config.storage.database_path, reserve_bytes=4096, min_free_bytes=1 << 20,
                             free_bytes=free_bytes)
    async with charger_on(config, store, Heard()) as charger:
        await charger.wait_status("Available")
        free["bytes"] = 1000
        await charger.wait_status("Unavailable")
        await charger.app.set_operative([1], True)  # the CSMS says Operative: still no space, still refused
        await asyncio.sleep(0.2)
        assert charger.status()["status"] == "Unavailable"
        await charger.app.set_operative([1], False)
        free["bytes"] = 1 << 30
        await charger.wait_for(lambda: not store.full, what="space back")
        await asyncio.sleep(0.2)
        assert charger.status()["status"] == "Unavailable"  # the CSMS's Inoperative holds
        await charger.app.set_operative([1], True)
        await charger.wait_status("Available")


def test_the_daemon_process_starts_on_a_corrupt_database_and_says_so(tmp_path: Path) -> None:
    """The real daemon, as systemd starts it: no crash loop, one line in the log, the fault in status."""
    config_path = tmp_path / "config.toml"
    config_path.write_text(CONFIG.format(dir=tmp_path))
    database = tmp_path / "chargepoint.db"
    asyncio.run(make_database(database))
    DAMAGE["four bad pages"](database)
    daemon = Daemon(config_path)
    daemon.start()
    try:
        storage = daemon.status()["storage"]
        assert isinstance(storage, dict)
        assert storage["state"] == "recovered"
        [copy] = storage["corrupt_copies"]
        assert Path(copy).exists()
        listing = json.loads(cli("fault", "list", "--config", str(config_path), "--json", check=True).stdout)
        assert [f["code"] for f in listing["active"]] == ["StorageCorrupt"]
        daemon.sim("plug")
        daemon.sim("charge")
        daemon.wait_status("Charging")
    finally:
        assert daemon.stop() == 0
    lines = [line for line in daemon.log().splitlines() if " ERROR " in line and "is corrupt" in line]
    assert len(lines) == 1 and Path(copy).name in lines[0] and "what to do" in lines[0]
    assert "Traceback" not in daemon.log()
