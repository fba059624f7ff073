"""The OCPP message log: one line per frame, masked, rotated by size into a bounded number of real files; a disk
that fails is logged once, never raised to the charger."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from chargepoint import message_log
from chargepoint.message_log import IN, OCPP_MESSAGE_LOG, OUT, MessageLog, format_line, rotated_paths
from chargepoint.ocpp.v16 import link

LINE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (in|out|--) \S.*")


@pytest.fixture
def msglog() -> Iterator[MessageLog]:
    log = MessageLog()
    yield log
    log.close()


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_each_frame_is_one_line_with_time_and_direction(tmp_path: Path, msglog: MessageLog) -> None:
    path = tmp_path / "ocpp.log"
    msglog.open(path, 1 << 20, 2)
    msglog.write(OUT, '[2,"1","Heartbeat",{}]')
    msglog.write(IN, '[3,"1",\n  {"currentTime": "2025-01-01T00:00:00Z"}\r\n]')
    msglog.close()
    lines = lines_of(path)
    assert len(lines) == 2 and all(LINE.fullmatch(line) for line in lines), lines
    assert lines[0].endswith(' out [2,"1","Heartbeat",{}]')
    assert lines[1].endswith(' in [3,"1",   {"currentTime": "2025-01-01T00:00:00Z"} ]')
    assert path.stat().st_mode & 0o007 == 0  # card ids are in it: not for every user


def test_a_frame_beyond_the_limit_is_cut_and_says_how_much_is_missing() -> None:
    line = format_line(OUT, "x" * (message_log.FRAME_MAX_CHARS + 10))
    assert line.endswith("x [cut: 10 more characters]")
    assert format_line(IN, "abc", missing_chars=10).endswith(" in abc [cut: 10 more characters]")


def test_the_log_rotates_by_size_and_keeps_a_bounded_number_of_files(tmp_path: Path, msglog: MessageLog) -> None:
    path = tmp_path / "ocpp.log"
    msglog.open(path, 2000, 3)
    for n in range(400):
        msglog.write(OUT, f'[2,"{n:04d}","Heartbeat",{{}}]')
    msglog.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["ocpp.log", "ocpp.log.1", "ocpp.log.2", "ocpp.log.3"]
    for p in rotated_paths(path, 3):
        assert p.stat().st_size <= 2000
        assert all(LINE.fullmatch(line) for line in lines_of(p))
    # Newest last in ocpp.log, each older file holds the frames just before, none lost between them.
    ids = [int(line.split('"')[1]) for p in reversed(rotated_paths(path, 3)) for line in lines_of(p)]
    assert ids == list(range(ids[0], 400))
    assert ids[0] > 0  # the oldest went


def test_no_backups_keeps_only_the_current_file(tmp_path: Path, msglog: MessageLog) -> None:
    path = tmp_path / "ocpp.log"
    msglog.open(path, 1000, 0)
    for n in range(100):
        msglog.write(IN, f"frame {n}")
    msglog.close()
    assert [p.name for p in tmp_path.iterdir()] == ["ocpp.log"]
    assert path.stat().st_size <= 1000
    assert lines_of(path)[-1].endswith(" in frame 99")


def test_a_restart_appends_to_the_log_and_rotates_a_full_one_first(tmp_path: Path, msglog: MessageLog) -> None:
    path = tmp_path / "ocpp.log"
    path.write_text("old line\n")
    msglog.open(path, 1 << 20, 1)
    msglog.write(OUT, "new")
    msglog.close()
    assert lines_of(path)[0] == "old line" and lines_of(path)[1].endswith(" out new")
    path.write_text("y" * 5000 + "\n")
    msglog.open(path, 4000, 1)
    msglog.write(OUT, "after restart")
    msglog.close()
    assert lines_of(path)[0].endswith(" out after restart")
    assert lines_of(tmp_path / "ocpp.log.1") == ["y" * 5000]


def test_a_log_that_cannot_be_written_is_reported_once_and_written_again_when_it_can(
        tmp_path: Path, msglog: MessageLog, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "missing"
    msglog.open(directory / "ocpp.log", 1 << 20, 1)
    with caplog.at_level(logging.INFO, logger="chargepoint.message_log"):
        for n in range(50):
            msglog.write(OUT, f"lost {n}")
        msglog.close()  # written (or failed) by now
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in caplog.records]
        assert "cannot be written" in errors[0].getMessage() and "frames are not logged" in errors[0].getMessage()
        directory.mkdir()
        msglog.open(directory / "ocpp.log", 1 << 20, 1)
        msglog.write(OUT, "kept")
        msglog.close()
    assert lines_of(directory / "ocpp.log")[0].endswith(" out kept")


def test_a_writer_that_falls_behind_drops_frames_and_says_how_many(
        tmp_path: Path, msglog: MessageLog, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(message_log, "QUEUE_MAX", 5)
    path = tmp_path / "ocpp.log"
    release = threading.Event()
    write_lines = msglog._write_lines

    def slow_disk(lines: list[str]) -> None:
        release.wait(10)
        write_lines(lines)

    monkeypatch.setattr(msglog, "_write_lines", slow_disk)
    msglog.open(path, 1 << 20, 1)
    with caplog.at_level(logging.WARNING, logger="chargepoint.message_log"):
        for n in range(200):
            msglog.write(OUT, f"frame {n}")  # returns at once, the disk stalled or not
        release.set()
        msglog.close()
    text = path.read_text()
    kept = text.count(" out frame ")
    note = re.search(r" -- \[(\d+) frame\(s\) not logged here", text)
    assert note is not None and int(note.group(1)) + kept == 200
    assert any("not logged" in r.getMessage() for r in caplog.records)


def test_waiting_frames_never_take_more_than_their_memory_bound(
        tmp_path: Path, msglog: MessageLog, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of large frames while the disk stalls: what waits is bounded in characters, not only in lines."""
    monkeypatch.setattr(message_log, "QUEUE_MAX_CHARS", 100_000)
    release = threading.Event()
    write_lines = msglog._write_lines
    peak = [0]

    def slow_disk(lines: list[str]) -> None:
        release.wait(10)
        write_lines(lines)

    monkeypatch.setattr(msglog, "_write_lines", slow_disk)
    msglog.open(tmp_path / "ocpp.log", 1 << 24, 1)
    for n in range(100):
        msglog.write(IN, f"{n:03d} " + "w" * 20_000)
        peak[0] = max(peak[0], msglog._queued_chars)
    release.set()
    msglog.close()
    assert peak[0] <= 100_000
    text = (tmp_path / "ocpp.log").read_text()
    kept = text.count(" in ")
    note = re.search(r" -- \[(\d+) frame\(s\) not logged here", text)
    assert note is not None and kept + int(note.group(1)) == 100 and 1 <= kept <= 6


