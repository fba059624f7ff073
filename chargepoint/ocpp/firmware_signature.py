"""Signed firmware (OCPP 1.6 security extension, SignedUpdateFirmware): is the signing certificate one of the
manufacturer's, and is the image signed by it?

Two checks, in this order, both before anything is installed:

1. ``check_signing_certificate``: the certificate the CSMS sends (PEM) must be issued directly by an installed
   ManufacturerRootCertificate (its signature verified with the root's key), valid now, and, where it says, meant
   for signatures (keyUsage digitalSignature). Anything else is ``InvalidCertificate``.
2. ``verify_image``: the signature (base64) over the whole image with the certificate's key and SHA-256: RSA
   (PSS, any salt length, or PKCS#1 v1.5, as signing tools make either) or ECDSA. Anything else is
   ``InvalidSignature``.

The image is hashed in chunks, so a large one never sits in memory. Blocking: call through ``asyncio.to_thread``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from chargepoint.errors import ChargePointError

CHUNK_BYTES = 1024 * 1024


class FirmwareSignatureError(ChargePointError, ValueError):
    """The signing certificate or the signature of a firmware image is not acceptable (the message says why)."""


class InvalidCertificate(FirmwareSignatureError):
    pass


class InvalidSignature(FirmwareSignatureError):
    pass


def check_signing_certificate(pem: str, roots: Sequence[x509.Certificate],
                              now: datetime | None = None) -> x509.Certificate:
    """The signing certificate, if a ManufacturerRootCertificate in ``roots`` issued it and it is valid now."""
    try:
        certificate = x509.load_pem_x509_certificate(pem.encode())
    except ValueError as exc:
        raise InvalidCertificate(f"the signing certificate is not a PEM X.509 certificate ({exc})") from None
    now = now or datetime.now(UTC)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        raise InvalidCertificate(f"the signing certificate is valid from {certificate.not_valid_before_utc} to "
                                 f"{certificate.not_valid_after_utc}, not now")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise InvalidCertificate("the signing certificate is not for digital signatures (keyUsage)")
    if not roots:
        raise InvalidCertificate("no ManufacturerRootCertificate is installed to check the signing certificate")
    for root in roots:
        if root.subject != certificate.issuer:
            continue
        try:
            certificate.verify_directly_issued_by(root)
        except (ValueError, TypeError, _CryptoInvalidSignature):
            continue
        if not root.not_valid_before_utc <= now <= root.not_valid_after_utc:
            raise InvalidCertificate(f"the ManufacturerRootCertificate {root.subject.rfc4514_string()} has expired")
        return certificate
    raise InvalidCertificate(f"the signing certificate ({certificate.subject.rfc4514_string()}, issued by "
                             f"{certificate.issuer.rfc4514_string()}) was not issued by an installed "
                             "ManufacturerRootCertificate")


SigningKey = x509.Certificate | ec.EllipticCurvePublicKey | rsa.RSAPublicKey


def verify_image(image: Path, signature_b64: str, certificate: SigningKey) -> str:
    """Check the signature over ``image``; returns the image's SHA-256 (hex) when it holds. ``certificate`` may
    also be a bare public key (a signed release checked against ``[update] public_key_file``)."""
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSignature("the signature is not base64") from None
    digest = hashlib.sha256()
    with image.open("rb") as data:
        while chunk := data.read(CHUNK_BYTES):
            digest.update(chunk)
    prehashed = utils.Prehashed(hashes.SHA256())
    key = certificate.public_key() if isinstance(certificate, x509.Certificate) else certificate
    try:
        if isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, digest.digest(), padding.PSS(padding.MGF1(hashes.SHA256()),
                                                                   padding.PSS.AUTO), prehashed)
            except _CryptoInvalidSignature:
                key.verify(signature, digest.digest(), padding.PKCS1v15(), prehashed)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, digest.digest(), ec.ECDSA(prehashed))
        else:
            raise InvalidSignature(f"signing keys of type {type(key).__name__} are not supported (RSA or EC)")
    except _CryptoInvalidSignature:
        raise InvalidSignature("the signature does not match the image and the signing certificate") from None
    return digest.hexdigest()
