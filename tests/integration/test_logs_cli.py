"""``chargepoint logs ocpp`` on real files: the last lines across rotated files, and ``--follow`` through rotations
while the message log's own writer rotates them."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chargepoint.message_log import OUT, MessageLog
from tests.integration.test_cli import ROOT, cli

CONFIG = """\
[hardware]
backend = "sim"
[storage]
dir = "{dir}"
[logging]
ocpp_log_backups = {backups}
"""


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path, backups=3))
    return path


def show(config_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return cli("logs", "ocpp", "--config", str(config_path), *args)


def test_the_last_lines_come_from_the_rotated_files_too_oldest_first(tmp_path: Path, config_path: Path) -> None:
    (tmp_path / "ocpp.log.2").write_text("a1\na2\n")
    (tmp_path / "ocpp.log.1").write_text("b1\nb2\nb3\n")
    (tmp_path / "ocpp.log").write_text("c1\n")
    assert show(config_path, "--lines", "4").stdout.splitlines() == ["b1", "b2", "b3", "c1"]
    assert show(config_path, "--lines", "100").stdout.splitlines() == ["a1", "a2", "b1", "b2", "b3", "c1"]
    assert show(config_path, "-n", "1").stdout.splitlines() == ["c1"]
    assert show(config_path, "--lines", "0").stdout == ""
    assert show(config_path).stdout.splitlines() == ["a1", "a2", "b1", "b2", "b3", "c1"]  # 20 by default


def test_the_tail_of_a_large_file_is_read_from_its_end(tmp_path: Path, config_path: Path) -> None:
    lines = [f"frame {n:06d} " + "x" * 90 for n in range(30_000)]  # about 3 MB
    (tmp_path / "ocpp.log").write_text("\n".join(lines) + "\n")
    assert show(config_path, "--lines", "5").stdout.splitlines() == lines[-5:]


def test_without_a_log_it_says_so_and_exits_0(tmp_path: Path, config_path: Path) -> None:
    result = show(config_path)
    assert result.returncode == 0 and result.stdout == ""
    assert "no OCPP messages logged yet" in result.stderr


def test_a_config_that_does_not_validate_is_an_error_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[logging]\nocpp_log_max_bytes = 10\n[storage]\ndir = "."\n')
    result = cli("logs", "ocpp", "--config", str(path))
    assert result.returncode == 2 and "logging.ocpp_log_max_bytes" in result.stderr


def test_follow_prints_every_frame_once_in_order_across_rotations(tmp_path: Path, config_path: Path) -> None:
    path = tmp_path / "ocpp.log"
    writer = MessageLog()
    writer.open(path, 4000, 3)
    writer.write(OUT, "before the follow")
    writer.close()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    follower = subprocess.Popen(
        [sys.executable, "-m", "chargepoint", "logs", "ocpp", "--follow", "--lines", "1", "--config",
         str(config_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert follower.stdout is not None
    seen: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in follower.stdout or []:
            seen.put(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    try:
        assert seen.get(timeout=15).endswith(" out before the follow")
        writer.open(path, 4000, 3)
        count = 300  # about 15 rotations of 4000 bytes, two at a time between the follower's polls
        for n in range(count):
            writer.write(OUT, f"frame {n:04d} {'z' * 150}")
            if n % 40 == 39:
                time.sleep(0.3)
        writer.close()
        got: list[str] = []
        deadline = time.monotonic() + 20
        while len(got) < count and time.monotonic() < deadline:
            try:
                got.append(seen.get(timeout=1))
            except queue.Empty:
                continue
        numbers = [int(line.split(" out frame ")[1][:4]) for line in got]
        # Several rotations within one poll of the follower: it reads the files rotated away meanwhile too.
        assert numbers == list(range(count)), (len(numbers), numbers[:5], numbers[-5:])
    finally:
        follower.send_signal(signal.SIGINT)
        try:
            follower.wait(10)
        except subprocess.TimeoutExpired:
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, follower.stderr.read() if follower.stderr else ""
