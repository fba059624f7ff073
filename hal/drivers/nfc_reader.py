"""RFID/NFC card readers (rpi backend): nfcpy readers, and "no reader" for free-vend chargers.

nfcpy's ``ContactlessFrontend.connect()`` blocks until a card comes and goes, so it runs in a thread
owned by the reader and hands each UID to the event loop with ``loop.call_soon_threadsafe``. ``nfc``
is imported when the reader is built, never when this module is imported.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from hal.drivers.gpio_lines import INSTALL_HINT
from hal.errors import BackendUnavailable

_log = logging.getLogger(__name__)

REOPEN_DELAY_S: Final = 5.0
JOIN_TIMEOUT_S: Final = 2.0


class _Closed:
    """End of stream."""


class NfcRfidReader:
    """``RfidReader`` on any reader nfcpy supports (ACR122U, PN532 on UART/USB, RC-S380 ...).

    Yields upper-case hex UIDs, one per presentation: nfcpy waits for the card to leave before the
    next ``connect()`` (our on-connect callback returns True), and the same UID seen again within
    ``repeat_holdoff_s`` of leaving (a card wobbling at the edge of the field) is dropped too. A
    reader that is missing or unplugged is retried every ``REOPEN_DELAY_S``, logged once per outage.
    """

    def __init__(self, device: str = "usb", *, repeat_holdoff_s: float = 1.0) -> None:
        try:
            import nfc
        except ImportError as exc:
            raise BackendUnavailable(
                f"the RFID reader needs the 'nfcpy' package: {INSTALL_HINT} ({exc}); "
                'or set [hardware.rfid] backend = "none"'
            ) from exc
        self._nfc: Any = nfc
        self._device = device
        self._repeat_holdoff_s = repeat_holdoff_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._queue: asyncio.Queue[str | _Closed] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_uid: str | None = None
        self._last_left_s = -float("inf")

    # ------------------------------------------------------------------ reader thread

    def _deliver(self, uid: str) -> None:
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, uid)

    def _on_connect(self, tag: Any) -> bool:
        uid = bytes(tag.identifier).hex().upper()
        now_s = time.monotonic()
        if uid == self._last_uid and now_s - self._last_left_s < self._repeat_holdoff_s:
            _log.debug("card %s presented again within %.1f s: ignored", uid, self._repeat_holdoff_s)
        else:
            self._deliver(uid)
        self._last_uid = uid
        return True  # nfcpy then waits until the card has left before connect() returns

    def _run(self) -> None:
        reported = False
        while not self._stop.is_set():
            try:
                frontend = self._nfc.ContactlessFrontend(self._device)
            except (OSError, ValueError) as exc:
                if not reported:
                    _log.warning("RFID reader %r not available (%s); retrying every %g s",
                                 self._device, exc, REOPEN_DELAY_S)
                    reported = True
                self._stop.wait(REOPEN_DELAY_S)
                continue
            if reported:
                _log.info("RFID reader %r available again", self._device)
                reported = False
            try:
                while not self._stop.is_set():
                    result = frontend.connect(rdwr={"on-connect": self._on_connect}, terminate=self._stop.is_set)
                    self._last_left_s = time.monotonic()
                    if result is False:
                        break  # the reader failed: reopen it
            except OSError as exc:
                _log.warning("RFID reader %r failed: %s", self._device, exc)
            finally:
                frontend.close()

    # ------------------------------------------------------------------ RfidReader

    async def tags(self) -> AsyncIterator[str]:
        if self._queue is None:
            self._loop = asyncio.get_running_loop()
            self._queue = asyncio.Queue()
            self._thread = threading.Thread(target=self._run, name=f"nfc {self._device}", daemon=True)
            self._thread.start()
        queue = self._queue
        while True:
            item = await queue.get()
            if isinstance(item, _Closed):
                return
            yield item

    async def aclose(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, JOIN_TIMEOUT_S)
            if thread.is_alive():
                _log.warning("RFID reader thread did not stop within %g s", JOIN_TIMEOUT_S)
        if self._queue is not None:
            self._queue.put_nowait(_Closed())


class NoRfidReader:
    """``RfidReader`` for a charger without a card reader: never yields, ends on ``aclose()``."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    async def tags(self) -> AsyncIterator[str]:
        await self._closed.wait()
        return
        yield  # an async generator that yields nothing

    async def aclose(self) -> None:
        self._closed.set()
