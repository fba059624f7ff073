"""SignedUpdateFirmware (OCPP 1.6 security extension, TC_080 and TC_081) against the test CSMS and file server."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from chargepoint.ocpp.file_transfer import SimulatedInstaller
from chargepoint.ocpp.firmware_signature import (
    InvalidCertificate,
    InvalidSignature,
    check_signing_certificate,
    verify_image,
)
from chargepoint.ocpp.v16.wire import wire_time
from simulators.csms import CallErrorReply, TestCsms
from simulators.file_server import TestFileServer
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import Charger, running_charger

IMAGE = b"signed firmware 3.1\n" * 5000
CARD = "04A1B2C3"


# ------------------------------------------------------------------------------------------------ a manufacturer PKI

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: Key, issuer: str, issuer_key: Key, *, ca: bool,
                 days: int = 30, start: datetime | None = None) -> x509.Certificate:
    start = start or datetime.now(UTC) - timedelta(days=1)
    builder = (x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(_name(issuer))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(start).not_valid_after(start + timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=not ca, content_commitment=False,
                                            key_encipherment=False, data_encipherment=False, key_agreement=False,
                                            key_cert_sign=ca, crl_sign=ca, encipher_only=False,
                                            decipher_only=False), critical=True))
    return builder.sign(issuer_key, hashes.SHA256())


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass
class Manufacturer:
    root: x509.Certificate
    signer: x509.Certificate
    signer_key: Key

    def sign(self, data: bytes, scheme: str = "default") -> str:
        key = self.signer_key
        if isinstance(key, rsa.RSAPrivateKey):
            pad: padding.AsymmetricPadding = (padding.PKCS1v15() if scheme == "pkcs1" else
                                              padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH))
            return base64.b64encode(key.sign(data, pad, hashes.SHA256())).decode()
        return base64.b64encode(key.sign(data, ec.ECDSA(hashes.SHA256()))).decode()


def manufacturer(kind: str = "ec", name: str = "Maker") -> Manufacturer:
    def new_key() -> Key:
        return ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)

    root_key, signer_key = new_key(), new_key()
    root = _certificate(f"{name} Root", root_key, f"{name} Root", root_key, ca=True)
    signer = _certificate(f"{name} Firmware Signing", signer_key, f"{name} Root", root_key, ca=False)
    return Manufacturer(root, signer, signer_key)


@pytest.fixture(scope="module")
def maker() -> Manufacturer:
    return manufacturer("ec")


@pytest.fixture
def files(tmp_path: Path) -> Iterator[TestFileServer]:
    with TestFileServer(tmp_path / "served", tmp_path / "uploads") as server:
        yield server


# ------------------------------------------------------------------------------------------------ the checks


@pytest.mark.parametrize(("kind", "scheme"), [("ec", "default"), ("rsa", "default"), ("rsa", "pkcs1")])
def test_a_signature_by_the_manufacturer_is_verified(tmp_path: Path, kind: str, scheme: str) -> None:
    m = manufacturer(kind)
    image = tmp_path / "fw.bin"
    image.write_bytes(IMAGE)
    signer = check_signing_certificate(pem(m.signer), [m.root])
    assert verify_image(image, m.sign(IMAGE, scheme), signer) == hashlib.sha256(IMAGE).hexdigest()
    image.write_bytes(IMAGE[:-1] + b"!")  # one byte changed
    with pytest.raises(InvalidSignature):
        verify_image(image, m.sign(IMAGE, scheme), signer)


def test_signing_certificates_that_are_not_the_manufacturers_are_refused(maker: Manufacturer) -> None:
    other = manufacturer("ec", "Other")
    with pytest.raises(InvalidCertificate, match="not issued by an installed ManufacturerRootCertificate"):
        check_signing_certificate(pem(other.signer), [maker.root])
    with pytest.raises(InvalidCertificate, match="no ManufacturerRootCertificate is installed"):
        check_signing_certificate(pem(maker.signer), [])
    old_key = ec.generate_private_key(ec.SECP256R1())
    expired = _certificate("Maker Firmware Signing", old_key, "Maker Root", old_key, ca=False, days=1,
                           start=datetime.now(UTC) - timedelta(days=10))
    with pytest.raises(InvalidCertificate, match="not now"):
        check_signing_certificate(pem(expired), [maker.root])
    # Same issuer name, but signed by another key: the signature check, not the name, decides.
    impostor_root_key = ec.generate_private_key(ec.SECP256R1())
    impostor = _certificate("Maker Firmware Signing", old_key, "Maker Root", impostor_root_key, ca=False)
    with pytest.raises(InvalidCertificate):
        check_signing_certificate(pem(impostor), [maker.root])
    with pytest.raises(InvalidCertificate, match="not a PEM"):
        check_signing_certificate("garbage", [maker.root])
    with pytest.raises(InvalidCertificate, match="digital signatures"):
        check_signing_certificate(pem(maker.root), [maker.root])  # a CA certificate is not a signing one


# ------------------------------------------------------------------------------------------------ on the wire


def signed_update(url: str, m: Manufacturer, signature: str, request_id: int = 7, **firmware: Any) -> dict[str, Any]:
    return {"requestId": request_id, "retries": 0, "firmware": {
        "location": url, "retrieveDateTime": wire_time(datetime.now(UTC) - timedelta(seconds=1)),
        "signingCertificate": pem(m.signer), "signature": signature, **firmware}}


def signed_statuses(csms: TestCsms) -> list[tuple[str, int]]:
    return [(str(f.payload["status"]), int(f.payload["requestId"]))
            for f in csms.calls("SignedFirmwareStatusNotification") if f.payload is not None]


def events(csms: TestCsms) -> list[str]:
    return [str(f.payload["type"]) for f in csms.calls("SecurityEventNotification") if f.payload is not None]


async def install_root(csms: TestCsms, m: Manufacturer) -> None:
    reply = await csms.call(CP_ID, "InstallCertificate", {"certificateType": "ManufacturerRootCertificate",
                                                          "certificate": pem(m.root)})
    assert reply == {"status": "Accepted"}


def installer_of(charger: Charger) -> SimulatedInstaller:
    assert charger.ocpp is not None
    installer = charger.ocpp.firmware.installer
    assert isinstance(installer, SimulatedInstaller)
    return installer


async def test_tc080_secure_firmware_update(tmp_path: Path, csms: TestCsms, files: TestFileServer,
                                            maker: Manufacturer) -> None:
    url = files.add_file("fw-3.1.bin", IMAGE)
    config = ocpp_config(tmp_path, csms)
    async with running_charger(config) as charger:
        await registered(charger)
        await install_root(csms, maker)
        reply = await csms.call(CP_ID, "SignedUpdateFirmware", signed_update(url, maker, maker.sign(IMAGE)))
        assert reply == {"status": "Accepted"}
        await csms.wait_for_call("SignedFirmwareStatusNotification", lambda p: p["status"] == "InstallRebooting",
                                 timeout_s=10)
        assert installer_of(charger).installed_sha256 == [hashlib.sha256(IMAGE).hexdigest()]
        await charger.wait_for(lambda: charger.app.reexec_requested, what="the restart in place")
        await charger.wait_for(lambda: not csms.connected(CP_ID), what="charger disconnected")
    assert signed_statuses(csms) == [(s, 7) for s in ("Downloading", "Downloaded", "SignatureVerified", "Installing",
                                                      "InstallRebooting")]
    # After the restart: Installed, and the critical security event FirmwareUpdated.
    async with running_charger(config) as charger:
        await registered(charger)
        await csms.wait_for_call("SignedFirmwareStatusNotification", lambda p: p["status"] == "Installed")
        await csms.wait_for_call("SecurityEventNotification", lambda p: p["type"] == "FirmwareUpdated")
    assert signed_statuses(csms)[-1] == ("Installed", 7)
    assert events(csms).count("FirmwareUpdated") == 1


async def test_tc081_a_bad_signature_is_never_installed(tmp_path: Path, csms: TestCsms, files: TestFileServer,
                                                        maker: Manufacturer) -> None:
    url = files.add_file("fw-3.1.bin", IMAGE)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await install_root(csms, maker)
        tampered = maker.sign(IMAGE + b"extra")
        assert await csms.call(CP_ID, "SignedUpdateFirmware", signed_update(url, maker, tampered, 8)) == \
            {"status": "Accepted"}
        await csms.wait_for_call("SignedFirmwareStatusNotification", lambda p: p["status"] == "InvalidSignature")
        await csms.wait_for_call("SecurityEventNotification", lambda p: p["type"] == "InvalidFirmwareSignature")
        assert installer_of(charger).installed == []
    assert signed_statuses(csms) == [("Downloading", 8), ("Downloaded", 8), ("InvalidSignature", 8)]


async def test_a_signing_certificate_not_from_the_manufacturer_is_refused_before_any_download(
    tmp_path: Path, csms: TestCsms, files: TestFileServer, maker: Manufacturer
) -> None:
    url = files.add_file("fw-3.1.bin", IMAGE)
    other = manufacturer("ec", "Other")
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await install_root(csms, maker)
        reply = await csms.call(CP_ID, "SignedUpdateFirmware", signed_update(url, other, other.sign(IMAGE)))
        assert reply == {"status": "InvalidCertificate"}
        await csms.wait_for_call("SecurityEventNotification",
                                 lambda p: p["type"] == "InvalidFirmwareSigningCertificate")
    assert files.requests == [] and signed_statuses(csms) == []


async def test_unsigned_update_firmware_is_not_supported_by_default(tmp_path: Path, csms: TestCsms,
                                                                    files: TestFileServer) -> None:
    url = files.add_file("fw.bin", IMAGE)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        with pytest.raises(CallErrorReply) as refused:
            await csms.call(CP_ID, "UpdateFirmware", {"location": url, "retrieveDate": wire_time(datetime.now(UTC))})
        assert refused.value.code == "NotSupported"
    assert files.requests == []


async def test_scheduled_download_and_installation_wait_for_their_times(
    tmp_path: Path, csms: TestCsms, files: TestFileServer, maker: Manufacturer
) -> None:
    url = files.add_file("fw-3.1.bin", IMAGE)
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await install_root(csms, maker)
        now = datetime.now(UTC)
        request = signed_update(url, maker, maker.sign(IMAGE), 9,
                                retrieveDateTime=wire_time(now + timedelta(seconds=0.6)),
                                installDateTime=wire_time(now + timedelta(seconds=1.5)))
        assert await csms.call(CP_ID, "SignedUpdateFirmware", request) == {"status": "Accepted"}
        await csms.wait_for_call("SignedFirmwareStatusNotification", lambda p: p["status"] == "InstallScheduled")
        assert files.requests and files.requests[0].method == "GET"
        assert installer_of(charger).attempts == 0  # verified, but not installed before its time
        installing = await csms.wait_for_call("SignedFirmwareStatusNotification",
                                              lambda p: p["status"] == "Installing", timeout_s=5)
        assert installing.at >= now + timedelta(seconds=1.4)
        await charger.wait_for(lambda: charger.app.reexec_requested, what="the restart in place")
    assert [s for s, _ in signed_statuses(csms)] == ["DownloadScheduled", "Downloading", "Downloaded",
                                                     "SignatureVerified", "InstallScheduled", "Installing",
                                                     "InstallRebooting"]
