"""A corrupt database file or a full disk, on real SQLite files in tmp_path: the store recovers and keeps going.

Corruption is made the way an SD card makes it: random bytes over the header, a file cut in half, four pages in the
middle overwritten with garbage. A full disk is made two ways: ``PRAGMA max_page_count`` on the store's own connection
(SQLite then answers SQLITE_FULL exactly as on a full file system, and it works on any machine), and a real full file
system: a 4 MiB tmpfs mounted in a user namespace (``unshare -rm``), where the kernel answers ENOSPC; that test skips on
machines that forbid unprivileged user namespaces.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.errors import StoreError
from chargepoint.store import StorageCorrupted, StorageFilled, StorageSpaceBack, Store
from chargepoint.store.recovery import looks_like_sqlite

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
SESSIONS = 400
PAGE_SIZE = 4096


async def make_database(path: Path) -> list[str]:
    """A database of several hundred pages: sessions (closed and one open), kv rows, fault log lines."""
    store = await Store.open(path, reserve_bytes=0, sqlite3_cli=None)
    ids = []
    try:
        for n in range(SESSIONS):
            record = await store.begin_session(1, f"TAG-{n:04d}-" + "x" * 80, n * 10, T0 + timedelta(minutes=n))
            if n < SESSIONS - 1:
                await store.end_session(record.session_id, n * 10 + 7, T0 + timedelta(minutes=n, seconds=30), "Local")
            ids.append(record.session_id)
        for n in range(50):
            await store.set_kv(f"key.{n}", f"value {n}")
        await store._run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await store.close()
    return ids


def corrupt_header(path: Path) -> None:
    with path.open("r+b") as f:
        f.write(os.urandom(100))


def cut_in_half(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2)


def four_bad_pages(path: Path) -> None:
    pages = path.stat().st_size // PAGE_SIZE
    with path.open("r+b") as f:
        f.seek((pages // 2) * PAGE_SIZE)
        f.write(os.urandom(4 * PAGE_SIZE))


DAMAGE = {"random header": corrupt_header, "cut in half": cut_in_half, "four bad pages": four_bad_pages}


def names_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def count(path: Path, table: str) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


@pytest.mark.parametrize("cli", [None, "sqlite3"], ids=["row-copy", "cli-first"])
@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
async def test_a_corrupt_database_is_moved_aside_salvaged_and_replaced(
        tmp_path: Path, damage: str, cli: str | None, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "chargepoint.db"
    ids = await make_database(path)
    original_size = path.stat().st_size
    DAMAGE[damage](path)
    damaged = path.read_bytes()

    store = await Store.open(path, reserve_bytes=0, sqlite3_cli=cli)
    try:
        [report] = store.corruption
        # The damaged file is kept byte for byte, named with the time, beside the fresh one.
        assert report.moved_to.parent == tmp_path
        assert report.moved_to.name.startswith("chargepoint.db.corrupt-20")
        assert report.moved_to.read_bytes() == damaged
        # The fresh database works: a new session can be written and read back.
        record = await store.begin_session(1, "NEW", 99_000, T0 + timedelta(days=1))
        assert (await store.session(record.session_id)) == record
        # What the report says came back is what is there.
        assert report.recovered.get("sessions", 0) == count(path, "sessions") - 1
        assert report.recovered.get("kv", 0) == count(path, "kv")
        salvaged = {r.session_id for r in await store.recent_sessions(SESSIONS + 1)} - {record.session_id}
        assert salvaged <= set(ids)
        if damage == "random header":
            assert len(salvaged) == SESSIONS  # only the header was lost: rebuilt, every row read
        elif damage == "four bad pages":
            assert SESSIONS // 2 < len(salvaged) < SESSIONS  # most rows, but not the ones on the bad pages
            assert "sessions" in report.unreadable
        else:
            assert 0 < len(salvaged) < SESSIONS  # the first half of the file
        # The open session came back open, so the runtime's recovery closes it as PowerLoss.
        if ids[-1] in salvaged:
            assert [r.session_id for r in await store.open_sessions()] == [ids[-1], record.session_id]
    finally:
        await store.close()
    assert original_size > 50 * PAGE_SIZE
    # One line at ERROR says what happened, which file, where the copy is and what to do.
    [line] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert str(path) in line and report.moved_to.name in line and "what to do" in line and "\n" not in line


async def test_damage_found_by_quick_check_at_start_is_recovered(tmp_path: Path) -> None:
    """A bad index page: queries that avoid the index work, so only PRAGMA quick_check at start finds it."""
    path = tmp_path / "chargepoint.db"
    await make_database(path)
    with sqlite3.connect(path) as conn:
        root = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'sessions_started_at'").fetchone()[0])
    with path.open("r+b") as f:
        f.seek((root - 1) * PAGE_SIZE + 8)
        f.write(b"\xff" * 64)
    store = await Store.open(path, reserve_bytes=0, sqlite3_cli=None)
    try:
        [report] = store.corruption
        assert report.detected.startswith("quick_check")
        assert report.recovered["sessions"] == SESSIONS  # the table itself was sound
    finally:
        await store.close()


async def test_a_file_that_is_no_sqlite_database_at_all_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"a technician's notes, not a database\n" * 200)
    assert not looks_like_sqlite(path)
    with pytest.raises(StoreError):
        await Store.open(path, reserve_bytes=0)
    assert names_in(tmp_path) == ["notes.db"]


async def test_corruption_found_while_running_is_recovered_and_the_write_lands(tmp_path: Path) -> None:
    path = tmp_path / "chargepoint.db"
    store = await Store.open(path, reserve_bytes=0, sqlite3_cli=None)
    heard: list[object] = []
    store.add_storage_listener(heard.append)
    try:
        first = await store.begin_session(1, "A", 0, T0)
        await store.set_kv("k", "v")
        await store._run(lambda conn: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        with path.open("r+b") as f:
            f.write(os.urandom(100))  # the header, under the running store
        # Drop the connection's cached pages, as memory pressure would, so the next statement reads the disk.
        await store._run(lambda conn: conn.execute("PRAGMA cache_size = 0").execute("PRAGMA shrink_memory"))
        record = await store.begin_session(1, "B", 5, T0 + timedelta(hours=1))
        [report] = store.corruption
        assert heard == [StorageCorrupted(report)]
        assert report.while_running
        assert report.moved_to.exists()
        assert {r.session_id for r in await store.recent_sessions()} == {first.session_id, record.session_id}
        assert await store.get_kv("k") == "v"
    finally:
        await store.close()


async def test_a_write_that_finds_sqlite_full_waits_for_space_and_lands(tmp_path: Path) -> None:
    """SQLITE_FULL from ``PRAGMA max_page_count``: the same error code and path in SQLite as a full file system."""
    path = tmp_path / "chargepoint.db"
    free = {"bytes": 1 << 30}
    store = await Store.open(path, reserve_bytes=256 * 1024, min_free_bytes=1 << 20,
                             free_bytes=lambda: free["bytes"])
    store.space.retry_s = 0.01
    heard: list[object] = []
    filled = asyncio.Event()
    store.add_storage_listener(heard.append)
    store.add_storage_listener(lambda change: filled.set())
    reserve = tmp_path / "chargepoint.db.reserve"
    try:
        assert reserve.stat().st_size == 256 * 1024
        session = await store.begin_session(1, "A", 0, T0)
        pages = await store._run(lambda conn: conn.execute("PRAGMA page_count").fetchone()[0])
        await store._run(lambda conn: conn.execute(f"PRAGMA max_page_count = {pages}"))
        free["bytes"] = 0
        write = asyncio.create_task(store.set_kv("big", "x" * 100_000))  # needs new pages: SQLITE_FULL
        await asyncio.wait_for(filled.wait(), 5)
        assert store.full
        assert heard == [StorageFilled(store.space.reason)]
        assert not reserve.exists()  # released for the running sessions
        assert not write.done()  # waiting, not failed
        # A running session's reading is an update in place: it is still written while full.
        await store.record_meter(session.session_id, 1234, T0 + timedelta(minutes=5))
        assert (await store.session(session.session_id)).last_meter_Wh == 1234  # type: ignore[union-attr]
        # Space comes back.
        await store._run(lambda conn: conn.execute("PRAGMA max_page_count = 1000000"))
        await asyncio.wait_for(write, 5)
        assert await store.get_kv("big") == "x" * 100_000
        await store.check_space()
        assert store.full  # the disk still says "no space": full until the periodic check sees space
        free["bytes"] = 1 << 30
        await store.check_space()
        assert not store.full
        assert heard[-1] == StorageSpaceBack()
        assert reserve.stat().st_size == 256 * 1024  # made anew
    finally:
        await store.close()


async def test_free_space_below_the_minimum_makes_the_store_full_before_any_write_fails(tmp_path: Path) -> None:
    free = {"bytes": 1 << 30}
    store = await Store.open(tmp_path / "c.db", reserve_bytes=4096, min_free_bytes=10 << 20,
                             free_bytes=lambda: free["bytes"])
    try:
        free["bytes"] = 5 << 20
        await store.check_space()
        assert store.full and "below" in store.space.reason
        assert (tmp_path / "c.db.reserve").exists()  # nothing failed yet: the reserve stays
        free["bytes"] = 12 << 20  # above the minimum but not by half again: no flapping
        await store.check_space()
        assert store.full
        free["bytes"] = 16 << 20
        await store.check_space()
        assert not store.full
    finally:
        await store.close()


_FULL_TMPFS_SCRIPT = r"""
import asyncio, json, sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from chargepoint.store import Store

