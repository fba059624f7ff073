"""GPIO lines through the Linux GPIO character device (libgpiod v2 Python bindings, PyPI ``gpiod>=2``).

The character device works the same on Pi 3/4/5/CM4 (RPi.GPIO and pigpio do not work on the Pi 5).
``gpiod`` is imported when a line is requested, never when this module is imported, so CI and laptops
without it can import every driver; a missing package becomes ``BackendUnavailable``.

Fail-safe semantics: a requested line belongs to this process. When the request is released - by
``close()``, or by the kernel when the process exits or crashes - the line reverts to the chip's
default, on the Pi an input (high impedance). An output whose released state must be "off" (the
contactor relay, the lock motor) therefore needs a hardware pull-down on the board: released means
off, whatever the software did last.

Vendor errors (``OSError`` from the ioctl, ``ValueError`` for a bad offset, gpiod's own exceptions)
become ``HalError`` naming the chip and the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar

from hal.errors import BackendUnavailable, HalError

_log = logging.getLogger(__name__)

CONSUMER = "chargepoint"
INSTALL_HINT = "pip install 'chargepoint[rpi]'"

Bias = Literal["as-is", "pull-up", "pull-down", "disabled"]

T = TypeVar("T")


def chip_path(chip: int) -> str:
    """The character device of gpiochip number ``chip``."""
    if chip < 0:
        raise ValueError(f"gpiochip number must not be negative, got {chip}")
    return f"/dev/gpiochip{chip}"


def import_gpiod() -> Any:
    """The ``gpiod`` module, or ``BackendUnavailable`` naming the package to install."""
    try:
        import gpiod
    except ImportError as exc:
        raise BackendUnavailable(
            f"the GPIO drivers need the 'gpiod' package (libgpiod v2 bindings, gpiod>=2): {INSTALL_HINT} ({exc})"
        ) from exc
    if not hasattr(gpiod, "request_lines"):
        version = getattr(gpiod, "__version__", "unknown")
        raise BackendUnavailable(
            f"the installed 'gpiod' package ({version}) is the v1 API; the GPIO drivers need gpiod>=2: {INSTALL_HINT}"
        )
    return gpiod


def _vendor_errors(gpiod: Any) -> tuple[type[Exception], ...]:
    errors: list[type[Exception]] = [OSError, ValueError]
    for name in ("ChipClosedError", "RequestReleasedError"):
        error = getattr(gpiod, name, None)
        if isinstance(error, type) and issubclass(error, Exception):
            errors.append(error)
    return tuple(errors)


class _Line:
    """What input and output lines share: one request of one line, converted errors, release."""

    def __init__(self, chip_path: str, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"GPIO line offset must not be negative, got {offset}")
        self.chip_path = chip_path
        self.offset = offset
        self._gpiod: Any = import_gpiod()
        self._errors = _vendor_errors(self._gpiod)
        self._request: Any = None  # a gpiod.LineRequest

    @property
    def name(self) -> str:
        return f"GPIO {self.chip_path} line {self.offset}"

    @contextlib.contextmanager
    def _converted(self, action: str) -> Iterator[None]:
        try:
            yield
        except HalError:
            raise
        except self._errors as exc:
            raise HalError(f"{self.name}: cannot {action}: {exc}") from exc

    def _request_line(self, settings: object) -> None:
        with self._converted("request the line"):
            self._request = self._gpiod.request_lines(
                self.chip_path, consumer=CONSUMER, config={self.offset: settings}
            )

    def _live(self) -> Any:
        if self._request is None:
            raise HalError(f"{self.name}: the line has been released")
        return self._request

    def _read_active(self) -> bool:
        request = self._live()
        with self._converted("read the line"):
            value = request.get_value(self.offset)
        return bool(value == self._gpiod.line.Value.ACTIVE)

    @property
    def released(self) -> bool:
        return self._request is None

    def close(self) -> None:
        """Release the line: it reverts to the kernel default (input, high impedance). Idempotent."""
        request, self._request = self._request, None
        if request is not None:
            with self._converted("release the line"):
                request.release()


class OutputLine(_Line):
    """One output line. ``set(True)`` drives it active (high, or low when ``active_high`` is False).

    Released (``close()``, process exit, crash) the line floats: the board must pull a safety-relevant
    output (contactor relay, lock motor) to its off level, so that release == off.
    """

    def __init__(self, chip_path: str, offset: int, active_high: bool = True, initial: bool = False) -> None:
        super().__init__(chip_path, offset)
        Value = self._gpiod.line.Value
        settings = self._gpiod.LineSettings(
            direction=self._gpiod.line.Direction.OUTPUT,
            active_low=not active_high,
            output_value=Value.ACTIVE if initial else Value.INACTIVE,
        )
        self._request_line(settings)
        self._value = initial

    def set(self, value: bool) -> None:
        """Drive the line; it has changed when this returns."""
        request = self._live()
        Value = self._gpiod.line.Value
        with self._converted("set the line"):
            request.set_value(self.offset, Value.ACTIVE if value else Value.INACTIVE)
        self._value = value

    def value(self) -> bool:
        """The value last driven (True = active)."""
        self._live()
        return self._value


class InputLine(_Line):
    """One input line with edge detection on both edges and the kernel's debounce.

    ``value()`` and the edges are logical: with ``active_low`` a low line reads True and its falling
    edge is reported as a rising (activating) one, as the kernel does.
    """

    def __init__(
        self,
        chip_path: str,
        offset: int,
        active_low: bool = False,
        debounce_s: float = 0.01,
        bias: Bias = "as-is",
    ) -> None:
        if debounce_s < 0:
            raise ValueError(f"debounce_s must not be negative, got {debounce_s}")
        super().__init__(chip_path, offset)
        line = self._gpiod.line
        biases = {
            "as-is": line.Bias.AS_IS,
            "pull-up": line.Bias.PULL_UP,
            "pull-down": line.Bias.PULL_DOWN,
            "disabled": line.Bias.DISABLED,
        }
        settings = self._gpiod.LineSettings(
            direction=line.Direction.INPUT,
            edge_detection=line.Edge.BOTH,
            bias=biases[bias],
            active_low=active_low,
            debounce_period=timedelta(seconds=debounce_s),
        )
        self._request_line(settings)
        self._watching = False

    def value(self) -> bool:
        """The line's current logical value (True = active), read from the kernel."""
        return self._read_active()

    async def edges(self) -> AsyncIterator[bool]:
        """Yields the new logical value on every (debounced) edge: True on activation, False on release.

        Edge events queue in the kernel from the moment the line is requested, so none is lost
        between construction and the first iteration. One iterator at a time per line.
        """
        request = self._live()
        if self._watching:
            raise HalError(f"{self.name}: its edges are already being watched")
        rising = self._gpiod.EdgeEvent.Type.RISING_EDGE
        with self._converted("watch the line"):
            fd: int = request.fd
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        self._watching = True
        loop.add_reader(fd, readable.set)
        try:
            while True:
                await readable.wait()
                readable.clear()
                request = self._live()
                with self._converted("read edge events"):
                    if not request.wait_edge_events(0):
                        continue  # spurious wake-up: reading now would block the loop
                    events = request.read_edge_events()
                for event in events:
                    yield bool(event.event_type == rising)
        finally:
            loop.remove_reader(fd)
            self._watching = False


