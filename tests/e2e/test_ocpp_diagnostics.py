"""What leaves the charger in diagnostics (issue 13 point 3) and GetLog (security extension, TC_079), on the wire."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.csms import CallErrorReply, TestCsms, TestPki
from simulators.file_server import TestFileServer
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import keeping_recent_log, ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"
SECRET = "Never-Leaves-0042x"
TOKEN = base64.b64encode(f"{CP_ID}:{SECRET}".encode()).decode()


@pytest.fixture
def files(tmp_path: Path) -> Iterator[TestFileServer]:
    with TestFileServer(tmp_path / "served", tmp_path / "received") as server:
        yield server


@pytest.fixture
def recent_log() -> Iterator[None]:
    with keeping_recent_log(logging.INFO):
        yield


def members(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        result = {}
        for member in tar.getmembers():
            data = tar.extractfile(member)
            assert data is not None
            result[member.name] = data.read().decode()
        return result


def security_events(csms: TestCsms) -> list[str]:
    return [str(f.payload["type"]) for f in csms.calls("SecurityEventNotification") if f.payload is not None]


async def test_get_diagnostics_uploads_a_curated_bundle_that_holds_no_secret(
    tmp_path: Path, csms: TestCsms, files: TestFileServer, recent_log: None
) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        # A key set over OCPP (kept for later at profile 0) passes through frames, logs and the database.
        assert await csms.call(CP_ID, "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET}) == \
            {"status": "Accepted"}
        await csms.call(CP_ID, "SendLocalList", {"listVersion": 3, "updateType": "Full", "localAuthorizationList": [
            {"idTag": "LOCAL-TAG-77", "idTagInfo": {"status": "Accepted"}}]})
        await charger.charge(card=CARD)
        reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/in/"})
        await csms.wait_for_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded")
        await csms.wait_for_call("SecurityEventNotification", lambda p: p["type"] == "DiagnosticsUploaded")
    bundle = members(files.upload_dir / reply["fileName"])
    assert sorted(bundle) == sorted(["README.txt", "status.json", "config.json", "log.txt", "ocpp-frames.txt",
                                     "faults.json", "security-log.json", "database.json"])
    for name, text in bundle.items():
        assert SECRET not in text and TOKEN not in text, name
        if name not in ("ocpp-frames.txt", "log.txt"):  # the CSMS's own frames may show its tags, nothing else
            assert "LOCAL-TAG-77" not in text, name  # the local list stays on the charger
        assert "PRIVATE KEY" not in text, name
    assert "CSMS calls GetDiagnostics" in bundle["log.txt"]
    assert "BootNotification" in bundle["ocpp-frames.txt"] and "AuthorizationKey" in bundle["ocpp-frames.txt"]
    config = json.loads(bundle["config.json"])
    assert config["ocpp"]["charge_point_id"] == CP_ID
    events = json.loads(bundle["security-log.json"])
    assert "ReconfigurationOfSecurityParameters" in [e["type"] for e in events]
    health = json.loads(bundle["database.json"])
    assert health["quick_check"] == ["ok"] and health["rows"]["local_auth_list"] == 1
    assert "left out on purpose" in bundle["README.txt"].lower()


def profile2(tmp_path: Path, csms: TestCsms, pki: TestPki, **ocpp: Any) -> Any:
    return ocpp_config(tmp_path, csms, ocpp={"security_profile": 2, "authorization_key": SECRET,
                                             "ca_file": str(pki.ca_cert), **ocpp})


async def test_at_profile_2_only_encrypted_locations_take_diagnostics(
    tmp_path: Path, pki: TestPki, files: TestFileServer
) -> None:
    async with TestCsms(ssl_context=pki.server_context(), passwords={CP_ID: SECRET}) as csms:
        with TestFileServer(tmp_path / "served-tls", tmp_path / "received-tls",
                            ssl_context=pki.server_context()) as tls_files:
            async with running_charger(profile2(tmp_path, csms, pki)) as charger:
                await registered(charger)
                # Plain http: no file named, nothing uploaded, and the refusal is a security event.
                assert await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/"}) == {}
                await csms.wait_for_call("SecurityEventNotification",
                                         lambda p: p["type"] == "DiagnosticsUploadRefused")
                reply = await csms.call(CP_ID, "GetLog", {"logType": "DiagnosticsLog", "requestId": 5,
                                                          "log": {"remoteLocation": f"{files.url}/"}})
                assert reply == {"status": "Rejected"}
                # https, verified against the CSMS's CA: uploaded.
                reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{tls_files.url}/"})
                await csms.wait_for_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded")
            assert files.requests == []
            assert [r.method for r in tls_files.requests] == ["PUT"]
            assert (tls_files.upload_dir / reply["fileName"]).is_file()


async def test_allow_insecure_uploads_lets_plain_http_through_at_profile_2(
    tmp_path: Path, pki: TestPki, files: TestFileServer
) -> None:
    csms = TestCsms(ssl_context=pki.server_context(), passwords={CP_ID: SECRET})
    async with csms, running_charger(profile2(tmp_path, csms, pki, allow_insecure_uploads=True)) as charger:
        await registered(charger)
        reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/"})
        await csms.wait_for_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded")
    assert (files.upload_dir / reply["fileName"]).is_file()


async def test_tc079_get_security_log(tmp_path: Path, csms: TestCsms, files: TestFileServer) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await csms.call(CP_ID, "ChangeConfiguration", {"key": "AuthorizationKey", "value": SECRET})
        mark = len(csms.frames)
        reply = await csms.call(CP_ID, "GetLog", {"logType": "SecurityLog", "requestId": 42,
                                                  "log": {"remoteLocation": f"{files.url}/logs/"}})
        assert reply["status"] == "Accepted" and reply["filename"].startswith("security-log-")
        uploaded = await csms.wait_for_call("LogStatusNotification", lambda p: p["status"] == "Uploaded", after=mark)
        notifications = [f.payload for f in csms.calls("LogStatusNotification")]
        assert notifications == [{"status": "Uploading", "requestId": 42}, {"status": "Uploaded", "requestId": 42}]
        answer = next(f for f in csms.frames[mark:] if f.message_type == "CALLRESULT" and f.action == "GetLog")
        assert csms.frames.index(answer) < csms.frames.index(uploaded)
    bundle = members(files.upload_dir / reply["filename"])
    events = json.loads(bundle["security-log.json"])
    assert [e["type"] for e in events][:1] == ["ReconfigurationOfSecurityParameters"]  # newest first
    assert "StartupOfTheDevice" in [e["type"] for e in events]
    assert json.loads(bundle["config.json"]) == {} and bundle["log.txt"].strip() == ""  # the security log only
    assert all(SECRET not in text for text in bundle.values())


# ------------------------------------------------------------------------------------------------ security log


async def test_security_events_of_an_offline_charger_reach_the_csms_once_in_order_across_a_restart(
    tmp_path: Path, csms: TestCsms
) -> None:
    csms.accepting = False  # the CSMS is unreachable while the events happen
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        assert charger.ocpp is not None
        charger.ocpp.security_event("TamperDetectionActivated", "enclosure opened")
        await asyncio.sleep(0.3)
    async with running_charger(config) as charger:
        await asyncio.sleep(0.3)
        csms.accepting = True
        await registered(charger)
        tamper = await csms.wait_for_call("SecurityEventNotification",
                                          lambda p: p["type"] == "TamperDetectionActivated", timeout_s=10)
        await csms.wait_for_call("SecurityEventNotification", lambda p: p["type"] == "StartupOfTheDevice",
                                 after=csms.frames.index(tamper) + 1, timeout_s=10)
        await asyncio.sleep(0.5)
    kinds = security_events(csms)
    assert kinds == ["StartupOfTheDevice", "TamperDetectionActivated", "StartupOfTheDevice"], kinds


async def test_a_csms_without_the_security_extension_does_not_hold_up_transactions(tmp_path: Path,
                                                                                  csms: TestCsms) -> None:
    def not_implemented(_cp: str, _payload: dict[str, object]) -> dict[str, object]:
        raise CallErrorReply("NotImplemented", "no security extension here")

    csms.set_handler("SecurityEventNotification", not_implemented)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        await csms.wait_for_call("StartTransaction", timeout_s=5)
        assert charger.ocpp is not None
        history = await charger.ocpp.security_events.history()
    assert len(csms.calls("SecurityEventNotification")) == 1  # refused once, not tried again
    assert [e["type"] for e in history] == ["StartupOfTheDevice"]  # still in the charger's security log