async def main(directory: Path) -> None:
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    store = await Store.open(directory / "c.db", reserve_bytes=1024 * 1024, min_free_bytes=64 * 1024)
    store.space.retry_s = 0.01
    running = await store.begin_session(1, "RUNNING", 0, t0)
    filler = directory / "filler"
    with filler.open("wb", buffering=0) as f:  # something else fills the file system to the last byte
        try:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        except OSError as exc:
            assert exc.errno == 28, exc
    reserve_before = (directory / "c.db.reserve").exists()
    # The running session's readings and their stop are written although the disk was full.
    for n in range(1, 41):
        await store.record_meter(running.session_id, n * 100, t0 + timedelta(minutes=n))
    closed = await store.end_session(running.session_id, 4100, t0 + timedelta(hours=1), "Local")
    full_after_writes = store.full
    filler.unlink()
    await store.check_space()
    print(json.dumps({"reserve_before": reserve_before, "full": full_after_writes, "reason": store.space.reason,
                      "energy": closed.energy_Wh, "back": not store.full,
                      "reserve_after": (directory / "c.db.reserve").exists()}))
    await store.close()

asyncio.run(main(Path(sys.argv[1])))
"""


def test_a_really_full_file_system_releases_the_reserve_and_keeps_the_running_session(tmp_path: Path) -> None:
    """A 4 MiB tmpfs in a user and mount namespace: the kernel's own ENOSPC, no root needed."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("no unshare(1)")
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    probe = subprocess.run([unshare, "-rm", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mount_point}"],
                           capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unprivileged user namespaces are not allowed here: {probe.stderr.decode().strip()}")
    script = tmp_path / "fill.py"
    script.write_text(_FULL_TMPFS_SCRIPT)
    result = subprocess.run(
        [unshare, "-rm", "sh", "-c",
         f'mount -t tmpfs -o size=4m tmpfs "{mount_point}" && exec "{sys.executable}" "{script}" "{mount_point}"'],
        capture_output=True, check=False, timeout=60, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert result.returncode == 0, result.stderr.decode()
    outcome = json.loads(result.stdout.decode().strip().splitlines()[-1])
    assert outcome["reserve_before"]
    assert outcome["full"], outcome  # the write that found no space made the store full ...
    assert outcome["energy"] == 4100  # ... and the session's record is complete, thanks to the reserve
    assert outcome["back"] and outcome["reserve_after"]  # space back: the reserve is made again
    assert "disk full" in result.stderr.decode()  # the log line for the technician
