"""The OCPP message log: every frame in and out, masked, in ``<storage dir>/ocpp.log``, rotated by size.

One line per frame: ``<UTC time> <in|out> <frame>``, e.g.
``2025-03-01T10:00:00.123Z out [2,"17","Heartbeat",{}]``. Frames are masked by the OCPP link before they get here
(``chargepoint.redaction``, as for the recent frames of the diagnostics bundle); line breaks in a frame (JSON
whitespace) become spaces, and a frame longer than ``FRAME_MAX_CHARS`` is cut with a note of how much is missing.
When the file would grow past its size, it becomes ``ocpp.log.1`` (``.1`` becomes ``.2`` ...) and the oldest goes:
at most ``1 + backups`` files of about ``max_bytes`` each. ``chargepoint logs ocpp`` reads them.

Writing never holds up or fails the charger: ``write`` only puts the line on a bounded queue (the event loop
never waits for an SD card), a thread of its own writes it; a full queue (``QUEUE_MAX`` lines or
``QUEUE_MAX_CHARS``) drops frames (counted, the count written in the file and, at most once a minute, in the
log), and a file that cannot be written is reported once in the log, not once per frame, and
tried again at the next frame. Standard library only: the OCPP link writes here, the composition root opens it,
the CLI reads the files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

OCPP_LOG_FILE = "ocpp.log"
FRAME_MAX_CHARS = 64 * 1024
QUEUE_MAX = 10_000  # lines waiting for the writer
QUEUE_MAX_CHARS = 4 * 1024 * 1024  # and their size: a flood of large frames must not fill the charger's memory
DROPS_REPORTED_EVERY_S = 60.0
IN = "in"
OUT = "out"
_STOP = None


def rotated_paths(path: Path, backups: int) -> list[Path]:
    """The files of a log, newest first: ``ocpp.log``, ``ocpp.log.1`` ... ``ocpp.log.<backups>``."""
    return [path] + [path.with_name(f"{path.name}.{n}") for n in range(1, backups + 1)]


def format_line(direction: str, frame: str, at: datetime | None = None, missing_chars: int = 0) -> str:
    """One line of the log (without its newline); ``missing_chars``: how much of the frame was cut off already."""
    at = datetime.now(UTC) if at is None else at.astimezone(UTC)
    missing = missing_chars + max(0, len(frame) - FRAME_MAX_CHARS)
    frame = frame[:FRAME_MAX_CHARS]
    if missing:
        frame = f"{frame} [cut: {missing} more characters]"
    text = frame.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    return f"{at.strftime('%Y-%m-%dT%H:%M:%S')}.{at.microsecond // 1000:03d}Z {direction} {text}"


class MessageLog:
    """The writer. Closed (``write`` does nothing) until ``open``; ``close`` writes what is queued and stops."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.max_bytes = 0
        self.backups = 0
        self._queue: queue.Queue[str | None] = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._file: BinaryIO | None = None
        self._size = 0
        self._dropped = 0
        self._queued_chars = 0
        self._lock = threading.Lock()  # the two counters
        self._broken = False
        self._unreported = 0  # frames dropped and not yet said in the log
        self._reported_s = -float("inf")

    @property
    def is_open(self) -> bool:
        return self._thread is not None

    def open(self, path: Path, max_bytes: int, backups: int) -> None:
        """Start writing to ``path`` (created when the first frame comes; kept, and added to, if it exists)."""
        self.close()
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._queue = queue.Queue(QUEUE_MAX)
        self._queued_chars = 0
        self._broken = False
        self._thread = threading.Thread(target=self._run, name="ocpp-message-log", daemon=True)
        self._thread.start()

    def write(self, direction: str, frame: str, missing_chars: int = 0) -> None:
        """Queue one frame (``IN`` or ``OUT``; ``missing_chars``: how much of it was cut off already); never blocks,
        never raises."""
        if self._thread is None:
            return
        line = format_line(direction, frame, missing_chars=missing_chars)
        with self._lock:
            if self._queued_chars + len(line) > QUEUE_MAX_CHARS:
                self._dropped += 1
                return
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                self._dropped += 1
                return
            self._queued_chars += len(line)

    def close(self, timeout_s: float = 5.0) -> None:
        """Write what is queued, close the file and stop the thread (waiting at most ``timeout_s``)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        with contextlib.suppress(queue.Full):
            self._queue.put(_STOP, timeout=timeout_s)
        thread.join(timeout_s)

    # ----------------------------------------------------------------- the writer thread

    def _run(self) -> None:
        try:
            while True:
                line = self._queue.get()
                lines = [] if line is _STOP else [line]
                stopping = line is _STOP
                while not stopping and len(lines) < 1000:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stopping = True
                    else:
                        lines.append(more)
                self._write_lines(lines)
                if stopping:
                    return
        finally:
            self._close_file()
            if self._unreported:
                log.warning("OCPP message log: %d frame(s) not logged, the writer fell behind", self._unreported)
                self._unreported = 0

    def _write_lines(self, lines: list[str]) -> None:
        with self._lock:
            dropped, self._dropped = self._dropped, 0
            self._queued_chars -= sum(len(line) for line in lines)
        if dropped:
            lines.insert(0, format_line("--", f"[{dropped} frame(s) not logged here: the writer fell behind]"))
            self._unreported += dropped
        if self._unreported and time.monotonic() - self._reported_s >= DROPS_REPORTED_EVERY_S:
            log.warning("OCPP message log: %d frame(s) not logged, the writer fell behind", self._unreported)
            self._unreported, self._reported_s = 0, time.monotonic()
        if not lines:
            return
        try:
            for line in lines:
                data = (line + "\n").encode("utf-8", "replace")
                file = self._file_for(len(data))
                file.write(data)
                self._size += len(data)
            if self._file is not None:
                self._file.flush()
        except OSError as exc:
            self._close_file()
            if not self._broken:
                self._broken = True
                log.error("OCPP message log %s cannot be written (%s): frames are not logged until it can",
                          self.path, exc.strerror or exc)
            return
        if self._broken:
            self._broken = False
            log.info("OCPP message log %s is written again", self.path)

    def _file_for(self, size: int) -> BinaryIO:
        """The open file, rotated first if ``size`` more bytes would take it past ``max_bytes``."""
        if self._file is not None and self._size > 0 and self._size + size > self.max_bytes:
            self._rotate()
        if self._file is None:
            assert self.path is not None
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
            self._file = os.fdopen(fd, "ab")
            self._size = os.fstat(fd).st_size
            if self._size > 0 and self._size + size > self.max_bytes:
                self._rotate()
                return self._file_for(size)
        return self._file

    def _rotate(self) -> None:
        assert self.path is not None
        self._close_file()
        paths = rotated_paths(self.path, self.backups)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for older, newer in zip(reversed(paths[1:]), reversed(paths[:-1]), strict=True):
            if newer.exists():
                os.replace(newer, older)

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


# The charger's one message log, opened by the daemon (``chargepoint run``); closed in tests that do not ask for it.
OCPP_MESSAGE_LOG = MessageLog()
