"""One line per log record: the daemon's text format and what the journal output shares with it.

A record never spans lines, whatever it carries: newlines in a message are folded into `` | ``, an exception is
summed up after the message (``[ValueError: boom]``) and its traceback folded onto the same line (the journal
output keeps it whole in a field of its own instead). A message that cannot be formatted (wrong arguments) is
shown as such, on one line, instead of the logging module's multi-line "--- Logging error ---".

Text: ``<time> <LEVEL> <logger>: <message> [<exception>] key=value ... | <traceback, folded>``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import traceback
from typing import TextIO

from chargepoint.logfields import fields_of

FOLD = " | "
_LINE_BREAKS = re.compile(r"\s*(?:\r\n|\r|\n)\s*")
_PLAIN_VALUE = re.compile(r"[\w.:@/+*#-]+")

# syslog(3) priorities, as journald and the "<N>" prefix of its stream protocol take them.
PRIORITY_CRITICAL = 2
PRIORITY_ERROR = 3
PRIORITY_WARNING = 4
PRIORITY_INFO = 6
PRIORITY_DEBUG = 7


def priority_of(levelno: int) -> int:
    """The syslog priority of a logging level (a level between two takes the lower one's: 25 is INFO)."""
    if levelno >= logging.CRITICAL:
        return PRIORITY_CRITICAL
    if levelno >= logging.ERROR:
        return PRIORITY_ERROR
    if levelno >= logging.WARNING:
        return PRIORITY_WARNING
    if levelno >= logging.INFO:
        return PRIORITY_INFO
    return PRIORITY_DEBUG


def fold(text: str) -> str:
    """``text`` on one line: each line break (with the blanks around it) becomes `` | ``."""
    return _LINE_BREAKS.sub(FOLD, text.strip())


def message_of(record: logging.LogRecord) -> str:
    """The record's message on one line; a message whose arguments do not fit says so instead of raising."""
    try:
        message = record.getMessage()
    except Exception as exc:  # a log call with wrong arguments must not lose the record
        message = f"unformattable log message {record.msg!r} with arguments {record.args!r} ({exc!r})"
    return fold(message)


def exception_of(record: logging.LogRecord) -> tuple[str, str] | None:
    """(``Type: message`` on one line, the whole traceback as Python prints it) of the record's exception or
    stack, or None."""
    summary = ""
    lines: list[str] = []
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        summary = fold("".join(traceback.format_exception_only(type(exc), exc)))
        lines.append("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    elif record.exc_text:
        summary = fold(record.exc_text.strip().splitlines()[-1])
        lines.append(record.exc_text)
    if record.stack_info:
        summary = summary or "stack"
        lines.append(record.stack_info)
    if not lines:
        return None
    return summary, "\n".join(line.rstrip("\n") for line in lines)


def plain_value(value: str) -> str:
    """A field's value as ``key=value`` shows it: bare when it is one word, JSON-quoted otherwise."""
    return value if _PLAIN_VALUE.fullmatch(value) else json.dumps(value, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """The text format: one line per record, fields as ``key=value``.

    ``with_time=False`` and ``syslog_prefix=True`` suit a stream that journald reads (it stamps the time itself
    and takes the ``<N>`` prefix as the priority)."""

    def __init__(self, *, with_time: bool = True, syslog_prefix: bool = False) -> None:
        super().__init__()
        self.with_time = with_time
        self.syslog_prefix = syslog_prefix

    def format(self, record: logging.LogRecord) -> str:
        message = message_of(record)
        exception = exception_of(record)
        if exception is not None:
            message += f" [{exception[0]}]"
        for _, key, value in fields_of(record):
            message += f" {key}={plain_value(value)}"
        if exception is not None:
            message += FOLD + fold(exception[1])
        line = f"{record.levelname:<7} {record.name}: {message}"
        if self.with_time:
            line = f"{self.formatTime(record)} {line}"
        if self.syslog_prefix:
            line = f"<{priority_of(record.levelno)}>{line}"
        return line


class TextHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler (stderr by default) whose own failures are reported on one line, too."""

    def __init__(self, formatter: OneLineFormatter, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.setFormatter(formatter)
        self.syslog_prefix = formatter.syslog_prefix

    def handleError(self, record: logging.LogRecord) -> None:
        report_logging_error(record, syslog_prefix=self.syslog_prefix)


def report_logging_error(record: logging.LogRecord, *, syslog_prefix: bool = False) -> None:
    """What ``logging.Handler.handleError`` says (a multi-line traceback) in one line on stderr."""
    if not logging.raiseExceptions:
        return
    kind, error = sys.exc_info()[:2]
    prefix = f"<{PRIORITY_ERROR}>" if syslog_prefix else ""
    with contextlib.suppress(Exception):  # stderr gone too: nothing is left to tell
        sys.stderr.write(f"{prefix}logging failed for a record of {record.name} "
                         f"({getattr(kind, '__name__', kind)}: {fold(str(error))})\n")
