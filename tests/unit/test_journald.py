"""The daemon's log output: journald's native protocol over a real Unix datagram socket, and one text line per record.

The journal side binds a datagram socket in the test's temporary directory and parses what arrives the way
journald does (``decode``): nothing is mocked between the handler and the socket.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargepoint.composition import logging_setup
from chargepoint.composition.journald import (
    DEFAULT_SOCKET,
    SOCKET_ENV,
    JournalHandler,
    decode,
    encode,
    journal_socket,
    stream_is_journal,
)
from chargepoint.composition.log_format import OneLineFormatter, TextHandler, fold, priority_of
from chargepoint.logfields import log_fields


class Journal:
    """A stand-in for journald: a datagram socket that parses what it receives."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(2)

    def datagram(self) -> bytes:
        return self.sock.recv(1 << 20)

    def entry(self) -> dict[str, str]:
        fields = decode(self.datagram())
        names = [name for name, _ in fields]
        assert len(names) == len(set(names)), names
        return dict(fields)

    def pending(self) -> int:
        self.sock.setblocking(False)
        count = 0
        try:
            while True:
                self.sock.recv(1 << 20)
                count += 1
        except BlockingIOError:
            return count
        finally:
            self.sock.settimeout(2)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "journal.sock")
    yield j
    j.close()


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("test.journald")
    log.propagate = False
    log.setLevel(1)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
        handler.close()
    log.propagate = True


def attach(log: logging.Logger, handler: logging.Handler) -> logging.Handler:
    log.addHandler(handler)
    return handler


# ----------------------------------------------------------------------------- the wire format


def test_a_value_with_a_newline_is_sent_length_prefixed_and_others_as_name_equals_value() -> None:
    data = encode([("MESSAGE", "one line"), ("TRACEBACK", "two\nlines"), ("EMPTY", "")])
    assert data == (b"MESSAGE=one line\n" + b"TRACEBACK\n" + struct.pack("<Q", 9) + b"two\nlines\n" + b"EMPTY=\n")
    assert decode(data) == [("MESSAGE", "one line"), ("TRACEBACK", "two\nlines"), ("EMPTY", "")]


def test_utf8_and_a_value_full_of_newlines_and_equals_signs_survive_the_round_trip() -> None:
    fields = [("MESSAGE", "Ladesäule =\n=\n\n"), ("X", "a=b"), ("Y", "\n")]
    assert decode(encode(fields)) == fields


# ----------------------------------------------------------------------------- records over a real socket


@pytest.mark.parametrize(("level", "priority"), [
    (logging.CRITICAL, "2"), (logging.ERROR, "3"), (logging.WARNING, "4"), (logging.INFO, "6"), (logging.DEBUG, "7"),
    (25, "6"), (5, "7"),
])
def test_each_level_arrives_at_its_syslog_priority(journal: Journal, logger: logging.Logger, level: int,
                                                   priority: str) -> None:
    attach(logger, JournalHandler(str(journal.path)))
    logger.log(level, "level %d", level)
    entry = journal.entry()
    assert entry["PRIORITY"] == priority
    assert entry["MESSAGE"] == f"level {level}"


def test_a_record_carries_its_identifier_logger_code_location_and_structured_fields(
        journal: Journal, logger: logging.Logger) -> None:
    attach(logger, JournalHandler(str(journal.path)))
    logger.info("connector %d: session started", 2,
                extra=log_fields(connector=2, session="5f0c", transaction=42, ocpp_message_id="m-1",
                                 ocpp_action="StartTransaction"))
    entry = journal.entry()
    assert entry["MESSAGE"] == "connector 2: session started"
    assert entry["SYSLOG_IDENTIFIER"] == "chargepoint"
    assert entry["LOGGER"] == "test.journald"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_FUNC"] == "test_a_record_carries_its_identifier_logger_code_location_and_structured_fields"
    assert int(entry["CODE_LINE"]) > 0
    assert entry["CHARGEPOINT_CONNECTOR"] == "2"
    assert entry["CHARGEPOINT_SESSION"] == "5f0c"
    assert entry["CHARGEPOINT_TRANSACTION"] == "42"
    assert entry["CHARGEPOINT_OCPP_MESSAGE_ID"] == "m-1"
    assert entry["CHARGEPOINT_OCPP_ACTION"] == "StartTransaction"
    assert all(name.replace("_", "").isalnum() and name.isupper() and not name.startswith("_") for name in entry)


def test_fields_not_given_are_not_sent(journal: Journal, logger: logging.Logger) -> None:
    attach(logger, JournalHandler(str(journal.path)))
    logger.warning("plain", extra=log_fields(connector=None))
    entry = journal.entry()
    assert not [name for name in entry if name.startswith("CHARGEPOINT_")]
    assert "TRACEBACK" not in entry


