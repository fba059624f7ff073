"""``chargepoint history import`` and ``export`` on real database files, run as a technician would: every row
checked before anything is written, errors naming the line, idempotent imports, and an export the next charger can
import."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from chargepoint.store import Store

ROOT = Path(__file__).resolve().parents[2]
DAY0 = datetime(2026, 11, 2, tzinfo=UTC)

GOOD = """start,stop,connector,energy_Wh,id_tag,cost
2026-11-02T08:00:00+01:00,2026-11-02T09:30:00+01:00,1,12500,04A1B2C3,4.38
2026-11-02T10:00:00Z,2026-11-02T10:45:00Z,2,7000,,
"""


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def _create(database: Path) -> None:
    store = await Store.open(database)
    await store.close()


def charger(directory: Path) -> Path:
    """A charger's state directory with a migrated database, and its config (the daemon is not running)."""
    directory.mkdir(parents=True, exist_ok=True)
    asyncio.run(_create(directory / "chargepoint.db"))
    config = directory / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[charger]\nconnectors = 2\n[storage]\ndir = "{directory}"\n')
    return config


def report_sessions(config: Path) -> tuple[int, int]:
    done = cli(config, "report", "--from", "2026-11-01T00:00:00Z", "--to", "2026-11-04T00:00:00Z", "--json")
    assert done.returncode == 0, done.stderr
    charger = json.loads(done.stdout)["charger"]
    return charger["sessions"], charger["energy_Wh"]


def test_an_import_adds_its_sessions_once_and_the_report_counts_them(tmp_path: Path) -> None:
    config = charger(tmp_path / "cp")
    source = tmp_path / "csms-export.csv"
    source.write_text(GOOD)
    first = cli(config, "history", "import", "--csv", str(source))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("imported 2 sessions from")
    again = cli(config, "history", "import", "--csv", str(source))
    assert again.returncode == 0 and again.stdout.startswith("imported 0 sessions from")
    assert "(2 already there)" in again.stdout
    assert report_sessions(config) == (2, 19_500)


@pytest.mark.parametrize(("row", "problem"), [
    ("yesterday,2026-11-02T09:00:00Z,1,100,,", "line 3: start 'yesterday' is not an ISO 8601 time"),
    ("2026-11-02T08:00:00,2026-11-02T09:00:00Z,1,100,,", "line 3: start '2026-11-02T08:00:00' has no UTC offset"),
    ("2026-11-02T09:00:00Z,2026-11-02T08:00:00Z,1,100,,", "line 3: stop 2026-11-02T08:00:00Z is before start"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,3,100,,",
     "line 3: connector 3 does not exist (this charger has 1 to 2)"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1,lots,,", "line 3: energy_Wh 'lots' is not a number"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1,-5,,", "line 3: energy_Wh -5 is negative"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1,100,,abc", "line 3: cost 'abc' is not an amount"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1,100,,-1", "line 3: cost '-1' is not an amount of money"),
    ("2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,1,100,,1,50", "line 3: 7 fields, the header has 6"),
])
def test_a_bad_row_is_named_and_nothing_is_imported(tmp_path: Path, row: str, problem: str) -> None:
    config = charger(tmp_path / "cp")
    source = tmp_path / "bad.csv"
    source.write_text(GOOD.splitlines()[0] + "\n" + GOOD.splitlines()[1] + "\n" + row + "\n")
    done = cli(config, "history", "import", "--csv", str(source))
    assert done.returncode == 1
    assert problem in done.stderr and "nothing imported: 1 line with errors" in done.stderr
    assert report_sessions(config) == (0, 0)  # not even the good first row


def test_a_file_without_the_needed_columns_is_refused(tmp_path: Path) -> None:
    config = charger(tmp_path / "cp")
    source = tmp_path / "other.csv"
    source.write_text("begin,end,kWh\n2026-11-02T08:00:00Z,2026-11-02T09:00:00Z,5\n")
    done = cli(config, "history", "import", "--csv", str(source))
    assert done.returncode == 1
    assert "line 1: missing columns start, stop, connector, energy_Wh" in done.stderr


async def _two_sessions(database: Path) -> None:
    store = await Store.open(database)
    try:
        for n, energy_Wh in enumerate((10_000, 4_000)):
            session = await store.begin_session(1, f"CARD{n}", 500, DAY0 + timedelta(hours=8 + n * 3))
            await store.end_session(session.session_id, 500 + energy_Wh, DAY0 + timedelta(hours=9 + n * 3), "Local")
    finally:
        await store.close()


def test_the_export_of_one_charger_is_the_import_of_the_next(tmp_path: Path) -> None:
    old = charger(tmp_path / "old")
    asyncio.run(_two_sessions(tmp_path / "old" / "chargepoint.db"))
    source = tmp_path / "old.csv"
    source.write_text(GOOD)
    assert cli(old, "history", "import", "--csv", str(source)).returncode == 0
    exported = cli(old, "history", "export", "--csv")
    assert exported.returncode == 0, exported.stderr
    lines = exported.stdout.splitlines()
    assert lines[0] == "start,stop,connector,energy_Wh,id_tag,cost,source"
    assert len(lines) == 5 and [line.rsplit(",", 1)[1] for line in lines[1:]] == [
        "old.csv", "charger", "old.csv", "charger"]
    as_json = json.loads(cli(old, "history", "export", "--json").stdout)["sessions"]
    assert [s["energy_Wh"] for s in as_json] == [12_500, 10_000, 7_000, 4_000]
    assert Decimal(as_json[0]["cost"]) == Decimal("4.38")
    new = charger(tmp_path / "new")
    handed_over = tmp_path / "handover.csv"
    handed_over.write_text(exported.stdout)
    done = cli(new, "history", "import", "--csv", str(handed_over))
    assert done.returncode == 0 and done.stdout.startswith("imported 4 sessions"), done.stderr
    assert report_sessions(new) == (4, 33_500)
