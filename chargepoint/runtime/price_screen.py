"""Each connector's screen as the pricing service drives it: messages shown in order, never two at once; a
receipt held for a while before the idle price may replace it; a short message (card accepted or refused) ends
with the next one or after its timeout; a broken screen logged, never fatal."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chargepoint.runtime.connector import ConnectorRuntime
from hal.errors import HalError
from hal.protocols import DisplayKind, DisplayMessage

log = logging.getLogger(__name__)


class PriceScreen:
    def __init__(self, receipt_display_s: Callable[[], float]) -> None:
        self._receipt_display_s = receipt_display_s
        self._tasks: dict[int, asyncio.Task[None]] = {}
        # A receipt stays up for a while before the idle price replaces it.
        self._receipt_until_s: dict[int, float] = {}
        self._idle_handles: dict[int, asyncio.TimerHandle] = {}
        self._message_handles: dict[int, asyncio.TimerHandle] = {}
        # Called when a message shown with a timeout has been up that long (and nothing replaced it).
        self.message_over: Callable[[ConnectorRuntime], None] | None = None

    def show(self, c: ConnectorRuntime, message: DisplayMessage, timeout_s: float | None = None) -> None:
        """Show ``message`` after what is queued; with ``timeout_s`` it ends then (``message_over``)."""
        display = c.hw.display
        for handles in (self._idle_handles, self._message_handles):
            handle = handles.pop(c.connector_id, None)
            if handle is not None:
                handle.cancel()
        if timeout_s is not None and self.message_over is not None:
            over = self.message_over

            def expire() -> None:
                self._message_handles.pop(c.connector_id, None)
                over(c)

            self._message_handles[c.connector_id] = asyncio.get_running_loop().call_later(timeout_s, expire)
        if message.kind is DisplayKind.receipt:
            self._receipt_until_s[c.connector_id] = time.monotonic() + self._receipt_display_s()
        else:
            self._receipt_until_s.pop(c.connector_id, None)
        previous = self._tasks.get(c.connector_id)

        async def show() -> None:
            if previous is not None and not previous.done():
                await asyncio.wait([previous])
            try:
                await display.show(message)
            except HalError as exc:
                log.warning("connector %d: display failed: %s", c.connector_id, exc)

        self._tasks[c.connector_id] = asyncio.get_running_loop().create_task(show())

    def defer_idle(self, c: ConnectorRuntime, show_idle: Callable[[ConnectorRuntime], None]) -> bool:
        """True if a receipt is still up: ``show_idle`` is then called once it has been up long enough."""
        wait_s = self._receipt_until_s.get(c.connector_id, 0.0) - time.monotonic()
        if wait_s <= 0:
            return False

        def again() -> None:
            self._idle_handles.pop(c.connector_id, None)
            self._receipt_until_s.pop(c.connector_id, None)
            show_idle(c)

        self._idle_handles[c.connector_id] = asyncio.get_running_loop().call_later(wait_s, again)
        return True
