"""The update guard: the trial of a new firmware across restarts, and the switch of ``.venv`` to it and back.

Standard library only, on purpose: ``install.sh`` copies this file to ``/opt/chargepoint/update-guard.py`` and the
unit runs it with the system ``python3`` before every start of the daemon (``ExecStartPre=-+``: as root, outside
the sandbox, its failure never keeps the charger down). It must work when the firmware it guards cannot even be
imported. The firmware imports it too (``chargepoint.release.guard``) for the state file, so the format has one
definition.

The state file (``<storage dir>/update-state.json``) says where an update stands:

``staged``      a release is installed in ``venvs/<new>`` and waits for the next start (the daemon or
                ``chargepoint update`` wrote it, then restarted the service)
``trial``       the guard switched ``.venv`` to it; every start counts an attempt. The new daemon runs its health
                check and writes ``committed``, or ``rollback`` with the reason (and exits)
``rollback``    the new firmware asked to be replaced by the previous one
``committed``   the new firmware passed its health check: the update is over
``rolled-back`` the guard switched back (the health check failed, too many starts, the deadline passed, or by hand)

At each start the guard moves ``staged`` to ``trial`` (a copy of the database is taken first, the new venv is made
root-owned and read-only for the service), counts a ``trial`` start and rolls back after ``max_attempts`` starts or
past the deadline (a firmware that crashes at import never writes anything: this is what brings the old one back),
and carries out a ``rollback``. Rolling back puts the database copy back only when the new firmware migrated the
database to a schema the old one refuses; sessions recorded during the trial are then kept aside
(``<database>.failed-update``). Once an update is over, venvs that are neither ``.venv`` nor ``.venv-previous`` are
removed.

Usage (the unit's line): ``python3 update-guard.py --config /etc/chargepoint/config.toml``; ``--root`` overrides
``[update] install_root``. It prints one line saying what it did, for the journal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sqlite3
import stat
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

FORMAT = 1
STATE_FILE = "update-state.json"
DEFAULT_ROOT = Path("/opt/chargepoint")
DEFAULT_STORAGE = Path("/var/lib/chargepoint")
DEFAULT_CONFIG = Path("/etc/chargepoint/config.toml")
LINK = ".venv"
PREVIOUS_LINK = ".venv-previous"
BUILD_MARKER = ".chargepoint-build"
DB_SNAPSHOT_SUFFIX = ".before-update"
DB_FAILED_SUFFIX = ".failed-update"
# Past the health timeout, how long the trial may still take before the guard gives up on it (slow starts on a Pi).
DEADLINE_GRACE_S = 120.0
# A venv without the build marker may be one being built right now: left alone this long.
UNFINISHED_VENV_GRACE_S = 3600.0

STAGED = "staged"
TRIAL = "trial"
ROLLBACK = "rollback"
COMMITTED = "committed"
ROLLED_BACK = "rolled-back"
PHASES = (STAGED, TRIAL, ROLLBACK, COMMITTED, ROLLED_BACK)
OVER = (COMMITTED, ROLLED_BACK)


# ------------------------------------------------------------------------------------------------ the state file


def read_state(path: Path) -> dict[str, Any] | None:
    """The state, or None when there is none (or it is unreadable: then no update is in progress)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("phase") not in PHASES:
        return None
    return data


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically (temporary file, fsync, rename); as root, owned like its directory."""
    state = {**state, "format": FORMAT, "updated_at": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.tmp")
    with temp.open("w", encoding="utf-8") as out:
        json.dump(state, out, indent=2, sort_keys=True)
        out.write("\n")
        out.flush()
        os.fsync(out.fileno())
    _own_like_parent(temp)
    os.replace(temp, path)


def _own_like_parent(path: Path) -> None:
    if os.geteuid() != 0:
        return
    parent = path.parent.stat()
    os.chown(path, parent.st_uid, parent.st_gid)


def request_rollback(path: Path, version: str, reason: str) -> bool:
    """If ``version`` is on trial, ask the guard to switch back at the next start (True); else change nothing."""
    state = read_state(path)
    if state is None or state["phase"] != TRIAL or str(state.get("version")) != version:
        return False
    write_state(path, {**state, "phase": ROLLBACK, "reason": reason})
    return True


# ------------------------------------------------------------------------------------------------ links


def link_target(link: Path) -> str | None:
    try:
        return os.readlink(link)
    except OSError:
        return None


def switch_link(link: Path, target: str | None) -> None:
    """Point ``link`` at ``target`` atomically (a new link renamed over it); None removes it."""
    if target is None:
        with contextlib.suppress(FileNotFoundError):
            link.unlink()
        return
    temp = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        temp.unlink()
    os.symlink(target, temp)
    os.replace(temp, link)


def venv_version(root: Path, relative: str | None) -> str | None:
    """The version a venv's build marker names (install.sh and the release installer write it)."""
    if relative is None:
        return None
    try:
        text = (root / relative / BUILD_MARKER).read_text(encoding="utf-8")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key == "version":
            return value.strip()
    return None


