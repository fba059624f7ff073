"""The watchdogs (systemd's and the hardware one) are fed from the safety loop and from nowhere else.

Every pilot sample a connector's loop processes is a tick; the watchdogs are fed only when every connector has
ticked since the last feed. A stalled sampler, a blocked event loop or a hung process therefore stops the feeding:
systemd restarts the daemon (``WatchdogSec``) and the hardware watchdog resets the Pi, whose released GPIO lines
open the contactor.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from chargepoint.runtime.notify import sd_notify
from hal.drivers.watchdog import HardwareWatchdog
from hal.errors import HalError

log = logging.getLogger(__name__)

FEED_INTERVAL_S = 1.0  # well inside both timeouts (systemd 10 s, hardware 10-15 s)


class SafetyFeeder:
    def __init__(self, connector_ids: Iterable[int], systemd: bool, hardware: HardwareWatchdog | None) -> None:
        self._waiting = set(connector_ids)
        self._all = frozenset(self._waiting)
        self._systemd = systemd
        self.hardware = hardware
        self._last_feed_s = 0.0
        self.feeds = 0

    def tick(self, connector_id: int) -> None:
        self._waiting.discard(connector_id)
        now_s = time.monotonic()
        if self._waiting or now_s - self._last_feed_s < FEED_INTERVAL_S:
            return
        self._waiting = set(self._all)
        self._last_feed_s = now_s
        self.feeds += 1
        if self._systemd:
            sd_notify("WATCHDOG=1")
        if self.hardware is not None:
            try:
                self.hardware.feed()
            except HalError as exc:
                log.error("%s", exc)


def open_hardware_watchdog(device: str, timeout_s: int) -> HardwareWatchdog | None:
    """Arm the hardware watchdog; None (and a warning) if it cannot be opened, e.g. systemd holds it."""
    if not device:
        return None
    try:
        watchdog = HardwareWatchdog(device, timeout_s)
    except HalError as exc:
        log.warning("%s: the Pi will not be reset if this process hangs (does systemd's RuntimeWatchdogSec hold "
                    "the device? see docs/hardware.md)", exc)
        return None
    log.info("hardware watchdog %s armed: %d s, fed from the safety loop", device, watchdog.timeout_s)
    return watchdog
