"""Signed releases: what is accepted, and every way a package is refused before anything is installed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from chargepoint.ocpp.file_transfer import InstallRefused
from chargepoint.release.build import main as build_main
from chargepoint.release.package import (
    MANIFEST,
    PAYLOAD,
    SIGNATURE,
    Trust,
    build_payload,
    check_version,
    open_release,
    version_key,
)
from tests.release.kit import Manufacturer, fake_wheel, make_release, manufacturer, member, pem, rewrite_tar


@pytest.fixture(scope="module")
def maker() -> Manufacturer:
    return manufacturer("ec", "Release Maker")


@pytest.fixture
def release(tmp_path: Path, maker: Manufacturer) -> Path:
    wheels = [fake_wheel(tmp_path / "wheels"), fake_wheel(tmp_path / "wheels", "websockets", "13.1")]
    return make_release(wheels, maker, tmp_path / "dist")


def trusted(maker: Manufacturer) -> Trust:
    return Trust(roots=[maker.root])


def refused(image: Path, trust: Trust, work: Path, *, verified: bool = False) -> InstallRefused:
    with pytest.raises(InstallRefused) as info:
        open_release(image, work, trust, verified=verified)
    return info.value


def test_a_release_signed_under_the_manufacturers_root_is_opened_with_every_wheel(
        tmp_path: Path, release: Path, maker: Manufacturer) -> None:
    opened = open_release(release, tmp_path / "work", trusted(maker))
    assert opened.version == "0.2.0"
    assert opened.signer == maker.signer.subject.rfc4514_string()
    assert sorted(p.name for p in opened.wheels.iterdir()) == ["chargepoint-0.2.0-py3-none-any.whl",
                                                               "websockets-13.1-py3-none-any.whl"]


def test_a_bare_public_key_checks_a_release_without_a_certificate(tmp_path: Path, maker: Manufacturer) -> None:
    release = make_release([fake_wheel(tmp_path / "w")], maker, tmp_path / "dist", with_cert=False)
    key = maker.signer_key.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    assert open_release(release, tmp_path / "work", Trust(public_keys=[key])).signer.startswith("public key ")
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert "not signed by a trusted key" in str(refused(release, Trust(public_keys=[other]), tmp_path / "w2"))


def test_a_tampered_payload_is_refused(tmp_path: Path, release: Path, maker: Manufacturer) -> None:
    payload = bytearray(member(release, PAYLOAD))
    payload[len(payload) // 2] ^= 0x01
    tampered = tmp_path / "tampered.tar"
    rewrite_tar(release, tampered, {PAYLOAD: bytes(payload)})
    error = refused(tampered, trusted(maker), tmp_path / "work")
    assert "signature does not match" in str(error) and error.event == "InvalidFirmwareSignature"


def test_an_unsigned_package_is_refused_unless_its_signature_was_checked_by_the_caller(
        tmp_path: Path, release: Path, maker: Manufacturer) -> None:
    payload = release.with_name("chargepoint-0.2.0.payload.tar")
    assert "is not signed" in str(refused(payload, trusted(maker), tmp_path / "w1"))
    no_signature = tmp_path / "nosig.tar"
    rewrite_tar(release, no_signature, {SIGNATURE: None})
    assert "is not signed" in str(refused(no_signature, trusted(maker), tmp_path / "w2"))
    # SignedUpdateFirmware: firmware.py checked the payload's signature from the request.
    assert open_release(payload, tmp_path / "w3", Trust(), verified=True).version == "0.2.0"
    garbage = tmp_path / "firmware.bin"
    garbage.write_bytes(b"\x7fELF not a release")
    assert "not a chargepoint release" in str(refused(garbage, trusted(maker), tmp_path / "w4"))


def test_a_release_signed_by_another_manufacturer_or_with_no_key_configured_is_refused(
        tmp_path: Path, release: Path, maker: Manufacturer) -> None:
    other = manufacturer("ec", "Someone Else")
    error = refused(release, Trust(roots=[other.root]), tmp_path / "w1")
    assert "not issued by an installed ManufacturerRootCertificate" in str(error)
    assert error.event == "InvalidFirmwareSigningCertificate"
    assert "no key to check the release with" in str(refused(release, Trust(), tmp_path / "w2"))


def resigned(payload: bytes, maker: Manufacturer, release: Path, target: Path) -> Path:
    """A payload changed by someone holding the signing key: the signature holds, the content checks must not."""
    key = maker.signer_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))) + b"\n"
    rewrite_tar(release, target, {PAYLOAD: payload, SIGNATURE: signature})
    return target


@pytest.mark.parametrize(("change", "reason"), [
    ("version", "the release says version 0.3.0 but holds chargepoint-0.2.0"),
    ("hash", "its SHA-256 is not the one release.json lists"),
    ("unlisted", "holds what a release does not: ../evil"),
    ("no-chargepoint", "disagree"),
])
def test_a_signed_payload_whose_content_does_not_add_up_is_refused(
        tmp_path: Path, release: Path, maker: Manufacturer, change: str, reason: str) -> None:
    payload_path = tmp_path / "payload.tar"
    payload_path.write_bytes(member(release, PAYLOAD))
    manifest = json.loads(member(payload_path, MANIFEST))
    edits: dict[str, bytes | None] = {}
    if change == "version":
        manifest["version"] = "0.3.0"
    elif change == "hash":
        edits["wheels/websockets-13.1-py3-none-any.whl"] = b"something else"
    elif change == "unlisted":
        edits["../evil"] = b"#!/bin/sh\n"
    else:
        del manifest["files"]["wheels/chargepoint-0.2.0-py3-none-any.whl"]
    edits[MANIFEST] = json.dumps(manifest).encode()
    changed = tmp_path / "changed-payload.tar"
    rewrite_tar(payload_path, changed, edits)
    image = resigned(changed.read_bytes(), maker, release, tmp_path / "changed.release.tar")
    assert reason in str(refused(image, trusted(maker), tmp_path / "work"))


def test_the_running_version_and_older_ones_are_refused_unless_downgrades_are_allowed() -> None:
    check_version("0.2.0", "0.1.0", allow_downgrade=False)
    with pytest.raises(InstallRefused, match="is the version running already"):
        check_version("0.1.0", "0.1.0", allow_downgrade=True)
    with pytest.raises(InstallRefused, match="downgrade is refused") as info:
        check_version("0.1.0", "0.2.0", allow_downgrade=False)
    assert info.value.event == "FirmwareDowngradeRefused"
    check_version("0.1.0", "0.2.0", allow_downgrade=True)


def test_versions_are_ordered_as_pep_440_orders_them() -> None:
    ordered = ["0.9", "1.0.dev1", "1.0a1", "1.0b2", "1.0rc1", "1.0", "1.0.post1", "1.0.1", "1.10"]
    assert sorted(ordered, key=version_key) == ordered
    assert version_key("1.0") == version_key("1.0.0")


def test_the_build_tool_signs_a_wheelhouse_and_verifies_it_as_a_charger_would(
        tmp_path: Path, maker: Manufacturer, capsys: pytest.CaptureFixture[str]) -> None:
    from cryptography.hazmat.primitives import serialization

    fake_wheel(tmp_path / "wheels", version="0.4.0")
    key = tmp_path / "signer.key"
    key.write_bytes(maker.signer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    cert = tmp_path / "signer.pem"
    cert.write_text(pem(maker.signer))
    root = tmp_path / "root.pem"
    root.write_text(pem(maker.root))
    assert build_main(["--wheels", str(tmp_path / "wheels"), "--key", str(key), "--cert", str(cert), "--out",
                       str(tmp_path / "dist")]) == 0
    release = tmp_path / "dist" / "chargepoint-0.4.0.release.tar"
    assert build_main(["verify", str(release), "--root", str(root)]) == 0
    assert "chargepoint 0.4.0, signed by CN=Release Maker Firmware Signing" in capsys.readouterr().out
    other = manufacturer("ec", "Other")
    root.write_text(pem(other.root))
    assert build_main(["verify", str(release), "--root", str(root)]) == 1
    assert "refused:" in capsys.readouterr().err


def test_a_payload_holds_exactly_one_chargepoint_wheel(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one chargepoint wheel"):
        build_payload([fake_wheel(tmp_path / "w", "click", "8.1.7")], tmp_path / "p.tar")
