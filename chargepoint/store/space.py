"""Disk space for the database: a reserve kept for the records of running sessions, and the "full" state.

A full disk (journald, a log gone wild, a technician's copy) must not take the charger out of service, nor lose the
record of a session that is charging. So:

- **A reserve file** (``<database>.reserve``, ``reserve_bytes`` allocated with ``posix_fallocate``) is kept beside
  the database. When a write fails for lack of space, the reserve is deleted and the write retried: the running
  sessions go on writing their readings and their stop into that space.
- **Full**: after such a failure, or when free space falls below ``min_free_bytes`` (before any write fails), the
  store is *full*: the runtime refuses new sessions, running ones go on.
- **Back**: a periodic :meth:`DiskSpace.check` sees free space return (``min_free_bytes`` and half again, plus the
  reserve if it has to be made anew), makes the reserve again and leaves the full state by itself.

Free space is read with ``os.statvfs`` (the space an unprivileged process may use); tests inject it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from chargepoint.errors import StoreError

log = logging.getLogger(__name__)

DEFAULT_RESERVE_bytes: Final = 8 * 1024 * 1024
"""Enough for a long session's readings and its stop, and for the WAL to grow to its checkpoint size (4 MiB)."""
DEFAULT_MIN_FREE_bytes: Final = 32 * 1024 * 1024
"""Below this much free space no new session starts."""
RETRY_s: Final = 5.0
"""How often a write that found no space even after the reserve was released is tried again."""


class StoreFull(StoreError):
    """A write failed for lack of space on the database's file system."""


@dataclass(frozen=True, slots=True)
class SpaceStatus:
    full: bool
    reason: str
    """Why the store is full ('' when it is not)."""
    free_bytes: int | None
    reserve_bytes: int
    """The size of the reserve file now (0 once it was released)."""


@dataclass(frozen=True, slots=True)
class StorageFilled:
    """The store became full: new sessions must be refused."""

    reason: str


@dataclass(frozen=True, slots=True)
class StorageSpaceBack:
    """Space came back: new sessions may start again."""


def statvfs_free(directory: Path) -> Callable[[], int]:
    def free() -> int:
        st = os.statvfs(directory)
        return st.f_bavail * st.f_frsize

    return free


class DiskSpace:
    """The reserve file and the full state of one database's directory. Runs on the store's worker thread."""

    def __init__(self, database: Path, reserve_bytes: int = DEFAULT_RESERVE_bytes,
                 min_free_bytes: int = DEFAULT_MIN_FREE_bytes, free_bytes: Callable[[], int] | None = None,
                 retry_s: float = RETRY_s) -> None:
        self.database = database
        self.reserve_path = database.with_name(database.name + ".reserve")
        self.reserve_bytes = reserve_bytes
        self.min_free_bytes = min_free_bytes
        self.retry_s = retry_s
        self._free = free_bytes if free_bytes is not None else statvfs_free(database.parent)
        self.full = False
        self.reason = ""
        self.last_free_bytes: int | None = None

    def free_bytes(self) -> int | None:
        try:
            self.last_free_bytes = self._free()
        except OSError as exc:
            log.warning("store %s: cannot read the free space of %s: %s", self.database, self.database.parent, exc)
            return None
        return self.last_free_bytes

    def reserve_size(self) -> int:
        try:
            return self.reserve_path.stat().st_size
        except FileNotFoundError:
            return 0

    def status(self) -> SpaceStatus:
        return SpaceStatus(self.full, self.reason, self.last_free_bytes, self.reserve_size())

    # ------------------------------------------------------------------------------------------------ transitions

    def start(self) -> bool:
        """At open: make the reserve if it is missing and look at the free space. True if the store is full."""
        self.check()
        if not self.full and self.reserve_size() < self.reserve_bytes and not self._make_reserve():
            self._become_full("not enough free space for the reserve file")
        return self.full

    def write_failed(self, detail: str) -> int:
        """A write found no space: release the reserve (its bytes are returned) and become full."""
        released = self.reserve_size()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.reserve_path)
        if not self.full:
            self._become_full(detail, released)
        elif released:
            log.error("store %s: disk full (%s): released the %s reserve file for the records of running sessions",
                      self.database, detail, _mib(released))
        return released

    def check(self) -> bool | None:
        """Look at the free space: True if the store just became full, False if space just came back, else None."""
        free = self.free_bytes()
        if free is None:
            return None
        if not self.full:
            if free < self.min_free_bytes:
                self._become_full(f"only {_mib(free)} free, below the {_mib(self.min_free_bytes)} needed to start "
                                  "sessions")
                return True
            return None
        missing = max(0, self.reserve_bytes - self.reserve_size())
        if free < missing + self.min_free_bytes * 3 // 2:
            return None
        if missing and not self._make_reserve():
            return None
        self.full = False
        self.reason = ""
        log.warning("store %s: disk space is back (%s free in %s); the reserve file is in place again, new "
                    "sessions are accepted", self.database, _mib(self.free_bytes() or 0), self.database.parent)
        return False

    def _become_full(self, detail: str, released: int = 0) -> None:
        self.full = True
        self.reason = detail
        freed = f"released the {_mib(released)} reserve file for the records of running sessions; " if released \
            else ""
        log.error("store %s: disk full (%s): %srunning sessions go on, new sessions are refused until space returns; "
                  "what to do: free space in %s (e.g. 'journalctl --vacuum-size=50M', remove old files), the charger "
                  "recovers by itself", self.database, detail, freed, self.database.parent)

    def _make_reserve(self) -> bool:
        if self.reserve_bytes <= 0:
            return True
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("store %s: cannot create the reserve file %s: %s", self.database, self.reserve_path, exc)
            return False
        try:
            os.posix_fallocate(fd, 0, self.reserve_bytes)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.reserve_path)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.warning("store %s: cannot allocate the reserve file %s: %s", self.database, self.reserve_path,
                            exc)
            return False
        os.close(fd)
        return True


def _mib(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB"
