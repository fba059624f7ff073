"""Checks an OCMF dataset's signature with the meter's public key, as a driver's transparency software would: the
payload exactly as signed, ECDSA over SHA-256, the key as DER SubjectPublicKeyInfo in hex. For the demo and
technicians; the charger itself never needs to (it passes the meter's data on unaltered)."""

from __future__ import annotations

import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key


def verifies(ocmf: str, public_key_hex: str) -> bool:
    """True if ``ocmf`` (OCMF|payload|signature) carries a valid ECDSA-SHA256 signature by ``public_key_hex``."""
    try:
        tag, rest = ocmf.split("|", 1)
        payload, signature_json = rest.rsplit("|", 1)
        signature = json.loads(signature_json)
        if tag != "OCMF" or signature.get("SA", "ECDSA-secp256r1-SHA256") != "ECDSA-secp256r1-SHA256":
            return False
        data = bytes.fromhex(signature["SD"]) if signature.get("SE", "hex") == "hex" else b""
        key = load_der_public_key(bytes.fromhex(public_key_hex))
        if not isinstance(key, ec.EllipticCurvePublicKey):
            return False
        key.verify(data, payload.encode(), ec.ECDSA(hashes.SHA256()))
    except (ValueError, KeyError, TypeError, InvalidSignature):
        return False
    return True
