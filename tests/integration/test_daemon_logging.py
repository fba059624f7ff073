"""The real daemon's log through a simulated session with the test CSMS: one line per record, a priority per level,
structured fields, and the OCPP message log.

Under "systemd": the daemon's stderr is a file whose device and inode are in ``$JOURNAL_STREAM`` (as systemd sets
it) and ``$CHARGEPOINT_JOURNAL_SOCKET`` names a datagram socket this test binds and parses, journald's way.
Without it: text lines on stderr, every one of which must start a record.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
from pathlib import Path

import pytest

from chargepoint.composition.journald import SOCKET_ENV, decode
from simulators.csms import TestCsms
from tests.integration.test_cli import CONFIG as SIM_CONFIG
from tests.integration.test_cli import Daemon, cli

CP_ID = "CP-LOG-1"
CARD = "04A1B2C3"
SECRET = "0123456789abcdefSECRET"

CONFIG = SIM_CONFIG + """\
[logging]
level = "{level}"
[ocpp]
csms_url = "{url}"
charge_point_id = "{cp_id}"
meter_value_sample_interval_s = 1
"""

# <time> <LEVEL> <logger>: <message>: the start of every record of the text output.
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.\-]+: \S")


class JournalSocket:
    """journald's socket, as far as the daemon can tell: a datagram socket whose entries are parsed as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: list[dict[str, str]] = []
        self.problems: list[str] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind(str(path))
        self._sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(1 << 22)
            except TimeoutError:
                continue
            fields = decode(data)
            names = [name for name, _ in fields]
            if len(names) != len(set(names)):
                self.problems.append(f"a field twice: {names}")
            self.entries.append(dict(fields))

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def find(self, pattern: str) -> list[dict[str, str]]:
        return [e for e in self.entries if re.search(pattern, e.get("MESSAGE", ""))]


def write_config(tmp_path: Path, csms: TestCsms, level: str = "INFO") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(dir=tmp_path, url=csms.url, cp_id=CP_ID, level=level))
    return path