class _Closed:
    """End of stream."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class ValueWatch(Generic[T]):
    """The latest value of an input, with any number of async subscribers.

    One producer coroutine (a line's edge stream, an ADC poll) feeds it through ``publish``. The
    producer starts when the first subscriber begins iterating (it needs a running loop, and devices
    are built before it runs) and is cancelled by ``aclose()``: the device that owns the watch owns
    the task. Each subscriber sees the current value first (once there is one), then every change
    that ``changed(old, new)`` accepts. A failing producer is not swallowed: every subscriber raises
    its error, so the runtime's supervisor hears about a dead input.
    """

    def __init__(
        self,
        initial: T | None,
        producer: Callable[[Callable[[T], bool]], Awaitable[None]],
        *,
        name: str,
        changed: Callable[[T, T], bool] | None = None,
    ) -> None:
        self._value = initial
        self._producer = producer
        self._name = name
        self._changed: Callable[[T, T], bool] = changed if changed is not None else (lambda old, new: old != new)
        self._queues: set[asyncio.Queue[T | _Closed | _Failed]] = set()
        self._task: asyncio.Task[None] | None = None
        self._end: _Closed | _Failed | None = None

    @property
    def value(self) -> T | None:
        return self._value

    def publish(self, value: T) -> bool:
        """Store ``value`` and wake subscribers if it changed; returns whether it did."""
        if self._value is not None and not self._changed(self._value, value):
            return False
        self._value = value
        for queue in self._queues:
            queue.put_nowait(value)
        return True

    def _finish(self, end: _Closed | _Failed) -> None:
        if self._end is None:
            self._end = end
            for queue in self._queues:
                queue.put_nowait(end)

    async def _run(self) -> None:
        try:
            await self._producer(self.publish)
        except asyncio.CancelledError:
            self._finish(_Closed())
            raise
        except Exception as exc:  # forwarded to every subscriber, which raises it: never swallowed
            _log.error("%s: input watch failed: %r", self._name, exc)
            self._finish(_Failed(exc))
        else:
            self._finish(_Closed())

    def _start(self) -> None:
        if self._task is None and self._end is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"watch {self._name}")

    async def subscribe(self) -> AsyncIterator[T]:
        queue: asyncio.Queue[T | _Closed | _Failed] = asyncio.Queue()
        if self._end is not None:
            queue.put_nowait(self._end)
        elif self._value is not None:
            queue.put_nowait(self._value)
        self._queues.add(queue)
        self._start()
        try:
            while True:
                item = await queue.get()
                if isinstance(item, _Closed):
                    return
                if isinstance(item, _Failed):
                    raise HalError(f"{self._name}: input watch failed: {item.error}") from item.error
                yield item
        finally:
            self._queues.discard(queue)

    async def aclose(self) -> None:
        """Stop the producer and end every subscription."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._finish(_Closed())
