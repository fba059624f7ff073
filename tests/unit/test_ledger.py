"""The tamper-evident ledger (issue 14 point 7): appended with each session's end, verified, and every kind of
tampering named - through the store, and through ``chargepoint ledger verify`` on the file."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.store import LedgerSigner, Store, ledger

T0 = datetime(2026, 12, 5, 8, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


async def three_sessions(tmp_path: Path, signer: LedgerSigner | None) -> Path:
    path = tmp_path / "chargepoint.db"
    async with await Store.open(path, ledger_signer=signer) as store:
        for i in range(3):
            record = await store.begin_session(1, f"TAG{i}", 1000 * i, T0 + timedelta(hours=i))
            await store.end_session(record.session_id, 1000 * i + 700, T0 + timedelta(hours=i, minutes=30), "Local")
        await store.end_session(record.session_id, 99_999, T0 + timedelta(hours=5), "Local")  # idempotent: no record
        kept = await store.ledger()
    assert [r.seq for r in kept] == [1, 2, 3]
    assert [r.body["energy_Wh"] for r in kept] == [700, 700, 700]
    assert kept[0].prev_hash == ledger.GENESIS and kept[1].prev_hash == kept[0].hash
    return path


def check(path: Path, public_key: str | None) -> ledger.Verdict:
    conn = sqlite3.connect(path)
    try:
        return ledger.verify(ledger.raw_rows(conn), public_key)
    finally:
        conn.close()


def tamper(path: Path, sql: str, *args: object) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute(sql, args)
        conn.commit()
    finally:
        conn.close()


async def test_an_intact_signed_chain_verifies(tmp_path: Path) -> None:
    signer = LedgerSigner.load_or_create(tmp_path / "ledger.key")
    assert (tmp_path / "ledger.key").stat().st_mode & 0o777 == 0o600
    path = await three_sessions(tmp_path, signer)
    verdict = check(path, signer.public_key_b64)
    assert verdict.ok and verdict.records == 3 and verdict.head_seq == 3 and verdict.signed
    assert LedgerSigner.load_or_create(tmp_path / "ledger.key").public_key_b64 == signer.public_key_b64  # reused


@pytest.mark.parametrize(("sql", "args", "problem"), [
    ("UPDATE ledger SET body = replace(body, '\"energy_Wh\":700', '\"energy_Wh\":70') WHERE seq = 2", (),
     "record 2: its contents do not match its hash (altered)"),
    ("DELETE FROM ledger WHERE seq = 2", (), "record 2 missing (record 3 follows record 1)"),
    ("DELETE FROM ledger WHERE seq = 1", (), "record 1 missing (record 2 follows record 0)"),
    ("UPDATE ledger SET seq = seq + 10 WHERE seq = 1", (), "record 1 missing (record 2 follows record 0)"),
])
async def test_tampering_is_named_at_the_first_broken_record(tmp_path: Path, sql: str, args: tuple[object, ...],
                                                             problem: str) -> None:
    path = await three_sessions(tmp_path, None)
    assert check(path, None).ok
    tamper(path, sql, *args)
    verdict = check(path, None)
    assert not verdict.ok and verdict.problem is not None and verdict.problem.startswith(problem), verdict.problem


async def test_a_recomputed_chain_still_fails_the_device_signature(tmp_path: Path) -> None:
    """Rewriting a record and recomputing every hash after it fools the hashes, not the device key."""
    signer = LedgerSigner.load_or_create(tmp_path / "ledger.key")
    path = await three_sessions(tmp_path, signer)
    conn = sqlite3.connect(path)
    rows = ledger.raw_rows(conn)
    prev = ledger.GENESIS
    for seq, at, kind, body, _, _, _ in rows:
        if seq == 2:
            body = body.replace('"energy_Wh":700', '"energy_Wh":7')
        digest = ledger.record_hash(seq, at, kind, body, prev)
        conn.execute("UPDATE ledger SET body = ?, prev_hash = ?, hash = ? WHERE seq = ?", (body, prev, digest, seq))
        prev = digest
    conn.commit()
    conn.close()
    assert check(path, None).ok  # unsigned, the rewrite would pass ...
    verdict = check(path, signer.public_key_b64)
    assert not verdict.ok and verdict.problem == "record 2: the signature does not match the device key"


async def test_records_swapped_are_named_as_reordered(tmp_path: Path) -> None:
    """Records 2 and 3 trade places (numbers kept, contents and hashes swapped)."""
    path = await three_sessions(tmp_path, None)
    conn = sqlite3.connect(path)
    rows = {row[0]: row for row in ledger.raw_rows(conn)}
    for seq, other in ((2, 3), (3, 2)):
        conn.execute("UPDATE ledger SET at = ?, kind = ?, body = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                     (*rows[other][1:6], seq))
    conn.commit()
    conn.close()
    verdict = check(path, None)
    assert not verdict.ok
    assert verdict.problem == "record 2: its previous hash is not record 1's (replaced or reordered)"


def ledger_cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", "ledger", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def test_chargepoint_ledger_verify_and_export(tmp_path: Path) -> None:
    signer = LedgerSigner.load_or_create(tmp_path / ledger.KEY_FILE)
    path = await three_sessions(tmp_path, signer)
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[storage]\ndir = "{tmp_path}"\n')
    intact = ledger_cli(config, "verify")
    assert intact.returncode == 0, intact.stderr
    assert "ledger intact: 3 records" in intact.stdout and "signed by the device key" in intact.stdout
    exported = [json.loads(line) for line in ledger_cli(config, "export").stdout.splitlines()]
    assert [r["seq"] for r in exported] == [1, 2, 3] and exported[2]["prev_hash"] == exported[1]["hash"]
    tamper(path, "UPDATE ledger SET body = replace(body, 'TAG1', 'TAG9') WHERE seq = 2")
    broken = ledger_cli(config, "verify", "--json")
    assert broken.returncode == 1
    assert json.loads(broken.stdout)["problem"] == "record 2: its contents do not match its hash (altered)"
    assert ledger_cli(tmp_path.parent / "absent.toml", "verify").returncode == 2
