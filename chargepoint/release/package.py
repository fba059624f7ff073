"""A chargepoint release: what is in it, how it is signed, and how it is checked before anything is installed.

Two files, both plain (uncompressed) tar archives, since the wheels inside are compressed already:

- the **payload** (``chargepoint-<version>.payload.tar``): ``release.json`` (``format``, ``name``, ``version``,
  ``files``: the SHA-256 of every other member) and ``wheels/*.whl``: chargepoint's wheel and a wheel of every
  dependency, for the charger's architecture and Python, so that the charger installs offline. Nothing else.
- the **signed release** (``chargepoint-<version>.release.tar``): ``payload.tar``, ``payload.sig`` (base64 ECDSA
  P-256 with SHA-256 over the payload's bytes; RSA is accepted as for SignedUpdateFirmware) and, unless the charger
  is to check it with a bare public key, ``signer.pem``: the signing certificate, issued by the manufacturer's root.

UpdateFirmware and ``chargepoint update FILE`` take the signed release. SignedUpdateFirmware downloads the payload
itself and brings the signature and the certificate in the request; ``firmware.py`` has checked them already.

The checks are those of the security extension's signed firmware (``chargepoint.ocpp.firmware_signature``): the
certificate against the ManufacturerRootCertificates (the CSMS's and ``[update] manufacturer_root_file``), the
signature with ``verify_image``; or the signature against ``[update] public_key_file``. Then the payload: only
``release.json`` and ``wheels/<name>.whl`` members, regular files, each hash as listed, nothing unlisted, and
chargepoint's wheel of the version ``release.json`` names. Every refusal is an ``InstallRefused`` naming the
reason. Blocking: the installer calls these in a worker thread.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from chargepoint.ocpp.file_transfer import InstallRefused, sha256_file
from chargepoint.ocpp.firmware_signature import (
    FirmwareSignatureError,
    InvalidCertificate,
    check_signing_certificate,
    verify_image,
)

FORMAT = 1
NAME = "chargepoint"
MANIFEST = "release.json"
PAYLOAD = "payload.tar"
SIGNATURE = "payload.sig"
CERTIFICATE = "signer.pem"
CHUNK_BYTES = 1024 * 1024
_WHEEL_MEMBER = re.compile(r"^wheels/[A-Za-z0-9][A-Za-z0-9_.+!-]*\.whl$")
_VERSION = re.compile(r"^(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?(?:\.dev(\d+))?(?:\+[A-Za-z0-9.]+)?$")

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Trust:
    """What a signed release is checked against: manufacturer roots (for the certificate in it) and public keys."""

    roots: Sequence[x509.Certificate] = ()
    public_keys: Sequence[PublicKey] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        return not self.roots and not self.public_keys


@dataclass(frozen=True)
class Release:
    """A verified release, unpacked in a work directory."""

    version: str
    payload_sha256: str
    wheels: Path
    signer: str  # who signed it, for the log: the certificate's subject or the key's fingerprint


# ------------------------------------------------------------------------------------------------ building


def build_payload(wheels: Sequence[Path], out: Path) -> str:
    """Write the payload of ``wheels`` (chargepoint's and its dependencies') to ``out``; returns the version."""
    ours = [w for w in wheels if wheel_name(w.name) == NAME]
    if len(ours) != 1:
        raise ValueError(f"a release holds exactly one chargepoint wheel, got {len(ours)}")
    version = wheel_version(ours[0].name)
    files = {f"wheels/{w.name}": sha256_file(w) for w in sorted(wheels)}
    manifest = {"format": FORMAT, "name": NAME, "version": version, "files": files,
                "built_at": datetime.now(UTC).isoformat(timespec="seconds")}
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode() + b"\n")
        for wheel in sorted(wheels):
            _add_bytes(tar, f"wheels/{wheel.name}", wheel.read_bytes())
    return version


def sign_payload(payload: Path, key: PrivateKey, certificate_pem: str | None, out: Path) -> None:
    """Write the signed release of ``payload`` to ``out``: the payload, its signature and the certificate."""
    data = payload.read_bytes()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    else:
        from cryptography.hazmat.primitives.asymmetric import padding

        signature = key.sign(data, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH),
                             hashes.SHA256())
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, PAYLOAD, data)
        _add_bytes(tar, SIGNATURE, base64.b64encode(signature) + b"\n")
        if certificate_pem is not None:
            _add_bytes(tar, CERTIFICATE, certificate_pem.encode())


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    info.mtime = 0  # the same wheels make the same payload
    tar.addfile(info, io.BytesIO(data))


# ------------------------------------------------------------------------------------------------ checking


def open_release(image: Path, work: Path, trust: Trust, *, verified: bool = False) -> Release:
    """Check ``image`` and unpack its wheels into ``work``; ``InstallRefused`` if it is not acceptable.

    ``verified``: ``image`` is a payload whose signature the caller checked (SignedUpdateFirmware). Otherwise it
    must be a signed release, checked against ``trust``."""
    work.mkdir(parents=True, exist_ok=True)
    members = _members(image)
    if verified:
        payload, signer = image, "the SignedUpdateFirmware request's certificate"
    elif PAYLOAD in members:
        payload, signer = _check_envelope(image, members, work, trust)
    elif MANIFEST in members:
        raise InstallRefused(f"{image.name} is not signed: a release payload without its signature (sign it with "
                             "python -m chargepoint.release.build, or send it by SignedUpdateFirmware)")
    else:
        raise InstallRefused(f"{image.name} is not a chargepoint release (no {PAYLOAD} or {MANIFEST} in it)")
    version, wheels = _unpack_payload(payload, work / "wheels")
    return Release(version, sha256_file(payload), wheels, signer)


def _members(image: Path) -> set[str]:
    try:
        with tarfile.open(image, "r:") as tar:
            return {m.name for m in tar.getmembers()}
    except (tarfile.TarError, OSError) as exc:
        raise InstallRefused(f"{image.name} is not a chargepoint release (not a tar archive: {exc})") from None


def _check_envelope(image: Path, members: set[str], work: Path, trust: Trust) -> tuple[Path, str]:
    unexpected = members - {PAYLOAD, SIGNATURE, CERTIFICATE}
    if unexpected:
        raise InstallRefused(f"{image.name}: unexpected members in a signed release: {', '.join(sorted(unexpected))}")
    if SIGNATURE not in members:
        raise InstallRefused(f"{image.name} is not signed (no {SIGNATURE})")
    payload = work / PAYLOAD
    with tarfile.open(image, "r:") as tar:
        _extract_regular(tar, PAYLOAD, payload)
        signature = _read_regular(tar, SIGNATURE).decode("ascii", errors="replace").strip()
        certificate_pem = _read_regular(tar, CERTIFICATE).decode("ascii", errors="replace") if (
            CERTIFICATE in members) else None
    if trust.empty:
        raise InstallRefused("no key to check the release with: set [update] manufacturer_root_file or "
                             "public_key_file, or have the CSMS install a ManufacturerRootCertificate")
    reasons = []
    if certificate_pem is not None and trust.roots:
        try:
            certificate = check_signing_certificate(certificate_pem, trust.roots)
        except InvalidCertificate as exc:
            reasons.append(str(exc))
        else:
            try:
                verify_image(payload, signature, certificate)
            except FirmwareSignatureError as exc:
                raise InstallRefused(f"{image.name}: {exc}") from None
            return payload, certificate.subject.rfc4514_string()
    for key in trust.public_keys:
        try:
            verify_image(payload, signature, key)
        except FirmwareSignatureError as exc:
            reasons.append(f"{exc} (public key {key_fingerprint(key)})")
            continue
        return payload, f"public key {key_fingerprint(key)}"
    if certificate_pem is None and not trust.public_keys:
        reasons.append("it has no signing certificate and no public key is configured")
    event = "InvalidFirmwareSigningCertificate" if certificate_pem is not None and not trust.public_keys else (
        "InvalidFirmwareSignature")
    raise InstallRefused(f"{image.name}: not signed by a trusted key: {'; '.join(reasons)}", event)


def _unpack_payload(payload: Path, wheels: Path) -> tuple[str, Path]:
    try:
        tar = tarfile.open(payload, "r:")  # noqa: SIM115 (closed by the with below, once it is known to open)
    except (tarfile.TarError, OSError) as exc:
        raise InstallRefused(f"the release payload is not a tar archive ({exc})") from None
    with tar:
        members = tar.getmembers()
        names = [m.name for m in members]
        if len(names) != len(set(names)):
            raise InstallRefused("the release payload names a member twice")
        bad = [n for n in names if n != MANIFEST and not _WHEEL_MEMBER.match(n)]
        if bad:
            raise InstallRefused(f"the release payload holds what a release does not: {', '.join(sorted(bad)[:5])}")
        if MANIFEST not in names:
            raise InstallRefused(f"the release payload has no {MANIFEST}")
        try:
            manifest = json.loads(_read_regular(tar, MANIFEST))
            files = dict(manifest["files"])
            version = str(manifest["version"])
            if manifest.get("format") != FORMAT or manifest.get("name") != NAME:
                raise ValueError(f"format {manifest.get('format')!r} of {manifest.get('name')!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise InstallRefused(f"{MANIFEST} is not a chargepoint release manifest ({exc})") from None
        if not _VERSION.match(version):
            raise InstallRefused(f"{MANIFEST} names the version {version!r}, not a release version")
        listed, present = set(files), set(names) - {MANIFEST}
        if listed != present:
            raise InstallRefused(f"the release payload and its {MANIFEST} disagree: missing "
                                 f"{sorted(listed - present)}, unlisted {sorted(present - listed)}")
        ours = [n for n in present if wheel_name(Path(n).name) == NAME]
        if len(ours) != 1 or wheel_version(Path(ours[0]).name) != version:
            raise InstallRefused(f"the release says version {version} but holds "
                                 f"{', '.join(Path(n).name for n in ours) or 'no chargepoint wheel'}")
        wheels.mkdir(parents=True, exist_ok=True)
        for name in sorted(present):
            target = wheels / Path(name).name
            _extract_regular(tar, name, target)
            if sha256_file(target) != files[name]:
                raise InstallRefused(f"{name}: its SHA-256 is not the one {MANIFEST} lists")
    return version, wheels


def _read_regular(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.getmember(name)
    source = tar.extractfile(member) if member.isreg() else None
    if source is None:
        raise InstallRefused(f"{name} in the release is not a regular file")
    with source:
        return source.read()


def _extract_regular(tar: tarfile.TarFile, name: str, target: Path) -> None:
    """Copy one regular member to ``target`` (never ``extract``: no path or link in the archive reaches the disk)."""
    member = tar.getmember(name)
    source = tar.extractfile(member) if member.isreg() else None
    if source is None:
        raise InstallRefused(f"{name} in the release is not a regular file")
    with source, target.open("wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            out.write(chunk)


# ------------------------------------------------------------------------------------------------ names and versions


def wheel_name(filename: str) -> str:
    """The normalized project name of a wheel file name."""
    return re.sub(r"[-_.]+", "-", filename.split("-", 1)[0]).lower()


def wheel_version(filename: str) -> str:
    parts = filename.split("-")
    return parts[1] if len(parts) >= 5 else ""


def version_key(version: str) -> tuple[tuple[int, ...], int, int, int, int]:
    """An order for release versions (PEP 440's common forms: 1.2.3, 1.2.3rc1, .postN, .devN)."""
    match = _VERSION.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a release version")
    release = tuple(int(p) for p in match.group(1).split("."))
    while len(release) > 1 and release[-1] == 0:
        release = release[:-1]
    pre = {"a": 0, "b": 1, "rc": 2}.get(match.group(2) or "", 3)
    pre_n = int(match.group(3) or 0)
    post = int(match.group(4)) if match.group(4) is not None else -1
    dev = int(match.group(5)) if match.group(5) is not None else 1 << 30
    if match.group(5) is not None and match.group(2) is None and match.group(4) is None:
        pre = -1  # 1.0.dev1 comes before 1.0a1
    return release, pre, pre_n, post, dev


def check_version(version: str, running: str, allow_downgrade: bool) -> None:
    """Refuse the running version again, and an older one unless ``allow_downgrade``."""
    try:
        new, old = version_key(version), version_key(running)
    except ValueError:
        return  # a development build running: any release may replace it
    if new == old:
        raise InstallRefused(f"chargepoint {version} is the version running already", None)
    if new < old and not allow_downgrade:
        raise InstallRefused(f"chargepoint {version} is older than the running {running}: a downgrade is refused "
                             "(an old signed release may have known flaws; [update] allow_downgrade, or "
                             "chargepoint update --allow-downgrade)", "FirmwareDowngradeRefused")


# ------------------------------------------------------------------------------------------------ keys


def load_roots(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file (one or more)."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except ValueError as exc:
        raise ValueError(f"{path}: no PEM certificate in it ({exc})") from None


def load_public_key(path: Path) -> PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise ValueError(f"{path}: an EC or RSA public key is needed, got {type(key).__name__}")
    return key


def key_fingerprint(key: PublicKey) -> str:
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]

