"""The charger's certificate store: root certificates the CSMS installed, and the charge point certificate.

Protocol-neutral (OCPP 1.6 security extension and OCPP 2.0.1 name the same things): PEM files under
``<storage.dir>/certs/`` (directory mode 0700):

- ``CentralSystemRootCertificate/<sha256 of the DER>.pem`` and ``ManufacturerRootCertificate/...`` (0644): self-signed
  CA certificates, at most ``max_roots`` of both kinds together;
- ``ChargePointCertificate/cert.pem`` (0644, the chain as the CSMS sent it, leaf first) and ``key.pem`` (0600): the
  client certificate for security profile 3, made from a key pair generated here (``new_key_and_csr``), so the
  private key never leaves the charger; ``pending-key.pem`` (0600) is the key of a signing request not yet answered;
  ``previous-cert.pem``/``previous-key.pem`` keep the certificate a new one replaced until the new one has proven
  itself (``restore_previous``).

Every file is written to a temporary file created with its final mode, flushed to disk and renamed into place, so a
power cut leaves the old file or the new one, and a key is never readable by others, not even for a moment.

Hash data (``CertificateHashData``) is computed as OCPP defines it (as OCSP's CertID): the hash of the DER-encoded
issuer name, the hash of the issuer's public key (the contents of the subjectPublicKey BIT STRING), and the serial
number in lowercase hexadecimal without leading zeros. The certificates stored here are self-signed roots, so the
issuer's key is their own.

Blocking (small files, an fsync each): the OCPP adapter calls the writing methods through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import itertools
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

DIR_MODE = 0o700
KEY_MODE = 0o600
CERT_MODE = 0o644
HASH_ALGORITHMS = {"SHA256": hashlib.sha256, "SHA384": hashlib.sha384, "SHA512": hashlib.sha512}
CHARGE_POINT = "ChargePointCertificate"


class RootKind(enum.StrEnum):
    """InstallCertificate's certificateUse."""

    CentralSystemRootCertificate = "CentralSystemRootCertificate"
    ManufacturerRootCertificate = "ManufacturerRootCertificate"


class CertificateRefused(ValueError):
    """A certificate (or chain) that does not pass the checks; the message says why (techInfo, logs)."""


class StoreFull(CertificateRefused):
    """No room for another root certificate."""


@dataclass(frozen=True, slots=True)
class HashData:
    """OCPP CertificateHashDataType."""

    hash_algorithm: str
    issuer_name_hash: str
    issuer_key_hash: str
    serial_number: str

    def to_wire(self) -> dict[str, str]:
        return {"hashAlgorithm": self.hash_algorithm, "issuerNameHash": self.issuer_name_hash,
                "issuerKeyHash": self.issuer_key_hash, "serialNumber": self.serial_number}

    def matches(self, wire: dict[str, str]) -> bool:
        """Whether hash data as a CSMS sent it names this certificate (hex in any case, serial with or without
        leading zeros)."""
        try:
            return (wire["hashAlgorithm"] == self.hash_algorithm
                    and wire["issuerNameHash"].lower() == self.issuer_name_hash
                    and wire["issuerKeyHash"].lower() == self.issuer_key_hash
                    and (wire["serialNumber"].lower().lstrip("0") or "0") == self.serial_number)
        except (KeyError, AttributeError):
            return False


def hash_data(certificate: x509.Certificate, issuer: x509.Certificate | None = None,
              algorithm: str = "SHA256") -> HashData:
    """The certificate's hash data; ``issuer`` is the certificate that issued it (itself when None: a root)."""
    digest = HASH_ALGORITHMS[algorithm]
    issuer_key = subject_public_key_bits(issuer or certificate)
    return HashData(
        hash_algorithm=algorithm,
        issuer_name_hash=digest(certificate.issuer.public_bytes()).hexdigest(),
        issuer_key_hash=digest(issuer_key).hexdigest(),
        serial_number=format(certificate.serial_number, "x"),
    )