# ------------------------------------------------------------------------------------------------ the guard


class Guard:
    """One start's work: ``run()`` returns the line to print."""

    def __init__(self, root: Path, state_path: Path, database: Path | None, now: float | None = None) -> None:
        self.root = root
        self.state_path = state_path
        self.database = database
        self.now = time.time() if now is None else now

    def run(self) -> str:
        state = read_state(self.state_path)
        if state is None:
            return "no update in progress"
        phase = state["phase"]
        if phase == STAGED:
            return self._begin_trial(state)
        if phase == TRIAL:
            attempts = int(state.get("attempts", 0)) + 1
            limit = int(state.get("max_attempts", 3))
            if attempts > limit:
                return self.roll_back(state, f"chargepoint {state.get('version')} did not pass its health check in "
                                             f"{limit} start(s)")
            if self.now > float(state.get("deadline", 0)):
                return self.roll_back(state, f"chargepoint {state.get('version')} did not pass its health check "
                                             "before the trial's deadline")
            write_state(self.state_path, {**state, "attempts": attempts})
            return f"chargepoint {state.get('version')} on trial: start {attempts} of {limit}"
        if phase == ROLLBACK:
            return self.roll_back(state, str(state.get("reason") or "the new firmware asked for it"))
        removed = self.prune()
        return f"no update in progress (the last one: {phase})" + (f"; removed {', '.join(removed)}" if removed
                                                                   else "")

    def _begin_trial(self, state: dict[str, Any]) -> str:
        new = str(state.get("new", ""))
        new_dir = self.root / new
        if not new.startswith("venvs/") or ".." in Path(new).parts or not (new_dir / "bin" / "chargepoint").exists():
            write_state(self.state_path, {**state, "phase": ROLLED_BACK, "ended_at": self.now,
                                          "reason": f"the staged firmware {new or '(none)'} is not installed"})
            return f"staged firmware {new} is missing: nothing switched"
        link = self.root / LINK
        current = link_target(link)
        previous_before = link_target(self.root / PREVIOUS_LINK)
        snapshot = self._snapshot_database()
        _harden(new_dir)
        switch_link(link, new)
        if current is not None and current != new:
            switch_link(self.root / PREVIOUS_LINK, current)
        timeout_s = float(state.get("health_timeout_s", 120))
        write_state(self.state_path, {
            **state, "phase": TRIAL, "previous": current, "previous_before": previous_before, "attempts": 1,
            "started_at": self.now, "deadline": self.now + timeout_s + DEADLINE_GRACE_S,
            "database_snapshot": None if snapshot is None else str(snapshot[0]),
            "schema_version": None if snapshot is None else snapshot[1],
        })
        return f"switched {LINK} to {new} (was {current}): chargepoint {state.get('version')} on trial"

    def roll_back(self, state: dict[str, Any], reason: str) -> str:
        """Switch ``.venv`` back to the firmware before the update and record why."""
        previous = state.get("previous")
        link = self.root / LINK
        if isinstance(previous, str) and (self.root / previous).is_dir():
            switch_link(link, previous)
            switch_link(self.root / PREVIOUS_LINK, state.get("previous_before"))
            restored = self._restore_database(state)
            switched = f"switched {LINK} back to {previous}" + ("; the database copy from before was put back"
                                                                if restored else "")
        else:
            switched = f"no previous firmware to switch back to ({previous}): {LINK} left at {link_target(link)}"
        write_state(self.state_path, {**state, "phase": ROLLED_BACK, "reason": reason, "ended_at": self.now})
        return f"rolled back: {reason}; {switched}"

    # -------------------------------------------------------------- the database across a rollback

    def _snapshot_database(self) -> tuple[Path, int] | None:
        if self.database is None or not self.database.is_file():
            return None
        snapshot = self.database.with_name(self.database.name + DB_SNAPSHOT_SUFFIX)
        source = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            version = int(source.execute("PRAGMA user_version").fetchone()[0])
            snapshot.unlink(missing_ok=True)
            target = sqlite3.connect(snapshot)
            try:
                source.backup(target)
            finally:
                target.close()
        finally:
            source.close()
        os.chmod(snapshot, 0o600)
        _own_like_parent(snapshot)
        return snapshot, version

    def _restore_database(self, state: dict[str, Any]) -> bool:
        snapshot = state.get("database_snapshot")
        before = state.get("schema_version")
        if self.database is None or not isinstance(snapshot, str) or not isinstance(before, int):
            return False
        if not Path(snapshot).is_file() or not self.database.is_file():
            return False
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            now_version = int(connection.execute("PRAGMA user_version").fetchone()[0])
        finally:
            connection.close()
        if now_version <= before:
            return False  # the old firmware can open it: keep what the trial recorded
        for suffix in ("", "-wal", "-shm"):
            current = Path(str(self.database) + suffix)
            if current.exists():
                os.replace(current, Path(str(self.database) + DB_FAILED_SUFFIX + suffix))
        shutil.copy2(snapshot, self.database)
        _own_like_parent(self.database)
        return True

    # -------------------------------------------------------------- old venvs

    def prune(self) -> list[str]:
        """Remove the venvs that are neither current nor previous (install.sh keeps the same two)."""
        keep = {link_target(self.root / LINK), link_target(self.root / PREVIOUS_LINK)}
        venvs = self.root / "venvs"
        removed = []
        for entry in sorted(venvs.iterdir()) if venvs.is_dir() else []:
            relative = f"venvs/{entry.name}"
            if not entry.is_dir() or entry.is_symlink() or relative in keep:
                continue
            if not (entry / BUILD_MARKER).exists() and self.now - entry.stat().st_mtime < UNFINISHED_VENV_GRACE_S:
                continue  # perhaps being built right now
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(relative)
        return removed


