"""The hardware watchdog (/dev/watchdog): the SoC resets the whole Pi when it is not fed in time.

Armed when opened. The runtime feeds it from the safety loop only (each pilot sample processed), so a hung
process, a blocked event loop or a dead pilot sampler all end in a reset - and a reset leaves the GPIO contactor
open and the pilot at its power-on level. ``aclose()`` disarms it with the magic close ('V') for a clean stop; a
kernel built with ``nowayout`` ignores that, and then only a restart within the timeout avoids the reset.
"""

from __future__ import annotations

import fcntl
import logging
import os
import struct

from hal.errors import HalError

_log = logging.getLogger(__name__)

WDIOC_SETTIMEOUT = 0xC0045706  # _IOWR('W', 6, int)
WDIOC_GETTIMEOUT = 0x80045707  # _IOR('W', 7, int)


class HardwareWatchdog:
    def __init__(self, path: str = "/dev/watchdog", timeout_s: int = 10) -> None:
        if timeout_s < 1:
            raise ValueError(f"watchdog timeout must be at least 1 s, got {timeout_s}")
        self.path = path
        try:
            self._fd: int | None = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise HalError(f"hardware watchdog {path}: cannot open: {exc}") from exc
        self.timeout_s = timeout_s
        try:
            reply = fcntl.ioctl(self._fd, WDIOC_SETTIMEOUT, struct.pack("i", timeout_s))
            self.timeout_s = struct.unpack("i", reply)[0]  # the driver may round it (bcm2835: at most 15 s)
        except OSError as exc:
            # Not a watchdog device (a test file) or a driver without the ioctl: its own timeout applies.
            _log.warning("hardware watchdog %s: timeout not set (%s); the driver's default applies", path, exc)
        self.feeds = 0

    def feed(self) -> None:
        if self._fd is None:
            return
        try:
            os.write(self._fd, b"\0")
        except OSError as exc:
            raise HalError(f"hardware watchdog {self.path}: cannot feed: {exc}") from exc
        self.feeds += 1

    def close(self) -> None:
        """Disarm (magic close) and release. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.write(fd, b"V")
        except OSError as exc:
            _log.warning("hardware watchdog %s: magic close failed: %s", self.path, exc)
        finally:
            os.close(fd)
