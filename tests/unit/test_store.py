"""The persistent store, on real SQLite files (no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import stat
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from chargepoint.errors import StoreError
from chargepoint.store import BUSY_TIMEOUT_ms, SessionRecord, Store
from chargepoint.store.migrations import MIGRATIONS, SCHEMA_VERSION

REPO_ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _user_version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        return version
    finally:
        conn.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "chargepoint.db")
    yield opened
    await opened.close()


# -- migrations -----------------------------------------------------------------------------------------


async def test_new_file_is_created_and_migrated_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    store = await Store.open(path)
    await store.close()

    assert path.is_file()
    assert len(MIGRATIONS) == SCHEMA_VERSION
    assert [number for number, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert _user_version(path) == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    columns = {row[1] for row in conn.execute("PRAGMA table_info(sessions)")}
    conn.close()
    assert {"sessions", "kv"} <= tables
    assert "csms_transaction_id" in columns
    assert set(SessionRecord.__dataclass_fields__) <= columns


async def test_reopening_keeps_data_and_does_not_rerun_migrations(tmp_path: Path) -> None:
    # The migrations have no IF NOT EXISTS, so re-running one would fail the second open.
    path = tmp_path / "chargepoint.db"
    store = await Store.open(path)
    await store.set_kv("registration", "Accepted")
    record = await store.begin_session(1, "TAG1", 100, T0)
    await store.close()

    reopened = await Store.open(path)
    try:
        assert await reopened.get_kv("registration") == "Accepted"
        assert await reopened.session(record.session_id) == record
    finally:
        await reopened.close()
    assert _user_version(path) == SCHEMA_VERSION


async def test_older_database_is_migrated_forward_keeping_its_rows(tmp_path: Path) -> None:
    # A database left at version 1 by older firmware: only the later migrations run.
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(MIGRATIONS[0][1] + "\nPRAGMA user_version = 1;")
    started = T0.isoformat(timespec="microseconds")
    conn.execute(
        "INSERT INTO sessions (session_id, connector_id, id_tag, started_at, meter_start_Wh, "
        "last_meter_Wh, last_meter_at) VALUES ('old-1', 2, 'OLDTAG', ?, 50, 60, ?)",
        (started, started),
    )
    conn.close()

    store = await Store.open(path)
    try:
        old = await store.session("old-1")
        assert old is not None
        assert (old.connector_id, old.id_tag, old.last_meter_Wh) == (2, "OLDTAG", 60)
        await store.set_kv("k", "v")  # the kv table came with migration 2
        assert await store.get_kv("k") == "v"
    finally:
        await store.close()
    assert _user_version(path) == SCHEMA_VERSION


async def test_database_newer_than_the_code_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()

    with pytest.raises(StoreError, match="newer") as excinfo:
        await Store.open(path)
    assert str(path) in str(excinfo.value)
    assert _user_version(path) == SCHEMA_VERSION + 1  # left untouched


async def test_a_file_that_is_not_a_database_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not an SQLite database, just some text that is long enough" * 20)
    with pytest.raises(StoreError) as excinfo:
        await Store.open(path)
    assert str(path) in str(excinfo.value)


async def test_journal_is_wal_and_sync_is_full(store: Store) -> None:
    # synchronous is per connection, so ask the store's own connection, on its own thread.
    journal_mode, synchronous, busy_timeout_ms = await store._run(
        lambda conn: (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA busy_timeout").fetchone()[0],
        )
    )
    assert journal_mode == "wal"
    assert synchronous == 2  # FULL
    assert busy_timeout_ms == BUSY_TIMEOUT_ms > 0


# -- opening errors -------------------------------------------------------------------------------------


async def test_missing_parent_directory_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "does-not-exist" / "chargepoint.db"
    with pytest.raises(StoreError) as excinfo:
        await Store.open(path)
    assert str(path) in str(excinfo.value)
    assert not path.parent.exists()  # not created behind the caller's back


async def test_parent_that_is_a_file_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    # Unwritable even for root, unlike a chmod'ed directory.
    (tmp_path / "a-file").write_text("x")
    path = tmp_path / "a-file" / "chargepoint.db"
    with pytest.raises(StoreError) as excinfo:
        await Store.open(path)
    assert str(path) in str(excinfo.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
async def test_unwritable_parent_directory_gives_store_error_naming_the_path(tmp_path: Path) -> None:
    parent = tmp_path / "readonly"
    parent.mkdir()
    parent.chmod(0o500)
    path = parent / "chargepoint.db"
    try:
        with pytest.raises(StoreError) as excinfo:
            await Store.open(path)
        assert str(path) in str(excinfo.value)
    finally:
        parent.chmod(0o700)


async def test_new_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "private.db"
    # 0o277 would leave a plain os.open(..., 0o600) at 0o400; 0o000 would be fine either way.
    old_umask = os.umask(0o277)
    try:
        store = await Store.open(path)
    finally:
        os.umask(old_umask)
    await store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_closed_store_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "c.db")
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="closed"):
        await store.get_kv("x")


# -- sessions -------------------------------------------------------------------------------------------


async def test_session_round_trip(store: Store) -> None:
    started = await store.begin_session(1, "TAG1", 1000, T0)
    assert started.is_open
    assert (started.connector_id, started.id_tag, started.meter_start_Wh) == (1, "TAG1", 1000)
    assert (started.last_meter_Wh, started.last_meter_at) == (1000, T0)
    assert started.energy_Wh is None
    assert started.started_at == T0 and started.started_at.tzinfo is not None
    assert await store.open_sessions() == [started]

    await store.record_meter(started.session_id, 1400, T0 + timedelta(minutes=10))
    running = await store.session(started.session_id)
    assert running is not None
    assert (running.last_meter_Wh, running.last_meter_at) == (1400, T0 + timedelta(minutes=10))

    stopped = await store.end_session(started.session_id, 2500, T0 + timedelta(minutes=30), "Local")
    assert not stopped.is_open
    assert stopped.stopped_at == T0 + timedelta(minutes=30)
    assert (stopped.meter_stop_Wh, stopped.stop_reason, stopped.energy_Wh) == (2500, "Local", 1500)
    assert await store.session(started.session_id) == stopped
    assert await store.open_sessions() == []


async def test_datetimes_come_back_in_utc(store: Store) -> None:
    local = T0.astimezone(timezone(timedelta(hours=2)))
    record = await store.begin_session(1, "TAG1", 0, local)
    assert record.started_at == T0
    assert record.started_at.utcoffset() == timedelta(0)


async def test_naive_datetime_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        await store.begin_session(1, "TAG1", 0, datetime(2024, 5, 1, 12, 0))
    assert await store.open_sessions() == []


async def test_end_session_is_idempotent(store: Store) -> None:
    started = await store.begin_session(2, "TAG2", 0, T0)
    first = await store.end_session(started.session_id, 700, T0 + timedelta(hours=1), "EVDisconnected")
    # A retry after a crash, with other values: the record must not change.
    again = await store.end_session(started.session_id, 999, T0 + timedelta(hours=2), "Other")
    assert again == first
    assert await store.session(started.session_id) == first


async def test_unknown_session_id_gives_store_error(store: Store) -> None:
    with pytest.raises(StoreError, match="unknown session"):
        await store.end_session("no-such-id", 1, T0, "Local")
    with pytest.raises(StoreError, match="unknown session"):
        await store.record_meter("no-such-id", 1, T0)
    assert await store.session("no-such-id") is None


async def test_meter_reading_below_start_is_stored_as_the_start_value(store: Store) -> None:
    started = await store.begin_session(1, "TAG1", 1000, T0)
    await store.record_meter(started.session_id, 1200, T0 + timedelta(minutes=1))
    await store.record_meter(started.session_id, 1100, T0 + timedelta(minutes=2))  # lower: stored as is
    running = await store.session(started.session_id)
    assert running is not None and running.last_meter_Wh == 1100
    await store.record_meter(started.session_id, 900, T0 + timedelta(minutes=3))  # below start: clamped
    running = await store.session(started.session_id)
    assert running is not None and running.last_meter_Wh == 1000


async def test_meter_reading_after_the_end_does_not_change_the_record(store: Store) -> None:
    started = await store.begin_session(1, "TAG1", 0, T0)
    stopped = await store.end_session(started.session_id, 500, T0 + timedelta(minutes=5), "Remote")
    await store.record_meter(started.session_id, 800, T0 + timedelta(minutes=6))
    assert await store.session(started.session_id) == stopped


async def test_recent_sessions_are_newest_first_and_limited(store: Store) -> None:
    ids = [(await store.begin_session(1, f"TAG{i}", 0, T0 + timedelta(hours=i))).session_id for i in range(5)]
    recent = await store.recent_sessions(limit=3)
    assert [record.session_id for record in recent] == ids[::-1][:3]
    assert len(await store.recent_sessions()) == 5


# -- crash recovery -------------------------------------------------------------------------------------

_CRASHING_CHILD = """
import asyncio, os, signal, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from chargepoint.store import Store

