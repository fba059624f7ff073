"""Guard against a Python 3.11 asyncio quirk that would hang shutdown."""

from __future__ import annotations

import asyncio


def raise_if_cancelling() -> None:
    """Re-raise a cancellation that was swallowed.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that races with its result (fixed in 3.12);
    a loop that then goes on waiting would hang its TaskGroup's shutdown. Loops call this at the top of each
    turn, and after awaiting anything built on ``wait_for`` (the ocpp library, pymodbus).
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
