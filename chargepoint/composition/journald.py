"""Logging to systemd's journal with its native protocol, pure Python (no libsystemd binding).

Under systemd the daemon's stderr is a stream to journald, which gives every line one priority and cuts records
at line breaks. The native protocol sends each record as one datagram of fields to journald's socket instead:
``MESSAGE``, ``PRIORITY`` (syslog levels), ``SYSLOG_IDENTIFIER``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC``,
``LOGGER``, the structured fields of ``chargepoint.logfields`` and, for an exception, ``TRACEBACK`` with the
whole traceback (``journalctl -o verbose`` shows it; ``MESSAGE`` stays one line).

The wire format (systemd's "Native Journal Protocol"): one field per line, ``NAME=value\\n``; a value with a line
break in it is written ``NAME\\n``, its length as a 64-bit little-endian integer, the value, ``\\n``.

When to use it, as systemd.exec(5) documents: ``$JOURNAL_STREAM`` holds the device and inode of the stream
journald reads; if they are those of our stderr, journald is listening. ``$CHARGEPOINT_JOURNAL_SOCKET`` names the
socket explicitly (tests bind one in a temporary directory). A record that cannot be sent (journald restarting,
its socket full: the socket never blocks) is written to stderr instead, with its priority as a ``<N>`` prefix
when stderr is journald's stream; the first such failure of a run of them says why, once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import struct
import sys
from collections.abc import Mapping
from typing import TextIO

from chargepoint.composition.log_format import (
    OneLineFormatter,
    exception_of,
    message_of,
    priority_of,
    report_logging_error,
)
from chargepoint.logfields import fields_of

DEFAULT_SOCKET = "/run/systemd/journal/socket"
SOCKET_ENV = "CHARGEPOINT_JOURNAL_SOCKET"
IDENTIFIER = "chargepoint"
# A value longer than this is cut when the whole record does not fit in one datagram (a huge message or traceback).
CUT_VALUE_BYTES = 32 * 1024
_WANTED_SNDBUF_BYTES = 8 * 1024 * 1024  # as systemd's own sd_journal_send asks; the kernel caps it at wmem_max


def stream_is_journal(stream_fd: int = 2, environ: Mapping[str, str] = os.environ) -> bool:
    """True when ``$JOURNAL_STREAM`` ("device:inode") names the file descriptor's stream, as systemd sets it for a
    service whose output goes to the journal."""
    device, _, inode = environ.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(stream_fd)
        return stat.st_dev == int(device) and stat.st_ino == int(inode)
    except (OSError, ValueError):
        return False


def journal_socket(stream_fd: int = 2, environ: Mapping[str, str] = os.environ) -> str | None:
    """The journal socket to log to, or None to log text to stderr."""
    explicit = environ.get(SOCKET_ENV)
    if explicit:
        return explicit
    if stream_is_journal(stream_fd, environ) and os.path.exists(DEFAULT_SOCKET):
        return DEFAULT_SOCKET
    return None


def encode(fields: list[tuple[str, str]]) -> bytes:
    """The native protocol's datagram for these (name, value) fields."""
    parts = []
    for name, value in fields:
        data = value.encode("utf-8", "replace")
        key = name.encode("ascii")
        if b"\n" in data:
            parts.append(key + b"\n" + struct.pack("<Q", len(data)) + data + b"\n")
        else:
            parts.append(key + b"=" + data + b"\n")
    return b"".join(parts)


def decode(datagram: bytes) -> list[tuple[str, str]]:
    """The (name, value) fields of a datagram: the inverse of ``encode``, as journald parses it."""
    fields = []
    at = 0
    while at < len(datagram):
        end = datagram.index(b"\n", at)
        line = datagram[at:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            at = end + 1
        else:
            name = line
            (size,) = struct.unpack_from("<Q", datagram, end + 1)
            start = end + 1 + 8
            value = datagram[start:start + size]
            if datagram[start + size:start + size + 1] != b"\n":
                raise ValueError(f"field {name!r}: its value is not followed by a newline")
            at = start + size + 1
        fields.append((name.decode("ascii"), value.decode("utf-8", "replace")))
    return fields


def record_fields(record: logging.LogRecord, identifier: str = IDENTIFIER) -> list[tuple[str, str]]:
    """The journal fields of one record; ``MESSAGE`` is one line."""
    message = message_of(record)
    exception = exception_of(record)
    if exception is not None:
        message += f" [{exception[0]}]"
    fields = [
        ("MESSAGE", message),
        ("PRIORITY", str(priority_of(record.levelno))),
        ("SYSLOG_IDENTIFIER", identifier),
        ("LOGGER", record.name),
        ("CODE_FILE", record.pathname),
        ("CODE_LINE", str(record.lineno)),
        ("CODE_FUNC", record.funcName),
        ("THREAD_NAME", record.threadName or ""),
    ]
    fields += [(name, value) for name, _, value in fields_of(record)]
    if exception is not None:
        fields.append(("TRACEBACK", exception[1]))
    return fields


class JournalHandler(logging.Handler):
    """Sends each record to journald's socket at ``path``; falls back to a line on ``fallback`` (stderr)."""

    def __init__(self, path: str, *, fallback: TextIO | None = None, fallback_is_journal: bool = False,
                 identifier: str = IDENTIFIER, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self.path = path
        self.identifier = identifier
        self._fallback = fallback
        self._fallback_format = OneLineFormatter(with_time=not fallback_is_journal, syslog_prefix=fallback_is_journal)
        self._failing = False
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.setblocking(False)  # a full journal socket must never hold up the event loop
        with contextlib.suppress(OSError):  # the kernel's default size still carries every ordinary record
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _WANTED_SNDBUF_BYTES)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields = record_fields(record, self.identifier)
            self._send(fields)
        except OSError as exc:
            self._write_fallback(record, exc)
        except Exception:  # a log record must never take the charger down
            self.handleError(record)
        else:
            self._failing = False

    def _send(self, fields: list[tuple[str, str]]) -> None:
        try:
            self._socket.sendto(encode(fields), self.path)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            cut = [(name, value if len(value) <= CUT_VALUE_BYTES else value[:CUT_VALUE_BYTES] + " [cut]")
                   for name, value in fields]
            self._socket.sendto(encode(cut), self.path)

    def _write_fallback(self, record: logging.LogRecord, exc: OSError) -> None:
        stream = self._fallback if self._fallback is not None else sys.stderr
        try:
            if not self._failing:
                self._failing = True
                notice = logging.makeLogRecord({
                    "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                    "msg": "journal socket %s: %s; logging to stderr until it takes records again",
                    "args": (self.path, exc.strerror or exc)})
                stream.write(self._fallback_format.format(notice) + "\n")
            stream.write(self._fallback_format.format(record) + "\n")
            stream.flush()
        except Exception:  # stderr gone too: nothing is left to tell
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """The logging module's own report is a multi-line traceback on stderr: one line instead."""
        report_logging_error(record, syslog_prefix=self._fallback_format.syslog_prefix)

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            super().close()