async def main() -> None:
    store = await Store.open(Path(sys.argv[1]))
    t0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
    record = await store.begin_session(1, "CRASHTAG", 5000, t0)
    await store.record_meter(record.session_id, 5750, t0 + timedelta(minutes=7))
    print(record.session_id, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # no close(), no checkpoint, no atexit

asyncio.run(main())
"""


async def test_session_left_open_by_a_killed_process_is_recovered_once(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CRASHING_CHILD,
        str(path),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL, stderr.decode()
    session_id = stdout.decode().strip()

    store = await Store.open(path)
    try:
        [left_open] = await store.open_sessions()
        assert left_open.session_id == session_id
        assert left_open.last_meter_Wh == 5750

        [recovered] = await store.recover_open_sessions()
        assert recovered.session_id == session_id
        assert recovered.stop_reason == "PowerLoss"
        assert recovered.meter_stop_Wh == 5750
        assert recovered.stopped_at == T0 + timedelta(minutes=7)
        assert recovered.energy_Wh == 750
        assert await store.session(session_id) == recovered

        assert await store.recover_open_sessions() == []
        assert await store.open_sessions() == []
    finally:
        await store.close()


async def test_recovery_closes_every_open_session_with_the_given_reason(store: Store) -> None:
    a = await store.begin_session(1, "A", 10, T0)
    b = await store.begin_session(2, "B", 20, T0 + timedelta(seconds=1))
    done = await store.end_session(a.session_id, 15, T0 + timedelta(seconds=5), "Local")
    c = await store.begin_session(1, "C", 15, T0 + timedelta(seconds=6))
    recovered = await store.recover_open_sessions(reason="Reboot")
    assert [record.session_id for record in recovered] == [b.session_id, c.session_id]
    assert all(record.stop_reason == "Reboot" and record.energy_Wh == 0 for record in recovered)
    assert await store.session(a.session_id) == done  # an already closed session is untouched


# -- the event loop never waits on the database ---------------------------------------------------------


async def test_event_loop_keeps_running_while_the_store_waits_on_the_database(tmp_path: Path) -> None:
    # Deterministic rather than timing-based: another connection holds the write lock, so the store's
    # 200 writes must wait (up to busy_timeout). Run on the loop, that wait would freeze it and the
    # ticker below could not tick; run on the worker thread, the loop keeps ticking meanwhile.
    path = tmp_path / "busy.db"
    store = await Store.open(path)
    try:
        record = await store.begin_session(1, "TAG1", 0, T0)

        async def write_batch() -> None:
            for i in range(1, 201):
                await store.record_meter(record.session_id, i, T0 + timedelta(seconds=i))

        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            writes = asyncio.create_task(write_batch())
            ticks = 0
            async with asyncio.timeout(BUSY_TIMEOUT_ms / 1000 / 2):
                while ticks < 20:
                    await asyncio.sleep(0.001)
                    ticks += 1
            assert not writes.done()
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        await writes
        finished = await store.session(record.session_id)
        assert finished is not None and finished.last_meter_Wh == 200
    finally:
        await store.close()


# -- key/value ------------------------------------------------------------------------------------------


async def test_kv_get_set_overwrite(store: Store) -> None:
    assert await store.get_kv("missing") is None
    await store.set_kv("HeartbeatInterval", "300")
    assert await store.get_kv("HeartbeatInterval") == "300"
    await store.set_kv("HeartbeatInterval", "60")
    assert await store.get_kv("HeartbeatInterval") == "60"
    await store.set_kv("empty", "")
    assert await store.get_kv("empty") == ""


async def test_path_property(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "p.db")
    try:
        assert store.path == tmp_path / "p.db"
    finally:
        await store.close()