def test_an_exception_is_one_message_line_and_its_traceback_a_field_of_its_own(
        journal: Journal, logger: logging.Logger) -> None:
    attach(logger, JournalHandler(str(journal.path)))
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logger.exception("stopping after\nan unexpected failure")
    raw = journal.datagram()
    entry = dict(decode(raw))
    assert entry["MESSAGE"] == "stopping after | an unexpected failure [ValueError: bad | value]"
    assert entry["PRIORITY"] == "3"
    assert entry["TRACEBACK"].startswith("Traceback (most recent call last):\n")
    assert 'raise ValueError("bad\\nvalue")' in entry["TRACEBACK"]
    assert entry["TRACEBACK"].endswith("ValueError: bad\nvalue")
    assert b"\nTRACEBACK\n" in raw  # the length-prefixed form on the wire


def test_a_record_larger_than_a_datagram_is_cut_and_still_sent(journal: Journal, logger: logging.Logger) -> None:
    handler = JournalHandler(str(journal.path))
    handler._socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)  # a small buffer: EMSGSIZE at once
    attach(logger, handler)
    logger.info("%s", "x" * 400_000)
    entry = journal.entry()
    assert entry["MESSAGE"].endswith("[cut]") and len(entry["MESSAGE"]) < 40_000


def test_without_journald_each_record_goes_to_stderr_and_the_failure_is_said_once(
        tmp_path: Path, logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, JournalHandler(str(tmp_path / "no-such.sock"), fallback=stream))
    logger.info("first", extra=log_fields(connector=1))
    logger.error("second")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "journal socket" in lines[0] and "logging to stderr" in lines[0] and "WARNING" in lines[0]
    assert lines[1].endswith("INFO    test.journald: first connector=1")
    assert lines[2].endswith("ERROR   test.journald: second")


def test_the_fallback_on_journalds_own_stream_carries_the_priority_prefix(
        tmp_path: Path, logger: logging.Logger) -> None:
    stream = io.StringIO()
    attach(logger, JournalHandler(str(tmp_path / "no-such.sock"), fallback=stream, fallback_is_journal=True))
    logger.error("broken")
    assert stream.getvalue().splitlines()[1] == "<3>ERROR   test.journald: broken"


def test_records_go_back_to_the_journal_when_it_returns_and_a_new_failure_is_said_again(
        tmp_path: Path, logger: logging.Logger) -> None:
    path = tmp_path / "journal.sock"
    stream = io.StringIO()
    attach(logger, JournalHandler(str(path), fallback=stream))
    logger.info("while down")
    journal = Journal(path)  # journald (re)started
    try:
        logger.info("back")
        assert journal.entry()["MESSAGE"] == "back"
    finally:
        journal.close()
        path.unlink()
    logger.info("down again")
    notices = [line for line in stream.getvalue().splitlines() if "journal socket" in line]
    assert len(notices) == 2
    assert "test.journald: back" not in stream.getvalue()


def test_a_journal_that_does_not_read_never_blocks_the_logger(journal: Journal, logger: logging.Logger) -> None:
    """A full socket queue: the handler's socket never blocks; what does not fit goes to stderr."""
    stream = io.StringIO()
    attach(logger, JournalHandler(str(journal.path), fallback=stream))
    done = threading.Event()

    def flood() -> None:
        for n in range(5000):
            logger.info("record %d %s", n, "y" * 2000)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(20), "logging blocked on a journal that does not read"
    in_journal = journal.pending()
    on_stderr = [line for line in stream.getvalue().splitlines() if " record " in line]
    assert in_journal + len(on_stderr) == 5000
    assert on_stderr, "the socket never filled up: the test proves nothing"
    assert sum("journal socket" in line for line in stream.getvalue().splitlines()) >= 1


# ----------------------------------------------------------------------------- when to use the journal


