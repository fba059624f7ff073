"""The diagnostics bundle: what a charger uploads when the CSMS (GetDiagnostics, GetLog) or a technician asks.

A curated ``.tar.gz``, never a copy of the database (that holds the AuthorizationKey, the local list, the cache
and prepaid balances):

- ``README.txt``: what is inside and what is left out on purpose;
- ``status.json``: the charger's status, the readable OCPP configuration keys, the requested time window;
- ``config.json``: the effective configuration, secrets masked;
- ``log.txt``: the recent log lines in the window; ``ocpp-frames.txt``: the recent OCPP frames (cut, masked);
- ``faults.json``: the fault history; ``security-log.json``: the security events;
- ``database.json``: the database's health (integrity check, size, schema version, rows per table) read from a
  consistent copy that is deleted afterwards.

Whatever a file holds, every secret the caller names (the AuthorizationKey, its Basic-auth token) is masked and
every PEM private key block removed before it is written: a last line of defence behind the redacting sources.
Blocking: call ``build_bundle`` through ``asyncio.to_thread``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MASK = "********"
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)
README = """\
Diagnostics of charge point {charge_point_id}, made {created_at} (UTC).

status.json        status of the charger and its connectors, readable OCPP configuration keys
config.json        effective configuration; secrets are replaced by {mask}
log.txt            recent log lines{window}
ocpp-frames.txt    recent OCPP frames (each cut to a few hundred characters, secrets masked)
faults.json        fault history (raised, latched, cleared; newest first)
security-log.json  security events (newest first)
database.json      health of the charger's database (integrity check, size, schema version, rows per table)

Left out on purpose: the database itself, the AuthorizationKey and every other password, private keys,
the local authorization list and cache, prepaid balances.
"""


@dataclass(slots=True)
class BundleContents:
    charge_point_id: str
    status: dict[str, Any]
    config: dict[str, Any]
    log_lines: Sequence[str]
    frames: Sequence[str]
    faults: Sequence[dict[str, Any]]
    security_events: Sequence[dict[str, Any]]
    database: Path | None
    start_time: datetime | None = None
    stop_time: datetime | None = None
    secrets: Sequence[str] = field(default_factory=list)  # masked wherever they appear


def bundle_file_name(charge_point_id: str, created_at: datetime, kind: str = "diagnostics") -> str:
    """``<kind>-<charge point id>-<UTC timestamp>.tar.gz``; characters that file servers dislike (``:``, ``/``
    ...) in the id become ``_``."""
    safe_id = re.sub(r"[^A-Za-z0-9_.-]", "_", charge_point_id)
    return f"{kind}-{safe_id}-{created_at.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}.tar.gz"


def build_bundle(dest_dir: Path, contents: BundleContents, created_at: datetime | None = None,
                 kind: str = "diagnostics") -> Path:
    """Write the bundle into ``dest_dir`` (atomically: it is whole or absent) and return its path."""
    created_at = created_at or datetime.now(UTC)
    dest_dir.mkdir(parents=True, exist_ok=True)
    archive = dest_dir / bundle_file_name(contents.charge_point_id, created_at, kind)
    secrets = _all_forms(contents.secrets)
    window = ""
    if contents.start_time is not None or contents.stop_time is not None:
        window = f" from {_iso(contents.start_time) or 'the start'} to {_iso(contents.stop_time) or 'now'}"
    status = {**contents.status, "charge_point_id": contents.charge_point_id,
              "created_at": created_at.astimezone(UTC).isoformat(),
              "requested_start_time": _iso(contents.start_time), "requested_stop_time": _iso(contents.stop_time)}
    with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".bundle-") as scratch:
        files: dict[str, str] = {
            "README.txt": README.format(charge_point_id=contents.charge_point_id, mask=MASK, window=window,
                                        created_at=created_at.astimezone(UTC).isoformat(timespec="seconds")),
            "status.json": _json(status),
            "config.json": _json(contents.config),
            "log.txt": "\n".join(contents.log_lines) + "\n",
            "ocpp-frames.txt": "\n".join(contents.frames) + "\n",
            "faults.json": _json(list(contents.faults)),
            "security-log.json": _json(list(contents.security_events)),
            "database.json": _json(database_health(contents.database, Path(scratch))),
        }
        temp_archive = Path(scratch) / archive.name
        with tarfile.open(temp_archive, "w:gz") as tar:
            for name, text in files.items():
                data = scrub(text, secrets).encode()
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = int(time.time())
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
        os.replace(temp_archive, archive)
    return archive


def scrub(text: str, secrets: Sequence[str]) -> str:
    """``text`` without PEM private keys and with every one of ``secrets`` masked."""
    text = _PRIVATE_KEY.sub("[private key removed]", text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def _all_forms(secrets: Sequence[str]) -> list[str]:
    """Each secret as it is and JSON-escaped (a Basic-auth token is a secret of its own: name it too)."""
    forms: set[str] = set()
    for secret in secrets:
        if len(secret) < 4:  # too short to mask without mangling everything else
            continue
        forms.add(secret)
        forms.add(json.dumps(secret)[1:-1])
    return sorted(forms, key=len, reverse=True)


def database_health(database: Path | None, scratch: Path) -> dict[str, Any]:
    """Integrity, size and contents (row counts only) of the database, from a consistent copy in ``scratch``."""
    if database is None or not database.is_file():
        return {"path": None if database is None else str(database), "present": False}
    health: dict[str, Any] = {"path": str(database), "present": True, "size_bytes": database.stat().st_size}
    copy = scratch / "database-copy.db"
    try:
        source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            target = sqlite3.connect(copy)
            try:
                source.backup(target)
                health["quick_check"] = [row[0] for row in target.execute("PRAGMA quick_check(20)")]
                health["schema_version"] = target.execute("PRAGMA user_version").fetchone()[0]
                health["page_size"] = target.execute("PRAGMA page_size").fetchone()[0]
                health["page_count"] = target.execute("PRAGMA page_count").fetchone()[0]
                health["freelist_count"] = target.execute("PRAGMA freelist_count").fetchone()[0]
                tables = [row[0] for row in target.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
                health["rows"] = {name: target.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
                                  for name in tables}
            finally:
                target.close()
        finally:
            source.close()
    except sqlite3.Error as exc:
        health["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        copy.unlink(missing_ok=True)
    return health


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str) + "\n"


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()
