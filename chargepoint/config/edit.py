"""Change one key of the configuration file the way a careful technician would by hand: comments and layout kept
(tomlkit), the whole file validated before anything is written, the new file put in place atomically (written
beside it, synced, renamed over it), the previous one kept as ``<name>.bak``, owner and mode unchanged.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import Table

from chargepoint.config import site
from chargepoint.config.keys import field_type, is_text
from chargepoint.config.loader import parse_config
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError


@dataclass(frozen=True)
class Written:
    path: Path
    backup: Path | None  # the previous file, None if there was none
    config: Config  # the new file's, validated
    warnings: list[str]


def parse_value(key: str, text: str) -> Any:
    """A command-line value for ``key``: text as it is for a text key, else a TOML value (``32``, ``true``,
    ``["A", "B"]``); what does not parse is passed on as text, for the validation to say what was expected."""
    if is_text(field_type(key)):
        return text
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def _read(path: Path) -> tomlkit.TOMLDocument:
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(path), [f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    except (UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise ConfigError(str(path), [f"{path}: not a valid TOML file: {exc}"]) from None


def _table(document: tomlkit.TOMLDocument, tables: list[str], create: bool) -> Any:
    table: Any = document
    for name in tables:
        if name not in table:
            if not create:
                return None
            table[name] = tomlkit.table()
        table = table[name]
        if not isinstance(table, Table | dict):
            raise ConfigError("", [f"{'.'.join(tables)}: {name} is a value in the file, not a table"])
    return table


def set_key(path: Path, key: str, text: str) -> Written:
    """Set ``key`` to the value ``text`` says; ``ConfigError`` (nothing written) if the file would not validate."""
    value = parse_value(key, text)
    document = _read(path)
    *tables, name = key.split(".")
    _table(document, tables, create=True)[name] = value
    return _write(path, document)


def unset_key(path: Path, key: str) -> Written:
    """Take ``key`` out of the file, so that its default (or the CSMS's value) applies."""
    field_type(key)
    document = _read(path)
    *tables, name = key.split(".")
    table = _table(document, tables, create=False)
    if table is None or name not in table:
        raise ConfigError(str(path), [f"{path}: {key}: not in the file (it has its default already)"])
    del table[name]
    return _write(path, document)


def _write(path: Path, document: tomlkit.TOMLDocument) -> Written:
    text = tomlkit.dumps(document)
    config = parse_config(tomllib.loads(text), path)
    warnings = site.warnings(config, path)
    backup = write_atomically(path, text)
    return Written(path, backup, config, warnings)


def write_atomically(path: Path, text: str) -> Path | None:
    """Replace ``path`` with ``text``: a power cut leaves the old file or the new one, never half of one. The old
    file stays as ``<name>.bak``; the new one keeps its owner and mode. Returns the backup's path."""
    backup = path.with_name(path.name + ".bak")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    try:
        with open(temporary, "w", encoding="utf-8") as out:  # (one a crash left behind is overwritten)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if old is not None:
            os.chmod(temporary, old.st_mode & 0o7777)
            with contextlib.suppress(PermissionError):  # only root may give a file away
                os.chown(temporary, old.st_uid, old.st_gid)
            shutil.copy2(path, backup)
            with contextlib.suppress(PermissionError):
                os.chown(backup, old.st_uid, old.st_gid)
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigError(str(path), [f"{path}: cannot write: {exc.strerror or exc}"]) from None
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return backup if old is not None else None
