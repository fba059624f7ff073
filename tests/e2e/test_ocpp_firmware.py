"""FirmwareManagement profile end to end: UpdateFirmware and GetDiagnostics against the test CSMS and a test
HTTP file server (OCTT case ids in the names)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint.config.schema import Config
from chargepoint.ocpp.file_transfer import SimulatedInstaller
from chargepoint.ocpp.v16.firmware import FirmwareManager
from chargepoint.ocpp.v16.wire import wire_time
from simulators.csms import Frame, TestCsms
from simulators.file_server import TestFileServer
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config
from tests.integration.harness import Charger, running_charger

CARD = "04A1B2C3"
BUNDLE_FILES = sorted(["README.txt", "status.json", "config.json", "log.txt", "ocpp-frames.txt", "faults.json",
                       "security-log.json", "database.json"])
IMAGE = b"firmware image 2.0\n" * 4096


def firmware_config(tmp_path: Path, csms: TestCsms) -> Config:
    """These are the unsigned UpdateFirmware cases (TC_044): the charger must be told to take them."""
    return ocpp_config(tmp_path, csms, ocpp={"allow_unsigned_firmware_updates": True})


@pytest.fixture
def files(tmp_path: Path) -> Iterator[TestFileServer]:
    with TestFileServer(tmp_path / "served", tmp_path / "uploads") as server:
        yield server


async def registered(charger: Charger) -> FirmwareManager:
    await charger.wait_for(lambda: charger.app.status()["csms_connected"], what="registered")
    await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
    assert charger.ocpp is not None
    return charger.ocpp.firmware


def statuses(csms: TestCsms, action: str, after: int = 0) -> list[str]:
    return [str(f.payload["status"]) for f in csms.frames[after:]
            if f.direction == "in" and f.message_type == "CALL" and f.action == action and f.payload is not None]


async def wait_status(csms: TestCsms, action: str, status: str, after: int = 0, timeout_s: float = 5) -> Frame:
    return await csms.wait_for_call(action, lambda p: p["status"] == status, after=after, timeout_s=timeout_s)


async def idle(charger: Charger) -> None:
    """Wait until the last notification was answered and the charger went back to Idle."""
    ocpp = charger.ocpp
    assert ocpp is not None
    await charger.wait_for(lambda: ocpp.firmware_status == "Idle" and ocpp.diagnostics_status == "Idle", what="idle")


async def triggered(csms: TestCsms, message: str) -> str:
    mark = len(csms.frames)
    assert await csms.call(CP_ID, "TriggerMessage", {"requestedMessage": message}) == {"status": "Accepted"}
    frame = await csms.wait_for_call(message, after=mark)
    assert frame.payload is not None
    return str(frame.payload["status"])


def update_firmware(location: str, **extra: object) -> dict[str, object]:
    return {"location": location, "retrieveDate": wire_time(datetime.now(UTC) - timedelta(seconds=1)), **extra}


# ------------------------------------------------------------------------------------------------ UpdateFirmware


async def test_tc044_1_download_install_then_restart_in_place(
    tmp_path: Path, csms: TestCsms, files: TestFileServer
) -> None:
    url = files.add_file("fw-2.0.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        firmware = await registered(charger)
        installer = firmware.installer
        assert isinstance(installer, SimulatedInstaller)
        assert await triggered(csms, "FirmwareStatusNotification") == "Idle"
        mark = len(csms.frames)
        assert await csms.call(CP_ID, "UpdateFirmware", update_firmware(url)) == {}
        await wait_status(csms, "FirmwareStatusNotification", "Installed", after=mark)
        assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "Downloaded", "Installing",
                                                                        "Installed"]
        assert installer.installed_sha256 == [hashlib.sha256(IMAGE).hexdigest()]
        assert [(r.method, r.path) for r in files.requests] == [("GET", "/fw-2.0.bin")]
        # The new firmware runs after a soft reset in place: in-process, the app asks to be re-executed and stops.
        await charger.wait_for(lambda: charger.app.reexec_requested, what="reexec requested")
        await charger.wait_for(lambda: not csms.connected(CP_ID), what="charger disconnected")
        assert not any((tmp_path / "firmware").glob("*.bin"))


async def test_retrieve_date_in_the_future_delays_the_download(
    tmp_path: Path, csms: TestCsms, files: TestFileServer
) -> None:
    url = files.add_file("fw.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        later = wire_time(datetime.now(UTC) + timedelta(seconds=0.8))
        await csms.call(CP_ID, "UpdateFirmware", {"location": url, "retrieveDate": later})
        await asyncio.sleep(0.4)
        assert statuses(csms, "FirmwareStatusNotification", mark) == [] and files.requests == []
        await wait_status(csms, "FirmwareStatusNotification", "Downloaded", after=mark)


async def test_tc044_2_download_failed_after_retries(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    url = files.add_file("fw.bin", IMAGE)
    files.fail_with = 404
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url, retries=2, retryInterval=0))
        await wait_status(csms, "FirmwareStatusNotification", "DownloadFailed", after=mark)
        assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "DownloadFailed"]
        assert len(files.requests_of("GET")) == 3  # the first try and two retries
        assert not charger.app.reexec_requested
        # Once nothing firmware-related is going on, a triggered notification says Idle (OCPP 1.6 §4.5).
        await idle(charger)
        assert await triggered(csms, "FirmwareStatusNotification") == "Idle"


async def test_a_retry_after_a_failed_try_succeeds(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    url = files.add_file("fw.bin", IMAGE)
    files.fail_next = 1
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url, retries=1, retryInterval=0))
        await wait_status(csms, "FirmwareStatusNotification", "Installed", after=mark)
        assert [r.status for r in files.requests_of("GET")] == [503, 200]


async def test_tc044_3_installation_failed(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    url = files.add_file("fw.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        firmware = await registered(charger)
        firmware.installer = SimulatedInstaller(fail=True, delay_s=0.05)
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url))
        await wait_status(csms, "FirmwareStatusNotification", "InstallationFailed", after=mark)
        assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "Downloaded", "Installing",
                                                                        "InstallationFailed"]
        await asyncio.sleep(0.2)
        assert not charger.app.reexec_requested and charger.app.status()["csms_connected"]
        await idle(charger)
        assert await triggered(csms, "FirmwareStatusNotification") == "Idle"


async def test_installation_waits_for_the_running_transaction_to_end(
    tmp_path: Path, csms: TestCsms, files: TestFileServer
) -> None:
    url = files.add_file("fw.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        firmware = await registered(charger)
        firmware.transaction_poll_interval_s = 0.05
        await charger.charge(card=CARD)
        await charger.wait_for(lambda: charger.status()["session"]["transaction_id"] == 1)
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url))
        await wait_status(csms, "FirmwareStatusNotification", "Downloaded", after=mark)
        await asyncio.sleep(0.4)
        assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "Downloaded"]
        assert charger.status()["status"] == "Charging"
        assert await triggered(csms, "FirmwareStatusNotification") == "Downloaded"
        charger.sim().apply("unplug")
        stop = await csms.wait_for_call("StopTransaction", after=mark)
        installing = await wait_status(csms, "FirmwareStatusNotification", "Installing", after=mark)
        assert csms.frames.index(stop) < csms.frames.index(installing)
        assert stop.payload is not None and stop.payload["reason"] == "EVDisconnected"
        await wait_status(csms, "FirmwareStatusNotification", "Installed", after=mark)
        await charger.wait_for(lambda: charger.app.reexec_requested, what="reexec requested")


async def test_a_second_update_replaces_the_first(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    first = files.add_file("fw-1.bin", b"one")
    second = files.add_file("fw-2.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        firmware = await registered(charger)
        installer = firmware.installer
        assert isinstance(installer, SimulatedInstaller)
        mark = len(csms.frames)
        far = wire_time(datetime.now(UTC) + timedelta(hours=1))
        await csms.call(CP_ID, "UpdateFirmware", {"location": first, "retrieveDate": far})
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(second))
        await wait_status(csms, "FirmwareStatusNotification", "Installed", after=mark)
        assert installer.installed_sha256 == [hashlib.sha256(IMAGE).hexdigest()]
        assert [r.path for r in files.requests] == ["/fw-2.bin"]


# ------------------------------------------------------------------------------------------------ GetDiagnostics


async def test_tc045_1_get_diagnostics_uploads_the_database_and_status(
    tmp_path: Path, csms: TestCsms, files: TestFileServer
) -> None:
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)  # something worth finding in the database
        assert await triggered(csms, "DiagnosticsStatusNotification") == "Idle"
        files.stall_s = 0.5  # the upload takes a while: long enough to ask how it is going
        mark = len(csms.frames)
        reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/diagnostics/",
                                                          "startTime": "2024-01-01T00:00:00Z"})
        file_name = reply["fileName"]
        assert re.fullmatch(r"diagnostics-CP-TEST-1-\d{8}T\d{6}Z\.tar\.gz", file_name)
        uploading = await wait_status(csms, "DiagnosticsStatusNotification", "Uploading", after=mark)
        answer = next(f for f in csms.frames[mark:] if f.message_type == "CALLRESULT" and f.action == "GetDiagnostics")
        assert csms.frames.index(answer) < csms.frames.index(uploading)  # the reply first, then the notification
        assert await triggered(csms, "DiagnosticsStatusNotification") == "Uploading"
        await wait_status(csms, "DiagnosticsStatusNotification", "Uploaded", after=mark)
        assert statuses(csms, "DiagnosticsStatusNotification", mark) == ["Uploading", "Uploading", "Uploaded"]
        await idle(charger)
        assert await triggered(csms, "DiagnosticsStatusNotification") == "Idle"

    [request] = files.requests
    assert (request.method, request.path) == ("PUT", f"/diagnostics/{file_name}")
    archive = files.upload_dir / file_name
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == BUNDLE_FILES  # a curated bundle: never the database itself
        status_file = tar.extractfile("status.json")
        assert status_file is not None
        status = json.loads(status_file.read())
        health_file = tar.extractfile("database.json")
        assert health_file is not None
        health = json.loads(health_file.read())
    assert status["connectors"][0]["status"] == "Charging"
    assert status["requested_start_time"] == "2024-01-01T00:00:00+00:00"
    assert "AuthorizationKey" not in status["ocpp_keys"]
    assert health["quick_check"] == ["ok"] and health["rows"]["sessions"] == 1
    assert not any((tmp_path / "outgoing").iterdir())  # nothing left behind


async def test_tc045_2_upload_failed(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    files.fail_with = 500
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/", "retries": 1,
                                                          "retryInterval": 0})
        assert reply["fileName"].endswith(".tar.gz")
        await wait_status(csms, "DiagnosticsStatusNotification", "UploadFailed", after=mark)
        assert statuses(csms, "DiagnosticsStatusNotification", mark) == ["Uploading", "UploadFailed"]
        assert len(files.requests_of("PUT")) == 2
        await idle(charger)
        assert await triggered(csms, "DiagnosticsStatusNotification") == "Idle"


async def test_get_diagnostics_to_an_unsupported_location_names_no_file(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        mark = len(csms.frames)
        assert await csms.call(CP_ID, "GetDiagnostics", {"location": "sftp://example.com/upload/"}) == {}
        await asyncio.sleep(0.2)
        assert statuses(csms, "DiagnosticsStatusNotification", mark) == []



async def test_sim_fault_install_failure_fails_the_next_installation(
    tmp_path: Path, csms: TestCsms, files: TestFileServer
) -> None:
    url = files.add_file("fw.bin", IMAGE)
    async with running_charger(firmware_config(tmp_path, csms)) as charger:
        await registered(charger)
        charger.sim().apply("fault", "install-failure")  # as `chargepoint sim fault install-failure` does
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url))
        await wait_status(csms, "FirmwareStatusNotification", "InstallationFailed", after=mark)
        assert statuses(csms, "FirmwareStatusNotification", mark) == ["Downloading", "Downloaded", "Installing",
                                                                        "InstallationFailed"]
        await asyncio.sleep(0.2)
        assert not charger.app.reexec_requested  # keeps running its current firmware
        charger.sim().apply("clear-fault")
        mark = len(csms.frames)
        await csms.call(CP_ID, "UpdateFirmware", update_firmware(url))
        await wait_status(csms, "FirmwareStatusNotification", "Installed", after=mark)