async def session_with_a_fault(daemon: Daemon, csms: TestCsms) -> str:
    """Plug, card, charge, a ChangeConfiguration with a secret from the CSMS, unplug, an RCD trip and its clearing.
    Returns the unique id of the CSMS's ChangeConfiguration."""
    await csms.wait_connected(CP_ID)
    for action in (("plug",), ("tap", CARD), ("charge",)):
        assert (await asyncio.to_thread(daemon.sim, *action)).returncode == 0
    await asyncio.to_thread(daemon.wait_status, "Charging")
    await csms.wait_for_call("StartTransaction")
    await csms.call(CP_ID, "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET})
    [change] = [f for f in csms.frames if f.direction == "out" and f.action == "ChangeConfiguration"
                and f.message_type == "CALL"]
    await csms.wait_for_call("MeterValues")
    assert (await asyncio.to_thread(daemon.sim, "unplug")).returncode == 0
    await asyncio.to_thread(daemon.wait_status, "Available")
    await csms.wait_for_call("StopTransaction")
    assert (await asyncio.to_thread(daemon.sim, "fault", "ground-fault")).returncode == 0
    await asyncio.to_thread(daemon.wait_status, "Faulted")
    assert (await asyncio.to_thread(daemon.sim, "clear-fault")).returncode == 0
    assert change.unique_id is not None
    return change.unique_id


async def test_under_systemd_every_record_is_a_journal_entry_with_its_priority_and_fields(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    journal = JournalSocket(tmp_path / "journal.sock")
    async with TestCsms() as csms:
        config_path = write_config(tmp_path, csms)
        stderr = tmp_path / "daemon.log"
        stderr.touch()
        stat = stderr.stat()
        monkeypatch.setenv("JOURNAL_STREAM", f"{stat.st_dev}:{stat.st_ino}")
        monkeypatch.setenv(SOCKET_ENV, str(journal.path))
        daemon = Daemon(config_path)
        await asyncio.to_thread(daemon.start)
        try:
            change_id = await session_with_a_fault(daemon, csms)
        finally:
            assert await asyncio.to_thread(daemon.stop) == 0
    journal.close()
    entries = journal.entries
    assert not journal.problems
    assert stderr.read_text() == "", "nothing goes to stderr while the journal takes records"
    assert len(entries) > 20
    for entry in entries:
        assert "\n" not in entry["MESSAGE"], entry
        assert entry["PRIORITY"] in ("2", "3", "4", "6", "7"), entry
        assert entry["SYSLOG_IDENTIFIER"] == "chargepoint"
        assert {"LOGGER", "CODE_FILE", "CODE_LINE", "CODE_FUNC"} <= set(entry)
    [summary] = journal.find(r"^configuration: ")
    assert summary["PRIORITY"] == "6" and "ocpp.csms_url=" in summary["MESSAGE"]

    [started] = journal.find(r"^connector 1: session started")
    assert started["CHARGEPOINT_CONNECTOR"] == "1"
    [recorded] = journal.find(r"^connector 1: session \S+ recorded")
    session_id = recorded["CHARGEPOINT_SESSION"]
    [numbered] = journal.find(r"is transaction \d+ at the CSMS")
    assert numbered["CHARGEPOINT_SESSION"] == session_id
    transaction = numbered["CHARGEPOINT_TRANSACTION"]
    [ended] = journal.find(r"^connector 1: session of \S+ ended")
    assert (ended["CHARGEPOINT_CONNECTOR"], ended["CHARGEPOINT_SESSION"], ended["CHARGEPOINT_TRANSACTION"]) == (
        "1", session_id, transaction)

    [called] = journal.find(r"^CSMS calls ChangeConfiguration")
    assert called["CHARGEPOINT_OCPP_MESSAGE_ID"] == change_id
    assert called["CHARGEPOINT_OCPP_ACTION"] == "ChangeConfiguration"

    faulted = journal.find(r"^connector 1: Faulted")
    assert faulted and all(e["PRIORITY"] == "4" and e["CHARGEPOINT_CONNECTOR"] == "1" for e in faulted)
    raised = journal.find(r"^connector 1: fault \S+ raised")
    assert raised and raised[0]["PRIORITY"] == "4"
    assert all(SECRET not in str(e) for e in entries)
    stopped = journal.find(r"^stopped; hardware safe")
    assert stopped, "the last record was sent before the daemon exited"

    # The OCPP message log: every frame both ways, masked, readable with the CLI while the daemon is stopped.
    frames = (tmp_path / "ocpp.log").read_text().splitlines()
    assert any(re.search(r' out \[2,"[^"]+","BootNotification",', line) for line in frames)
    assert any(f' in [2,"{change_id}","ChangeConfiguration",' in line for line in frames)
    assert any(f' out [3,"{change_id}",' in line for line in frames)
    assert SECRET not in "\n".join(frames) and '"value":"********"' in "\n".join(frames).replace(" ", "")
    shown = await asyncio.to_thread(cli, "logs", "ocpp", "--config", str(config_path), "--lines", "3")
    assert shown.returncode == 0 and shown.stdout.splitlines() == frames[-3:]


async def test_without_systemd_every_line_the_daemon_writes_is_one_whole_record(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At DEBUG, with the libraries' own debug logs (websockets, ocpp) included."""
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    monkeypatch.delenv(SOCKET_ENV, raising=False)
    async with TestCsms() as csms:
        daemon = Daemon(write_config(tmp_path, csms, level="DEBUG"))
        await asyncio.to_thread(daemon.start)
        try:
            await session_with_a_fault(daemon, csms)
        finally:
            assert await asyncio.to_thread(daemon.stop) == 0
    lines = daemon.log().splitlines()
    assert len(lines) > 50
    not_records = [line for line in lines if not RECORD.match(line)]
    assert not not_records, not_records[:5]
    assert sum(line.count(" configuration: ") for line in lines) == 1
    assert any(" DEBUG   " in line for line in lines)
    assert SECRET not in daemon.log()
