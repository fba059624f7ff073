"""``chargepoint backup`` and ``chargepoint restore``: the charger's configuration, keys and database in one archive,
so that a replaced SD card (or a new Pi) carries on where the old one stopped.

The archive (tar.gz, mode 0600: it holds the ledger's signing key and the CSMS credentials) has:
- ``manifest.json``: format, when, firmware version, identity, schema version, the SHA-256 of every file;
- ``config/config.toml``: the configuration file;
- ``state/chargepoint.db``: a consistent copy of the database (SQLite's online backup, safe while the daemon runs);
- ``state/ledger.key``, ``state/certs/...``: the ledger's key, the certificates the CSMS installed.

A restore checks every file against the manifest and the database's integrity before it touches anything, refuses
while the daemon runs, and keeps what it replaces beside it (``<name>.before-restore``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Final

from chargepoint import __version__
from chargepoint.config.schema import Config
from chargepoint.store.ledger import KEY_FILE as LEDGER_KEY_FILE
from chargepoint.store.migrations import SCHEMA_VERSION

FORMAT: Final = 1
MANIFEST: Final = "manifest.json"
CONFIG_NAME: Final = "config/config.toml"
DATABASE_NAME: Final = "state/chargepoint.db"
STATE_FILES: Final = (LEDGER_KEY_FILE,)
STATE_DIRS: Final = ("certs",)


class BackupError(Exception):
    """The archive cannot be made or is not fit to restore; the message says why."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _state_files(config: Config) -> Iterator[tuple[str, Path]]:
    for name in STATE_FILES:
        path = config.storage.dir / name
        if path.is_file():
            yield f"state/{name}", path
    for directory in STATE_DIRS:
        root = config.storage.dir / directory
        if root.is_dir():
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                yield f"state/{path.relative_to(config.storage.dir).as_posix()}", path


def backup(config: Config, config_path: Path, archive: Path) -> dict[str, Any]:
    """Write the archive; its manifest."""
    files: dict[str, bytes] = {CONFIG_NAME: config_path.read_bytes()}
    database = config.storage.database_path
    if database.is_file():
        with tempfile.TemporaryDirectory(prefix="chargepoint-backup-") as scratch:
            copy = Path(scratch) / "copy.db"
            source = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
            target = sqlite3.connect(copy)
            try:
                source.backup(target)  # a consistent snapshot, the daemon writing or not
            finally:
                target.close()
                source.close()
            files[DATABASE_NAME] = copy.read_bytes()
    for name, path in _state_files(config):
        files[name] = path.read_bytes()
    manifest = {
        "format": FORMAT, "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "firmware_version": __version__, "serial_number": config.identity.serial_number,
        "charge_point_id": None if config.ocpp is None else config.ocpp.charge_point_id,
        "schema_version": SCHEMA_VERSION, "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    temporary = archive.with_name(f".{archive.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest, indent=2).encode()), *sorted(files.items())]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o600, int(datetime.now(UTC).timestamp())
            tar.addfile(info, io.BytesIO(data))
    os.replace(temporary, archive)
    return manifest


def read_archive(archive: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the files, each checked against it; ``BackupError`` naming what is wrong."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = {m.name: m for m in tar.getmembers()}
            if MANIFEST not in members:
                raise BackupError(f"{archive}: no {MANIFEST}: not a chargepoint backup")
            contents: dict[str, bytes] = {}
            for name, member in members.items():
                path = PurePosixPath(name)
                if not member.isfile() or path.is_absolute() or ".." in path.parts:
                    raise BackupError(f"{archive}: {name}: not a plain file inside the archive")
                extracted = tar.extractfile(member)
                assert extracted is not None
                contents[name] = extracted.read()
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{archive}: cannot read it: {exc}") from None
    manifest = json.loads(contents.pop(MANIFEST))
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{archive}: format {manifest.get('format')!r}, this firmware reads format {FORMAT}")
    expected: dict[str, str] = manifest.get("files", {})
    if set(expected) != set(contents):
        missing, extra = sorted(set(expected) - set(contents)), sorted(set(contents) - set(expected))
        raise BackupError(f"{archive}: the files do not match the manifest (missing {missing}, extra {extra})")
    for name, data in contents.items():
        if _sha256(data) != expected[name]:
            raise BackupError(f"{archive}: {name}: its SHA-256 differs from the manifest's: the archive is damaged")
    if int(manifest.get("schema_version", 0)) > SCHEMA_VERSION:
        raise BackupError(f"{archive}: its database has schema {manifest['schema_version']}, newer than this "
                          f"firmware's {SCHEMA_VERSION}: restore it with that firmware or a newer one")
    if CONFIG_NAME not in contents:
        raise BackupError(f"{archive}: no configuration file in it")
    return manifest, contents


def _check_database(data: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="chargepoint-restore-") as scratch:
        path = Path(scratch) / "check.db"
        path.write_bytes(data)
        conn = sqlite3.connect(path)
        try:
            result = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{DATABASE_NAME}: not a database: {exc}") from None
        finally:
            conn.close()
        if result != "ok":
            raise BackupError(f"{DATABASE_NAME}: fails SQLite's integrity check: {result}")


def restore(archive: Path, config: Config, config_path: Path) -> list[Path]:
    """Put the archive's files in place (the daemon stopped); the paths written. What was there stays as
    ``<name>.before-restore``."""
    _, contents = read_archive(archive)
    if DATABASE_NAME in contents:
        _check_database(contents[DATABASE_NAME])
    owner = config.storage.dir.stat() if config.storage.dir.exists() else None
    written = []
    for name, data in sorted(contents.items()):
        if name == CONFIG_NAME:
            target = config_path
        elif name == DATABASE_NAME:
            target = config.storage.database_path
        else:
            target = config.storage.dir / name.removeprefix("state/")
        target.parent.mkdir(parents=True, exist_ok=True)
        before = target.stat() if target.exists() else None
        if before is not None:
            shutil.copy2(target, target.with_name(target.name + ".before-restore"))
        if name == DATABASE_NAME:
            for suffix in ("-wal", "-shm"):  # the old database's journal must not be replayed into the new one
                stale = target.with_name(target.name + suffix)
                if stale.exists():
                    stale.unlink()
        temporary = target.with_name(f".{target.name}.restore")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640 if name == CONFIG_NAME else 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if before is not None:  # as the file it replaces (an installed config: root:chargepoint 0640)
            os.chmod(temporary, before.st_mode & 0o7777)
            if os.geteuid() == 0:
                os.chown(temporary, before.st_uid, before.st_gid)
        elif owner is not None and name != CONFIG_NAME and os.geteuid() == 0:
            os.chown(temporary, owner.st_uid, owner.st_gid)  # the daemon's user must be able to open it
        os.replace(temporary, target)
        written.append(target)
    return written
