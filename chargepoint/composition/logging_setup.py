"""Where the daemon's log goes: journald's native protocol under systemd, one text line per record otherwise.

``configure_early_logging`` runs first thing in ``chargepoint run`` (standard library only: the safe state comes
before pydantic is imported); ``configure_logging`` applies ``[logging]`` once the config validates;
``open_message_log`` starts the OCPP message log in the storage directory. Nothing here runs at import.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, TextIO

from chargepoint.composition.journald import JournalHandler, journal_socket, stream_is_journal
from chargepoint.composition.log_format import OneLineFormatter, TextHandler
from chargepoint.logbook import keep_recent_log
from chargepoint.message_log import OCPP_LOG_FILE, OCPP_MESSAGE_LOG
from chargepoint.redaction import RedactSecrets

if TYPE_CHECKING:
    from chargepoint.config.schema import Config

log = logging.getLogger(__name__)

# Libraries whose own logging is noise at our INFO: pymodbus logs every retry at INFO/ERROR (our meter loop reports
# what matters).
QUIET_LOGGERS = {"pymodbus": logging.CRITICAL}


# The handler ``configure_early_logging`` installed, replaced by a second call (tests).
_installed: list[logging.Handler] = []


def output_handler(environ: Mapping[str, str] = os.environ, stream: TextIO | None = None) -> logging.Handler:
    """The journal handler when journald listens (or ``$CHARGEPOINT_JOURNAL_SOCKET`` names a socket), else text
    lines on ``stream`` (stderr)."""
    stream = sys.stderr if stream is None else stream
    try:
        stream_fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        stream_fd = -1
    on_journal_stream = stream_is_journal(stream_fd, environ)
    path = journal_socket(stream_fd, environ)
    handler: logging.Handler
    if path is not None:
        handler = JournalHandler(path, fallback=stream, fallback_is_journal=on_journal_stream)
    else:
        # On journald's stream without its socket: no time (journald stamps it), the priority as "<N>".
        handler = TextHandler(OneLineFormatter(with_time=not on_journal_stream, syslog_prefix=on_journal_stream),
                              stream)
    return handler


def configure_early_logging(environ: Mapping[str, str] = os.environ, stream: TextIO | None = None) -> None:
    """Send every record (INFO and up until the config says otherwise) to the one output, one line each; warnings
    and uncaught exceptions of any thread go through the log too, so nothing prints a multi-line traceback."""
    root = logging.getLogger()
    while _installed:
        old = _installed.pop()
        root.removeHandler(old)
        old.close()
    _installed.append(output_handler(environ, stream))
    root.addHandler(_installed[0])
    root.setLevel(logging.INFO)
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def configure_logging(level: str) -> None:
    """``[logging] level`` for every logger, and the ring of recent lines for the diagnostics bundle (masked as the
    OCPP message log is)."""
    logging.getLogger().setLevel(getattr(logging, level))
    keep_recent_log([RedactSecrets()])


def open_message_log(config: Config) -> None:
    """Start the OCPP message log (``[logging] ocpp_log``) in the storage directory, which must exist."""
    settings = config.logging
    if settings.ocpp_log:
        OCPP_MESSAGE_LOG.open(config.storage.dir / OCPP_LOG_FILE, settings.ocpp_log_max_bytes,
                              settings.ocpp_log_backups)


def close_message_log() -> None:
    """Write what is queued and stop (before the process exits or re-executes)."""
    OCPP_MESSAGE_LOG.close()


def _log_uncaught(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, error, tb)
        return
    log.critical("uncaught exception", exc_info=(kind, error, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    name = args.thread.name if args.thread is not None else "?"
    log.critical("uncaught exception in thread %s", name, exc_info=(args.exc_type, args.exc_value, args.exc_traceback))