def test_write_before_open_and_after_close_does_nothing(tmp_path: Path) -> None:
    log = MessageLog()
    log.write(OUT, "nowhere")
    log.open(tmp_path / "ocpp.log", 1 << 20, 1)
    log.close()
    log.write(OUT, "too late")
    log.close()
    assert not (tmp_path / "ocpp.log").exists()


@pytest.fixture
def daemon_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "ocpp.log"
    OCPP_MESSAGE_LOG.open(path, 1 << 20, 1)
    yield path
    OCPP_MESSAGE_LOG.close()


def test_the_link_writes_frames_both_ways_masked(daemon_log: Path) -> None:
    frame_log = link._FrameLog(logging.getLogger("ocpp"), {})
    secret = "0123456789abcdef0123"
    frame_log.info("%s: receive message %s", "CP-1",
                   f'[2,"9","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{secret}"}}]')
    frame_log.info("%s: send %s", "CP-1", '[3,"9",{"status":"Accepted"}]')
    OCPP_MESSAGE_LOG.close()
    lines = lines_of(daemon_log)
    assert len(lines) == 2
    assert ' in [2,"9","ChangeConfiguration",{"key":"AuthorizationKey","value":"********"}]' in lines[0]
    assert lines[1].endswith(' out [3,"9",{"status":"Accepted"}]')
    assert secret not in daemon_log.read_text()


def test_a_huge_frame_is_masked_before_it_is_cut(daemon_log: Path) -> None:
    secret = "0123456789abcdef0123"
    frame = f'[2,"9","ChangeConfiguration",{{"key":"AuthorizationKey","value":"{secret}","pad":"{"z" * 100_000}"}}]'
    link._frame(IN, "CP-1", frame)
    OCPP_MESSAGE_LOG.close()
    text = daemon_log.read_text()
    assert secret not in text and "********" in text
    assert text.rstrip("\n").endswith(f"[cut: {len(frame) - message_log.FRAME_MAX_CHARS} more characters]")
    assert os.path.getsize(daemon_log) < message_log.FRAME_MAX_CHARS + 200
