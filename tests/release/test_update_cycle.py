"""The whole update cycle on the simulator: a real daemon process run from its venv by a stand-in for systemd (the
update guard before every start, restart on exit), a real test CSMS and file server, real signed releases of this
repository with another version. Nothing of the update path is mocked; the one seam is the dependencies the new venv
finds installed (harness.py)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from chargepoint.ocpp.v16.wire import wire_time
from chargepoint.release import guard
from simulators.csms import TestCsms
from simulators.file_server import TestFileServer
from tests.release.conftest import Kit
from tests.release.harness import INITIAL, Service, copy_install_root
from tests.release.kit import Manufacturer, make_release, manufacturer, member, pem, rewrite_tar

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

CP_ID = "CP-UPDATE-1"
CONFIG = """\
[charger]
meter_poll_interval_s = 0.1
contactor_feedback_timeout_s = 0.3
[hardware]
backend = "sim"
[simulator]
contactor_feedback_delay_s = 0.01
lock_delay_s = 0.01
time_scale = 60
[storage]
dir = "{dir}"
reserve_bytes = 65536
[ocpp]
csms_url = "{url}"
charge_point_id = "{cp_id}"
[update]
install_root = "{root}"
manufacturer_root_file = "{root_pem}"
health_timeout_s = {health_timeout_s}
start_attempts = 2
"""


@dataclass
class Site:
    root: Path
    config: Path
    state: Path
    service: Service
    csms: TestCsms
    files: TestFileServer
    maker: Manufacturer

    def link(self) -> str | None:
        return guard.link_target(self.root / guard.LINK)

    def phase(self) -> str | None:
        state = guard.read_state(self.state)
        return None if state is None else str(state["phase"])

    def statuses(self) -> list[str]:
        return [str(f.payload["status"]) for f in self.csms.calls("FirmwareStatusNotification")
                if f.payload is not None]

    def versions(self) -> list[str]:
        return [str(f.payload.get("firmwareVersion")) for f in self.csms.calls("BootNotification")
                if f.payload is not None]

    def events(self) -> list[str]:
        return [str(f.payload["type"]) for f in self.csms.calls("SecurityEventNotification") if f.payload is not None]

    def venvs(self) -> list[str]:
        return sorted(p.name for p in (self.root / "venvs").iterdir())

    async def wait(self, check: object, what: str, timeout_s: float = 60) -> None:
        assert callable(check)
        for _ in range(int(timeout_s / 0.1)):
            if check():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; guard: {self.service.guard_lines}\n"
                             f"{self.service.log()[-4000:]}")

    async def registered(self) -> None:
        """Connected and registered: a status notification went out (none does before BootNotification's answer)."""
        await self.csms.wait_connected(CP_ID, timeout_s=30)
        await self.csms.wait_for_call("StatusNotification", timeout_s=30)

    async def update_firmware(self, release: Path) -> None:
        url = self.files.add_file(release.name, await asyncio.to_thread(release.read_bytes))
        await self.registered()
        reply = await self.csms.call(CP_ID, "UpdateFirmware", {
            "location": url, "retrieveDate": wire_time(datetime.now(UTC) - timedelta(seconds=1))})
        assert reply == {}


@pytest.fixture
def files(tmp_path: Path) -> Iterator[TestFileServer]:
    with TestFileServer(tmp_path / "served", tmp_path / "uploads") as server:
        yield server


@pytest.fixture
async def site(tmp_path: Path, kit: Kit, files: TestFileServer, request: pytest.FixtureRequest
               ) -> AsyncIterator[Site]:
    root = copy_install_root(kit.pristine_root, tmp_path / "opt-chargepoint")
    data = tmp_path / "data"
    data.mkdir()
    root_pem = tmp_path / "manufacturer-root.pem"
    root_pem.write_text(pem(kit.maker.root))
    marker = request.node.get_closest_marker("health_timeout_s")
    async with TestCsms() as csms:
        config = tmp_path / "config.toml"
        config.write_text(CONFIG.format(dir=data, url=csms.url, cp_id=CP_ID, root=root, root_pem=root_pem,
                                        health_timeout_s=marker.args[0] if marker else 30))
        service = Service(root, config, kit.dependencies)
        async with service.running():
            yield Site(root, config, data / guard.STATE_FILE, service, csms, files, kit.maker)


def release_of(kit: Kit, wheel: Path, out: Path) -> Path:
    return make_release([wheel], kit.maker, out)


async def test_update_firmware_installs_a_signed_release_which_passes_its_health_check_and_stays(
        site: Site, kit: Kit, tmp_path: Path) -> None:
    release = release_of(kit, kit.good, tmp_path / "dist")
    await site.update_firmware(release)
    await site.wait(lambda: "Installed" in site.statuses() or "InstallationFailed" in site.statuses(),
                    "the outcome of the update")
    assert site.statuses() == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert site.versions() == ["0.1.0", "0.2.0"]  # the Installed came from the new firmware, after its check
    assert site.link() is not None and site.link().startswith("venvs/0.2.0-")  # type: ignore[union-attr]
    assert guard.link_target(site.root / guard.PREVIOUS_LINK) == INITIAL
    assert site.phase() == guard.COMMITTED
    await site.wait(lambda: "FirmwareUpdated" in site.events(), "the security event FirmwareUpdated")
    assert site.service.exits == [0]  # one restart: out of the old firmware into the new


@pytest.mark.health_timeout_s(10)
async def test_a_release_that_fails_its_health_check_is_rolled_back_and_the_old_firmware_reports_it(
        site: Site, kit: Kit, tmp_path: Path) -> None:
    release = release_of(kit, kit.good, tmp_path / "dist")
    await site.update_firmware(release)
    await site.wait(lambda: site.phase() == guard.STAGED and not site.csms.connected(CP_ID), "the restart")
    site.csms.accepting = False  # the CSMS is unreachable for the new firmware's whole trial
    await site.wait(lambda: site.phase() == guard.ROLLED_BACK, "the rollback", timeout_s=60)
    site.csms.accepting = True
    await site.wait(lambda: "InstallationFailed" in site.statuses(), "InstallationFailed from the old firmware")
    assert site.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert site.link() == INITIAL
    assert site.versions() == ["0.1.0", "0.1.0"]  # 0.2.0 never reached the CSMS
    state = guard.read_state(site.state)
    assert state is not None and "the CSMS is not connected" in state["reason"]
    assert "FirmwareUpdated" not in site.events()
    assert any(line.startswith("update-guard: rolled back") for line in site.service.guard_lines)


async def test_a_release_that_cannot_start_is_rolled_back_by_the_guard(site: Site, kit: Kit, tmp_path: Path) -> None:
    release = release_of(kit, kit.broken, tmp_path / "dist")
    await site.update_firmware(release)
    await site.wait(lambda: "InstallationFailed" in site.statuses(), "InstallationFailed", timeout_s=90)
    assert site.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"]
    assert site.link() == INITIAL
    state = guard.read_state(site.state)
    assert state is not None and state["reason"] == "chargepoint 0.2.1 did not pass its health check in 2 start(s)"
    assert site.service.exits[:3] == [0, 1, 1]  # out for the update, then two failed starts of 0.2.1
    assert "chargepoint_release_that_cannot_start" in site.service.log()


async def test_tampered_and_unsigned_packages_are_refused_and_nothing_is_installed(
        site: Site, kit: Kit, tmp_path: Path) -> None:
    release = release_of(kit, kit.good, tmp_path / "dist")
    payload = bytearray(member(release, "payload.tar"))
    payload[-3000] ^= 0xFF
    tampered = tmp_path / "tampered.release.tar"
    rewrite_tar(release, tampered, {"payload.tar": bytes(payload)})
    unsigned = release.with_name("chargepoint-0.2.0.payload.tar")
    other = manufacturer("ec", "Not The Maker")
    foreign = make_release([kit.good], other, tmp_path / "foreign")
    for number, package in enumerate((tampered, unsigned, foreign), start=1):
        await site.update_firmware(package)
        await site.wait(lambda n=number: site.statuses().count("InstallationFailed") == n,  # type: ignore[misc]
                        f"refusal {number}")
    assert site.statuses() == ["Downloading", "Downloaded", "Installing", "InstallationFailed"] * 3
    assert site.venvs() == ["0.1.0-test"] and site.link() == INITIAL and site.phase() is None
    def firmware_events() -> list[str]:
        return [e for e in site.events() if "Firmware" in e]

    await site.wait(lambda: len(firmware_events()) >= 3, "the security events")
    assert firmware_events() == ["InvalidFirmwareSignature", "InvalidFirmwareSignature",
                                 "InvalidFirmwareSigningCertificate"]
    assert site.service.starts == 1


async def test_signed_update_firmware_installs_the_payload_signed_with_the_csms_certificate(
        site: Site, kit: Kit, tmp_path: Path) -> None:
    release = release_of(kit, kit.good, tmp_path / "dist")
    payload = release.with_name("chargepoint-0.2.0.payload.tar")
    key = kit.maker.signer_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = base64.b64encode(key.sign(payload.read_bytes(), ec.ECDSA(hashes.SHA256()))).decode()
    url = site.files.add_file(payload.name, payload.read_bytes())
    await site.registered()
    assert await site.csms.call(CP_ID, "InstallCertificate", {"certificateType": "ManufacturerRootCertificate",
                                                              "certificate": pem(kit.maker.root)}) == \
        {"status": "Accepted"}
    reply = await site.csms.call(CP_ID, "SignedUpdateFirmware", {"requestId": 41, "retries": 0, "firmware": {
        "location": url, "retrieveDateTime": wire_time(datetime.now(UTC) - timedelta(seconds=1)),
        "signingCertificate": pem(kit.maker.signer), "signature": signature}})
    assert reply == {"status": "Accepted"}
    await site.wait(lambda: any(s in ("Installed", "InstallationFailed") for s, _ in signed(site)), "the outcome")
    assert signed(site) == [(s, 41) for s in ("Downloading", "Downloaded", "SignatureVerified", "Installing",
                                             "InstallRebooting", "Installed")]
    assert site.versions() == ["0.1.0", "0.2.0"]
    await site.wait(lambda: "FirmwareUpdated" in site.events(), "FirmwareUpdated")
    state = json.loads(site.state.read_text())
    assert state["phase"] == guard.COMMITTED and state["version"] == "0.2.0"


def signed(site: Site) -> list[tuple[str, int]]:
    return [(str(f.payload["status"]), int(f.payload["requestId"]))
            for f in site.csms.calls("SignedFirmwareStatusNotification") if f.payload is not None]
