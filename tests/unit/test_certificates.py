"""The certificate store (chargepoint/ocpp/certificates.py): hash data as OCPP defines it, checked against
cryptography's OCSP CertID; chain checks; file modes; going back to the previous charge point certificate; and
that the diagnostics bundle's scrubber removes the store's private keys."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from chargepoint.ocpp.certificates import (
    CertificateRefused,
    CertificateStore,
    HashData,
    RootKind,
    StoreFull,
    hash_data,
    subject_public_key_bits,
    verify_chain,
)
from chargepoint.ocpp.diagnostics_bundle import scrub

NOW = datetime.now(UTC)


def name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def certificate(subject: str, key: Any, issuer: tuple[str, Any] | None = None, *, ca: bool = True,
                serial: int | None = None, days: tuple[int, int] = (-1, 30)) -> x509.Certificate:
    issuer_name, issuer_key = issuer or (subject, key)
    return (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer_name))
            .public_key(key.public_key()).serial_number(serial or x509.random_serial_number())
            .not_valid_before(NOW + timedelta(days=days[0])).not_valid_after(NOW + timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer_key, hashes.SHA256()))


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.mark.parametrize("algorithm", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()])
@pytest.mark.parametrize("key_kind", ["ec", "rsa"])
def test_hash_data_is_the_ocsp_cert_id(algorithm: hashes.HashAlgorithm, key_kind: str) -> None:
    root_key = ec_key() if key_kind == "ec" else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = certificate("Root", root_key)
    leaf = certificate("Leaf", ec_key(), ("Root", root_key), ca=False)
    for cert, issuer in ((root, None), (leaf, root)):
        ours = hash_data(cert, issuer, algorithm.name.upper())
        request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer or cert, algorithm).build()
        assert ours == HashData(algorithm.name.upper(), request.issuer_name_hash.hex(),
                                request.issuer_key_hash.hex(), format(request.serial_number, "x"))


def test_the_issuer_key_is_the_bit_string_contents() -> None:
    key = ec_key()
    root = certificate("Root", key)
    assert subject_public_key_bits(root) == key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def test_serial_numbers_are_lowercase_hex_without_leading_zeros_and_match_in_any_form() -> None:
    root = certificate("Root", ec_key(), serial=0x0ABCDEF)
    data = hash_data(root)
    assert data.serial_number == "abcdef"
    wire = data.to_wire()
    assert data.matches(wire)
    assert data.matches(wire | {"serialNumber": "000ABCDEF", "issuerKeyHash": wire["issuerKeyHash"].upper()})
    assert not data.matches(wire | {"serialNumber": "abcdee"})
    assert not data.matches(wire | {"hashAlgorithm": "SHA384"})  # the hashes are SHA256 ones
    assert not data.matches({"hashAlgorithm": "SHA256"})


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_roots_are_checked_counted_and_stored_world_readable_in_a_private_directory(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs", max_roots=2)
    first, second = certificate("One", ec_key()), certificate("Two", ec_key())
    store.install_root(RootKind.CentralSystemRootCertificate, pem(first), NOW)
    assert mode(tmp_path / "certs") == 0o700
    [path] = (tmp_path / "certs" / "CentralSystemRootCertificate").iterdir()
    assert mode(path) == 0o644
    with pytest.raises(CertificateRefused, match="already installed"):
        store.install_root(RootKind.CentralSystemRootCertificate, pem(first), NOW)
    store.install_root(RootKind.ManufacturerRootCertificate, pem(second), NOW)
    with pytest.raises(StoreFull):
        store.install_root(RootKind.ManufacturerRootCertificate, pem(certificate("Three", ec_key())), NOW)
    assert store.roots(RootKind.ManufacturerRootCertificate) == [second]
    assert store.csms_roots_pem() == pem(first)
    found = store.find_root(hash_data(second, algorithm="SHA512").to_wire())
    assert found == (RootKind.ManufacturerRootCertificate, second)
    store.delete_root(*found)
    assert store.roots(RootKind.ManufacturerRootCertificate) == []


@pytest.mark.parametrize(("text", "reason"), [
    ("hello", "not a PEM certificate"),
    (pem(certificate("Leaf", ec_key(), ca=False)), "not a CA certificate"),
    (pem(certificate("Sub", ec_key(), ("Root", ec_key()))), "not self-signed"),
    (pem(certificate("Old", ec_key(), days=(-10, -1))), "expired"),
    (pem(certificate("Later", ec_key(), days=(1, 10))), "not valid before"),
])
def test_roots_that_are_refused(tmp_path: Path, text: str, reason: str) -> None:
    store = CertificateStore(tmp_path / "certs")
    with pytest.raises(CertificateRefused, match=reason):
        store.install_root(RootKind.CentralSystemRootCertificate, text, NOW)
    assert store.root_count() == 0


def test_verify_chain() -> None:
    root_key, sub_key, leaf_key = ec_key(), ec_key(), ec_key()
    root = certificate("Root", root_key)
    sub = certificate("Sub", sub_key, ("Root", root_key))
    leaf = certificate("Leaf", leaf_key, ("Sub", sub_key), ca=False)
    verify_chain([leaf, sub], [root], NOW)
    verify_chain([leaf, sub, root], [root], NOW)
    with pytest.raises(CertificateRefused, match="trusted root"):
        verify_chain([leaf, sub], [certificate("Root", ec_key())], NOW)  # same name, another key
    with pytest.raises(CertificateRefused, match="not signed by the next"):
        verify_chain([leaf, root], [root], NOW)
    not_ca = certificate("Sub", sub_key, ("Root", root_key), ca=False)
    with pytest.raises(CertificateRefused, match="not a CA"):
        verify_chain([leaf, not_ca], [root], NOW)
    with pytest.raises(CertificateRefused, match="expired"):
        verify_chain([leaf, sub], [root], NOW + timedelta(days=60))


def test_the_charge_point_key_is_private_and_the_previous_certificate_can_come_back(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    assert store.charge_point_certificate() is None
    for round_ in (1, 2):
        csr = x509.load_pem_x509_csr(store.new_key_and_csr("CP-1", "CPO").encode())
        pending = tmp_path / "certs" / "ChargePointCertificate" / "pending-key.pem"
        assert mode(pending) == 0o600
        assert store.pending_public_key() == csr.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        store.install_charge_point_certificate(f"chain {round_}\n")
        cert, key = store.charge_point_certificate() or (Path(), Path())
        assert (mode(cert), mode(key)) == (0o644, 0o600)
        assert cert.read_text() == f"chain {round_}\n"
        assert store.pending_public_key() is None
    assert not [p for p in (tmp_path / "certs").rglob(".tmp-*")]
    store.restore_previous()  # the second did not work: the first is back
    cert, key = store.charge_point_certificate() or (Path(), Path())
    assert cert.read_text() == "chain 1\n" and mode(key) == 0o600
    store.restore_previous()  # nothing of ours before the first: the config file's certificate
    assert store.charge_point_certificate() is None


def test_forget_previous_deletes_the_old_key(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    for _ in range(2):
        store.new_key_and_csr("CP-1", "")
        store.install_charge_point_certificate("chain\n")
    directory = tmp_path / "certs" / "ChargePointCertificate"
    assert (directory / "previous-key.pem").exists()
    store.forget_previous()
    assert sorted(os.listdir(directory)) == ["cert.pem", "key.pem"]


def test_the_csr_names_the_cpo_only_when_there_is_one(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    with_cpo = x509.load_pem_x509_csr(store.new_key_and_csr("SERIAL-9", "Some CPO").encode())
    assert with_cpo.subject.rfc4514_string() == "O=Some CPO,CN=SERIAL-9"
    without = x509.load_pem_x509_csr(store.new_key_and_csr("SERIAL-9", "").encode())
    assert without.subject.rfc4514_string() == "CN=SERIAL-9"
    assert with_cpo.is_signature_valid and without.is_signature_valid


def test_the_diagnostics_scrubber_removes_the_stores_private_keys(tmp_path: Path) -> None:
    store = CertificateStore(tmp_path / "certs")
    store.new_key_and_csr("CP-1", "")
    key_text = (tmp_path / "certs" / "ChargePointCertificate" / "pending-key.pem").read_text()
    secret_lines = [line for line in key_text.splitlines() if not line.startswith("-----")]
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()).decode()
    text = f"before\n{key_text}between\n{rsa_key}after"
    scrubbed = scrub(text, [])
    assert "before" in scrubbed and "between" in scrubbed and "after" in scrubbed
    assert "PRIVATE KEY" not in scrubbed
    assert not any(line in scrubbed for line in secret_lines)
    assert not any(line in scrubbed for line in rsa_key.splitlines()[1:-1])