def _harden(venv: Path) -> None:
    """As root: the firmware about to run becomes root's and read-only for the service (it built it)."""
    if os.geteuid() != 0:
        return
    for directory, dirs, files in os.walk(venv):
        for name in [*dirs, *files]:
            path = os.path.join(directory, name)
            os.lchown(path, 0, 0)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                # Built under the service's UMask=0077: readable (and, where meant, executable) by everyone.
                os.chmod(path, 0o755 if stat.S_ISDIR(mode) or mode & 0o100 else 0o644)
    os.chown(venv, 0, 0)
    os.chmod(venv, 0o755)


# ------------------------------------------------------------------------------------------------ paths from config


def paths_from_config(config: Path, root: Path | None = None) -> tuple[Path, Path, Path | None]:
    """(install root, state file, database) from the raw config file; defaults where it cannot tell."""
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        raw = {}
    base = config.parent

    def path(value: object, default: Path | None) -> Path | None:
        if not isinstance(value, str) or not value:
            return default
        given = Path(value)
        return given if given.is_absolute() else (base / given).resolve()

    storage = raw.get("storage") if isinstance(raw.get("storage"), dict) else {}
    update = raw.get("update") if isinstance(raw.get("update"), dict) else {}
    assert isinstance(storage, dict) and isinstance(update, dict)
    storage_dir = path(storage.get("dir"), DEFAULT_STORAGE) or DEFAULT_STORAGE
    database = path(storage.get("database"), storage_dir / "chargepoint.db")
    install_root = root or path(update.get("install_root"), DEFAULT_ROOT) or DEFAULT_ROOT
    return install_root, storage_dir / STATE_FILE, database


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="update-guard", description="Carry a firmware update's trial across "
                                     "restarts: switch to the staged firmware, count starts, roll back.")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="the charger's configuration file")
    parser.add_argument("--root", type=Path, default=None, help="install root (default: [update] install_root)")
    args = parser.parse_args(argv)
    root, state_path, database = paths_from_config(args.config, args.root)
    try:
        print(f"update-guard: {Guard(root, state_path, database).run()}", flush=True)
    except (OSError, sqlite3.Error, ValueError, TypeError) as exc:
        print(f"update-guard: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
