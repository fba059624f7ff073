"""Simulated connector screen: the ``Display`` port with real state, history and a stimulus.

It logs every screenful as a framed block (logger ``simulators.display``, INFO), so a developer running
the daemon on ``sim.toml`` sees what a customer would see. Optional ``columns``/``rows`` make it cut
content as a small panel does; by default nothing is cut.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from hal.drivers.log_display import framed, framed_blank
from hal.errors import HalError
from hal.protocols import DisplayMessage

_log = logging.getLogger("simulators.display")


class SimDisplay:
    """``Display`` of one simulated connector.

    ``history`` holds (monotonic time, message as shown) for every ``show()``; ``shown()`` is None while
    blank (at start and after ``aclose()``). ``set_failing(True)`` makes ``show()`` raise ``HalError`` as
    a broken panel would; ``show()`` after ``aclose()`` raises too (the shutdown state is blank).
    """

    def __init__(self, connector_id: int = 1, *, columns: int | None = None, rows: int | None = None) -> None:
        if columns is not None and columns < 1:
            raise ValueError(f"columns must be at least 1, got {columns}")
        if rows is not None and rows < 1:
            raise ValueError(f"rows must be at least 1, got {rows}")
        self.connector_id = connector_id
        self.columns = columns
        self.rows = rows
        self.history: list[tuple[float, DisplayMessage]] = []
        self._shown: DisplayMessage | None = None
        self._failing = False
        self._closed = False
        self._changed = asyncio.Event()

    @property
    def _prefix(self) -> str:
        return f"display {self.connector_id}"

    def _fit(self, message: DisplayMessage) -> DisplayMessage:
        """What the panel can show of ``message``: too many rows and too long lines are cut."""
        lines = message.lines if self.rows is None else message.lines[: self.rows]
        if self.columns is not None:
            lines = tuple(line[: self.columns] for line in lines)
        return message if lines == message.lines else dataclasses.replace(message, lines=lines)

    def _changed_now(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the port --------------------------------------------------------------------------------

    async def show(self, message: DisplayMessage) -> None:
        if self._closed:
            raise HalError(f"display {self.connector_id} is closed")
        if self._failing:
            raise HalError(f"display {self.connector_id} does not answer (simulated failure)")
        fitted = self._fit(message)
        self._shown = fitted
        self.history.append((time.monotonic(), fitted))
        _log.info("%s", framed(fitted, self._prefix))
        self._changed_now()

    def shown(self) -> DisplayMessage | None:
        return self._shown

    async def aclose(self) -> None:
        if self._shown is not None:
            _log.info("%s", framed_blank(self._prefix))
            self._shown = None
            self._changed_now()
        self._closed = True

    # --- stimulus and test helpers ---------------------------------------------------------------

    def set_failing(self, failing: bool) -> None:
        """Make the panel stop (True) or resume (False) answering; what is on it stays as it was."""
        self._failing = failing

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_for(self, predicate: Callable[[DisplayMessage], bool], timeout_s: float = 1.0) -> DisplayMessage:
        """The first message, from the one on the screen now onwards, that ``predicate`` accepts.

        Messages shown and replaced while the caller was not looking count too (they are in the
        history). Raises ``TimeoutError`` naming what was shown if none comes within ``timeout_s``.
        """
        index = len(self.history) - 1 if self._shown is not None else len(self.history)
        try:
            async with asyncio.timeout(timeout_s):
                while True:
                    while index < len(self.history):
                        message = self.history[index][1]
                        index += 1
                        if predicate(message):
                            return message
                    await self._changed.wait()
        except TimeoutError:
            seen = [message.kind.value for _, message in self.history]
            raise TimeoutError(
                f"display {self.connector_id}: no matching message within {timeout_s:g} s "
                f"(shown so far: {', '.join(seen) or 'nothing'})"
            ) from None


__all__ = ["SimDisplay"]
