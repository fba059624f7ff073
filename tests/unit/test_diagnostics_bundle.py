"""The diagnostics bundle (issue 13 point 3): curated, masked, never the database; and where it may go."""

from __future__ import annotations

import json
import logging
import sqlite3
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.logbook import RecentLines, RecentLinesHandler
from chargepoint.ocpp.diagnostics_bundle import BundleContents, build_bundle, bundle_file_name, scrub
from chargepoint.ocpp.v16.diagnostics import upload_refusal
from chargepoint.redaction import RedactSecrets

KEY = "Sup3r-Secret-Key-42"
PEM = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIB\n-----END EC PRIVATE KEY-----"


def contents(database: Path | None, **overrides: object) -> BundleContents:
    values: dict[str, object] = {
        "charge_point_id": "CP:01/a",
        "status": {"csms_connected": True, "note": f"key is {KEY}"},
        "config": {"ocpp": {"authorization_key": "********", "install": PEM}},
        "log_lines": [f"INFO x: ChangeConfiguration with {KEY}", 'DEBUG y: "value":"' + json.dumps(KEY)[1:-1]],
        "frames": ["send [2,\"1\",\"Heartbeat\",{}]"],
        "faults": [{"code": "GroundFailure"}],
        "security_events": [{"type": "StartupOfTheDevice"}],
        "database": database,
        "secrets": [KEY],
    }
    values.update(overrides)
    return BundleContents(**values)  # type: ignore[arg-type]


def read(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        result = {}
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            result[member.name] = data.read().decode()
        return result


def test_the_bundle_masks_every_secret_and_leaves_the_database_out(tmp_path: Path) -> None:
    db = tmp_path / "chargepoint.db"
    live = sqlite3.connect(db, isolation_level=None)
    live.execute("PRAGMA journal_mode = WAL")
    live.execute("CREATE TABLE kv (key TEXT, value TEXT)")
    live.execute("INSERT INTO kv VALUES ('ocpp.key.AuthorizationKey', ?)", (KEY,))  # in the WAL only
    created = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
    archive = build_bundle(tmp_path / "out", contents(db), created)
    live.close()
    assert archive.name == "diagnostics-CP_01_a-20240506T070809Z.tar.gz"
    files = read(archive)
    assert not any(name.endswith(".db") for name in files)
    for name, text in files.items():
        assert KEY not in text, name
        assert "PRIVATE KEY-----\nMHc" not in text, name
    assert "[private key removed]" in files["config.json"]
    health = json.loads(files["database.json"])
    assert health["quick_check"] == ["ok"] and health["rows"] == {"kv": 1}  # read from a consistent copy
    assert [p.name for p in (tmp_path / "out").iterdir()] == [archive.name]  # the copy and scratch are gone


def test_a_corrupt_or_missing_database_is_reported_not_fatal(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database at all" * 100)
    files = read(build_bundle(tmp_path / "out", contents(bad)))
    assert "error" in json.loads(files["database.json"])
    files = read(build_bundle(tmp_path / "out2", contents(tmp_path / "absent.db")))
    assert json.loads(files["database.json"])["present"] is False


def test_scrub_masks_a_secret_in_json_escaped_form_and_removes_private_keys() -> None:
    secret = 'pa"ss\\word-123'
    text = f'{{"value": {json.dumps(secret)}}} {PEM} tail'
    cleaned = scrub(text, [secret, json.dumps(secret)[1:-1]])
    assert "pa" not in cleaned.replace("[private", "") and "MHcCAQEEIB" not in cleaned and cleaned.endswith("tail")


def test_recent_lines_keep_a_window_and_a_bound() -> None:
    ring = RecentLines(3)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        ring.add(f"line {i}", (start + timedelta(minutes=i)).timestamp())
    assert [line.split(" ", 1)[1] for line in ring.lines()] == ["line 2", "line 3", "line 4"]
    assert [line.split(" ", 1)[1] for line in ring.lines(start + timedelta(minutes=3))] == ["line 3", "line 4"]
    assert [line.split(" ", 1)[1] for line in ring.lines(None, start + timedelta(minutes=2))] == ["line 2"]


def test_the_recent_log_handler_masks_like_the_message_log() -> None:
    ring = RecentLines(10)
    handler = RecentLinesHandler(ring)
    handler.addFilter(RedactSecrets())
    logger = logging.getLogger("test.recent")
    logger.addHandler(handler)
    try:
        logger.warning('frame {"key": "AuthorizationKey", "value": "%s"}', KEY)
        logger.warning("> Authorization: Basic QUJDOkRFRg==")
    finally:
        logger.removeHandler(handler)
    text = "\n".join(ring.lines())
    assert KEY not in text and "QUJDOkRFRg" not in text and "AuthorizationKey" in text


@pytest.mark.parametrize(("location", "profile", "allowed", "refused"), [
    ("http://files.example/", 0, False, None),
    ("ftp://files.example/", 1, False, None),
    ("https://files.example/", 2, False, None),
    ("ftps://files.example/", 3, False, None),
    ("http://files.example/", 2, False, "only https:// and ftps://"),
    ("ftp://files.example/", 3, False, "only https:// and ftps://"),
    ("http://files.example/", 2, True, None),
    ("sftp://files.example/", 0, True, "unsupported scheme 'sftp'"),
    ("files.example/x", 0, False, "unsupported scheme '(none)'"),
])
def test_where_an_upload_may_go(location: str, profile: int, allowed: bool, refused: str | None) -> None:
    reason = upload_refusal(location, profile, allowed)
    if refused is None:
        assert reason is None
    else:
        assert reason is not None and refused in reason


def test_bundle_names_carry_the_kind() -> None:
    at = datetime(2026, 12, 5, 1, 2, 3, tzinfo=UTC)
    assert bundle_file_name("CP 7", at, "security-log") == "security-log-CP_7-20261205T010203Z.tar.gz"