def test_journal_stream_names_stderr_when_its_device_and_inode_match(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as file:
        stat = os.fstat(file.fileno())
        assert stream_is_journal(file.fileno(), {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
        assert not stream_is_journal(file.fileno(), {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"})
        assert not stream_is_journal(file.fileno(), {"JOURNAL_STREAM": "garbage"})
        assert not stream_is_journal(file.fileno(), {})


def test_the_socket_env_var_chooses_the_journal_and_a_terminal_gets_text(tmp_path: Path) -> None:
    assert journal_socket(2, {SOCKET_ENV: str(tmp_path / "j.sock")}) == str(tmp_path / "j.sock")
    assert journal_socket(2, {}) is None
    with (tmp_path / "stream").open("w") as file:
        stat = os.fstat(file.fileno())
        env = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        expected = DEFAULT_SOCKET if os.path.exists(DEFAULT_SOCKET) else None
        assert journal_socket(file.fileno(), env) == expected


def test_the_daemon_output_is_the_journal_under_systemd_and_text_otherwise(tmp_path: Path, journal: Journal) -> None:
    with (tmp_path / "stream").open("w") as stream:
        stat = os.fstat(stream.fileno())
        handler = logging_setup.output_handler({SOCKET_ENV: str(journal.path),
                                                "JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}, stream)
        assert isinstance(handler, JournalHandler) and handler._fallback_format.syslog_prefix
        handler.close()
        text = logging_setup.output_handler({}, stream)
        assert isinstance(text, TextHandler) and not text.syslog_prefix
        on_stream = logging_setup.output_handler({"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}, stream)
        if not os.path.exists(DEFAULT_SOCKET):  # journald's stream without its socket: text with priorities
            assert isinstance(on_stream, TextHandler) and on_stream.syslog_prefix
        on_stream.close()


# ----------------------------------------------------------------------------- one text line per record


def record(msg: str, *args: object, level: int = logging.INFO, extra: dict[str, object] | None = None,
           **attributes: object) -> logging.LogRecord:
    made = logging.makeLogRecord({"name": "chargepoint.x", "levelno": level, "levelname": logging.getLevelName(level),
                                  "msg": msg, "args": args or None, **(extra or {}), **attributes})
    made.created = 0.0
    return made


def test_a_text_line_has_time_level_logger_message_and_fields() -> None:
    line = OneLineFormatter().format(record("connector %d: Charging", 1, extra=log_fields(connector=1, session="ab c")))
    assert line.endswith(' INFO    chargepoint.x: connector 1: Charging connector=1 session="ab c"')
    assert line[:4].isdigit()


def test_newlines_in_a_message_and_its_traceback_stay_on_one_line() -> None:
    try:
        raise RuntimeError("deep\ndown")
    except RuntimeError:
        made = record("dump:\n{\n  \"a\": 1\n}", level=logging.ERROR, exc_info=sys.exc_info())
    line = OneLineFormatter(with_time=False).format(made)
    assert "\n" not in line and "\r" not in line
    assert line.startswith('ERROR   chargepoint.x: dump: | { | "a": 1 | } [RuntimeError: deep | down] | Traceback')
    assert "raise RuntimeError" in line


def test_a_message_with_wrong_arguments_is_one_line_saying_so() -> None:
    line = OneLineFormatter(with_time=False).format(record("%d items", "not a number"))
    assert line.startswith("INFO    chargepoint.x: unformattable log message '%d items'")
    assert "\n" not in line


def test_stack_info_is_folded_too() -> None:
    made = record("where", stack_info="Stack (most recent call last):\n  File \"a.py\", line 1\n    f()")
    line = OneLineFormatter(with_time=False, syslog_prefix=True).format(made)
    assert line.startswith("<6>INFO    chargepoint.x: where [stack] | Stack (most recent call last): | File")


@pytest.mark.parametrize(("text", "folded"), [("a\nb", "a | b"), ("a\r\nb\rc", "a | b | c"), ("x  \n\n  y\n", "x | y")])
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def test_priorities_follow_syslog() -> None:
    assert [priority_of(level) for level in (50, 40, 30, 20, 10)] == [2, 3, 4, 6, 7]


# ----------------------------------------------------------------------------- the daemon's set-up


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (sys.excepthook, threading.excepthook)
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks
    logging.captureWarnings(False)
    logging_setup._installed.clear()


@pytest.mark.usefixtures("restored_logging")
def test_early_logging_installs_one_output_and_an_uncaught_thread_exception_is_one_record(
        journal: Journal) -> None:
    logging_setup.configure_early_logging({SOCKET_ENV: str(journal.path)})
    logging_setup.configure_early_logging({SOCKET_ENV: str(journal.path)})  # again: replaced, not doubled
    assert sum(isinstance(h, JournalHandler) for h in logging.getLogger().handlers) == 1

    def fail() -> None:
        raise OSError("thread died")

    thread = threading.Thread(target=fail, name="worker")
    thread.start()
    thread.join()
    entry = journal.entry()
    assert entry["MESSAGE"] == "uncaught exception in thread worker [OSError: thread died]"
    assert entry["PRIORITY"] == "2"
    assert "TRACEBACK" in entry
    import warnings

    warnings.warn("old API", DeprecationWarning, stacklevel=1)
    entry = journal.entry()
    assert entry["LOGGER"] == "py.warnings" and "\n" not in entry["MESSAGE"]
