"""A ``Display`` that writes each screenful to the log: for boards without a screen (rpi backend).

It keeps the port's contract so that the runtime drives it exactly as it will drive a real panel, and
the technician reads in the journal what a customer would have seen. ``framed()`` draws the block
that this driver and the simulated display both log.
"""

from __future__ import annotations

import logging

from hal.errors import HalError
from hal.protocols import DisplayMessage

_log = logging.getLogger(__name__)

# Narrowest frame drawn; wider when a line needs it (the log has no width to cut to).
MIN_FRAME_WIDTH = 20


def _printable(text: str) -> str:
    """Control characters (a CSMS text may carry any) become spaces: one log line stays one screen line."""
    return "".join(char if char.isprintable() else " " for char in text)


def framed(message: DisplayMessage, prefix: str) -> str:
    """The message as a small frame, every line starting with ``prefix`` (one log record, several lines)::

        display 1 ┌ price ─────────────
        display 1 │ Energy 0.39 EUR/kWh
        display 1 └────────────────────
    """
    title = message.kind.value if message.language == "en" else f"{message.kind.value} · {message.language}"
    body = [_printable(line) for line in message.lines]
    if message.qr_code_text is not None:
        body.append(f"[QR] {_printable(message.qr_code_text)}")
    width = max([MIN_FRAME_WIDTH, len(title) + 3, *(len(line) + 1 for line in body)])
    rows = [f"┌ {title} ".ljust(width + 1, "─")]
    rows += [f"│ {line}" for line in body]
    rows.append("└" + "─" * width)
    return "\n".join(f"{prefix} {row}" for row in rows)


def framed_blank(prefix: str) -> str:
    return f"{prefix} (blank)"


class LogDisplay:
    """``Display`` on the log, at INFO under this module's logger; nothing is cut.

    Blank at start and after ``aclose()``; ``show()`` after ``aclose()`` raises ``HalError`` (the
    shutdown state is blank and stays so).
    """

    def __init__(self, connector_id: int = 1) -> None:
        self.connector_id = connector_id
        self._shown: DisplayMessage | None = None
        self._closed = False

    @property
    def _prefix(self) -> str:
        return f"display {self.connector_id}"

    async def show(self, message: DisplayMessage) -> None:
        if self._closed:
            raise HalError(f"display {self.connector_id} is closed")
        self._shown = message
        _log.info("%s", framed(message, self._prefix))

    def shown(self) -> DisplayMessage | None:
        return self._shown

    async def aclose(self) -> None:
        if self._shown is not None:
            _log.info("%s", framed_blank(self._prefix))
        self._shown = None
        self._closed = True


__all__ = ["LogDisplay", "framed", "framed_blank"]