def subject_public_key_bits(certificate: x509.Certificate) -> bytes:
    """The contents of the certificate's subjectPublicKey BIT STRING, exactly as encoded in the certificate."""
    tag, tbs_contents, _ = _der_element(certificate.tbs_certificate_bytes, 0)
    tbs = _der_items(tbs_contents)
    if tbs and tbs[0][0] == 0xA0:  # [0] EXPLICIT version
        tbs = tbs[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo
    spki = _der_items(tbs[5][1])
    tag, bits = spki[1]
    if tag != 0x03 or not bits or bits[0] != 0:
        raise CertificateRefused("unexpected subjectPublicKeyInfo encoding")
    return bits[1:]  # after the unused-bits octet


def _der_items(contents: bytes) -> list[tuple[int, bytes]]:
    """The (tag, contents) of each element in the contents of a DER SEQUENCE."""
    items = []
    offset = 0
    while offset < len(contents):
        tag, value, offset = _der_element(contents, offset)
        items.append((tag, value))
    return items


def _der_element(der: bytes, offset: int) -> tuple[int, bytes, int]:
    tag, length = der[offset], der[offset + 1]
    offset += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(der[offset:offset + count], "big")
        offset += count
    return tag, der[offset:offset + length], offset + length


def load_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM text, in order; refused if there is none or one does not parse."""
    try:
        chain = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except ValueError as exc:
        raise CertificateRefused(f"not a PEM certificate: {exc}") from None
    return chain


def check_current(certificate: x509.Certificate, now: datetime, what: str = "certificate") -> None:
    if now < certificate.not_valid_before_utc:
        raise CertificateRefused(f"{what} not valid before {certificate.not_valid_before_utc.isoformat()}")
    if now > certificate.not_valid_after_utc:
        raise CertificateRefused(f"{what} expired {certificate.not_valid_after_utc.isoformat()}")


def is_ca(certificate: x509.Certificate) -> bool:
    try:
        constraints = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s name and key signed ``certificate``."""
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def verify_chain(chain: Sequence[x509.Certificate], anchors: Sequence[x509.Certificate], now: datetime) -> None:
    """``chain`` (leaf first) is current and each certificate is issued by the next, the last by one of ``anchors``
    (or is one of them); the issuers are CA certificates. Raises ``CertificateRefused`` saying why not."""
    if not chain:
        raise CertificateRefused("empty certificate chain")
    for position, certificate in enumerate(chain):
        check_current(certificate, now, "the leaf certificate" if position == 0 else f"chain certificate {position}")
    for position, (certificate, issuer) in enumerate(itertools.pairwise(chain)):
        if not is_ca(issuer):
            raise CertificateRefused(f"chain certificate {position + 1} is not a CA certificate")
        if not issued_by(certificate, issuer):
            raise CertificateRefused(f"chain certificate {position} is not signed by the next one")
    last = chain[-1]
    anchored = any(last == anchor or (is_ca(anchor) and issued_by(last, anchor)) for anchor in anchors)
    if not anchored:
        raise CertificateRefused(f"the chain does not lead to a trusted root (issuer {last.issuer.rfc4514_string()})")


class CertificateStore:
    def __init__(self, directory: Path, max_roots: int = 10) -> None:
        self.directory = directory
        self.max_roots = max_roots

    # ----------------------------------------------------------------- files

    def _dir(self, name: str) -> Path:
        path = self.directory / name
        for each in (self.directory, path):
            each.mkdir(mode=DIR_MODE, exist_ok=True)
            os.chmod(each, DIR_MODE)
        return path

    @staticmethod
    def _write(path: Path, data: bytes, mode: int) -> None:
        """Atomically replace ``path``; the temporary file has ``mode`` from its creation on."""
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_dir(path.parent)

    # ----------------------------------------------------------------- root certificates

    def roots(self, kind: RootKind) -> list[x509.Certificate]:
        directory = self.directory / kind.value
        found = []
        for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
            try:
                found.append(x509.load_pem_x509_certificate(path.read_bytes()))
            except (OSError, ValueError) as exc:
                log.warning("ignoring unreadable certificate %s: %s", path, exc)
        return found

    def csms_roots_pem(self) -> str:
        """The installed CentralSystemRootCertificates as one PEM text (trusted for the CSMS's TLS certificate)."""
        return "".join(certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")
                       for certificate in self.roots(RootKind.CentralSystemRootCertificate))

    def root_count(self) -> int:
        return sum(len(self.roots(kind)) for kind in RootKind)

    def install_root(self, kind: RootKind, pem: str, now: datetime) -> x509.Certificate:
        """Check and store a root certificate. Raises ``CertificateRefused`` (``StoreFull``) if it may not be
        installed, ``OSError`` if it could not be written."""
        chain = load_chain(pem)
        if len(chain) != 1:
            raise CertificateRefused(f"expected one certificate, got {len(chain)}")
        [certificate] = chain
        if not is_ca(certificate):
            raise CertificateRefused("not a CA certificate (basicConstraints CA:TRUE missing)")
        if certificate.issuer != certificate.subject or not issued_by(certificate, certificate):
            raise CertificateRefused("not a root certificate (not self-signed)")
        check_current(certificate, now)
        if any(certificate == other for other in self.roots(kind)):
            raise CertificateRefused("already installed")
        if self.root_count() >= self.max_roots:
            raise StoreFull(f"the certificate store is full ({self.max_roots}, CertificateStoreMaxLength)")
        der = certificate.public_bytes(serialization.Encoding.DER)
        path = self._dir(kind.value) / f"{hashlib.sha256(der).hexdigest()}.pem"
        self._write(path, certificate.public_bytes(serialization.Encoding.PEM), CERT_MODE)
        log.info("installed %s %s", kind.value, certificate.subject.rfc4514_string())
        return certificate

    def find_root(self, wire: dict[str, str]) -> tuple[RootKind, x509.Certificate] | None:
        algorithm = wire.get("hashAlgorithm", "")
        if algorithm not in HASH_ALGORITHMS:
            return None
        for kind in RootKind:
            for certificate in self.roots(kind):
                if hash_data(certificate, algorithm=algorithm).matches(wire):
                    return kind, certificate
        return None

    def delete_root(self, kind: RootKind, certificate: x509.Certificate) -> None:
        der = certificate.public_bytes(serialization.Encoding.DER)
        path = self.directory / kind.value / f"{hashlib.sha256(der).hexdigest()}.pem"
        path.unlink()
        _fsync_dir(path.parent)
        log.info("deleted %s %s", kind.value, certificate.subject.rfc4514_string())

    # ----------------------------------------------------------------- the charge point certificate

    @property
    def _cp(self) -> Path:
        return self.directory / CHARGE_POINT

    def charge_point_certificate(self) -> tuple[Path, Path] | None:
        """(chain file, key file) of the installed charge point certificate, or None."""
        cert, key = self._cp / "cert.pem", self._cp / "key.pem"
        return (cert, key) if cert.is_file() and key.is_file() else None

    def new_key_and_csr(self, common_name: str, organization: str) -> str:
        """A new EC P-256 key pair (kept as the pending key, 0600) and its PKCS#10 request (PEM)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            names.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(names)).sign(key, hashes.SHA256())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        self._write(self._dir(CHARGE_POINT) / "pending-key.pem", pem, KEY_MODE)
        return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def pending_public_key(self) -> bytes | None:
        """The SubjectPublicKeyInfo (DER) of the pending key, or None when no request is pending."""
        path = self._cp / "pending-key.pem"
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError:
            return None
        return key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)

    def install_charge_point_certificate(self, chain_pem: str) -> None:
        """The signed chain for the pending key becomes the charge point certificate; the one it replaces is kept
        as the previous one until ``forget_previous`` or ``restore_previous``."""
        directory = self._dir(CHARGE_POINT)
        pending = directory / "pending-key.pem"
        key_pem = pending.read_bytes()
        current = self.charge_point_certificate()
        if current is not None:
            os.replace(current[0], directory / "previous-cert.pem")
            os.replace(current[1], directory / "previous-key.pem")
        else:  # nothing of ours before it: the config file's certificate is the previous one
            for name in ("previous-cert.pem", "previous-key.pem"):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()
        self._write(directory / "key.pem", key_pem, KEY_MODE)
        self._write(directory / "cert.pem", chain_pem.encode("utf-8"), CERT_MODE)
        pending.unlink()
        _fsync_dir(directory)

    def restore_previous(self) -> None:
        """The new charge point certificate did not work: back to the one it replaced (or to none of ours, so the
        config file's certificate is used)."""
        directory = self._cp
        previous = directory / "previous-cert.pem", directory / "previous-key.pem"
        if previous[0].is_file() and previous[1].is_file():
            os.replace(previous[1], directory / "key.pem")
            os.replace(previous[0], directory / "cert.pem")
        else:
            for name in ("cert.pem", "key.pem"):
                with contextlib.suppress(FileNotFoundError):
                    (directory / name).unlink()
        _fsync_dir(directory)

    def forget_previous(self) -> None:
        """The new charge point certificate works: the previous one and its key are deleted."""
        for name in ("previous-cert.pem", "previous-key.pem"):
            with contextlib.suppress(FileNotFoundError):
                (self._cp / name).unlink()


def trust_anchors(store: CertificateStore, ca_file: Path | None) -> list[x509.Certificate]:
    """What a chain from the CSMS must lead to: the installed CentralSystemRootCertificates and the CA file the
    CSMS connection uses."""
    anchors = store.roots(RootKind.CentralSystemRootCertificate)
    if ca_file is not None:
        try:
            anchors += x509.load_pem_x509_certificates(ca_file.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("cannot read the CA file %s: %s", ca_file, exc)
    return anchors


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
