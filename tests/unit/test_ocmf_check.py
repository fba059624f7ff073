"""Our OCMF signature check agrees with the independent verifier (pyocmf) on datasets signed like a meter signs."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyocmf import OCMF

from chargepoint.cli.ocmf_check import verifies

PAYLOAD = json.dumps({"FV": "1.0", "GI": "chargepoint", "GS": "SN", "GV": "0.1.0", "PG": "T1", "MV": "Iskra",
                      "MM": "WM3M4C", "MS": "60000001", "MF": "2.0.4", "IS": True, "IF": ["RFID_PLAIN"],
                      "IT": "ISO14443", "ID": "04A1B2C3", "CT": "EVSEID", "CI": "DE*CPX*E1*1", "RD": [
                          {"TM": "2026-12-06T10:00:00,000+0000 S", "TX": "B", "RV": 1.234, "RI": "01-00:01.08.00",
                           "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"},
                          {"TM": "2026-12-06T11:00:00,000+0000 S", "TX": "E", "RV": 12.5, "RI": "01-00:01.08.00",
                           "RU": "kWh", "RT": "AC", "EF": "", "ST": "G"}]}, separators=(",", ":"))


def signed(key: ec.EllipticCurvePrivateKey) -> tuple[str, str]:
    signature = key.sign(PAYLOAD.encode(), ec.ECDSA(hashes.SHA256())).hex().upper()
    public = key.public_key().public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).hex().upper()
    return f'OCMF|{PAYLOAD}|{{"SA":"ECDSA-secp256r1-SHA256","SD":"{signature}"}}', public


def test_a_meters_dataset_verifies_here_and_with_pyocmf() -> None:
    ocmf, key = signed(ec.generate_private_key(ec.SECP256R1()))
    assert verifies(ocmf, key) and OCMF.from_string(ocmf).verify_signature(key)


@pytest.mark.parametrize("tamper", [
    lambda s: s.replace('"RV":12.5', '"RV":13.5'),
    lambda s: s.replace('"ID":"04A1B2C3"', '"ID":"04A1B2C4"'),
])
def test_a_tampered_dataset_fails_here_as_with_pyocmf(tamper: object) -> None:
    ocmf, key = signed(ec.generate_private_key(ec.SECP256R1()))
    changed = tamper(ocmf)  # type: ignore[operator]
    assert changed != ocmf
    assert not verifies(changed, key) and not OCMF.from_string(changed).verify_signature(key)


def test_another_key_or_garbage_fails() -> None:
    ocmf, _ = signed(ec.generate_private_key(ec.SECP256R1()))
    _, other = signed(ec.generate_private_key(ec.SECP256R1()))
    assert not verifies(ocmf, other)
    assert not verifies("not ocmf", other) and not verifies(ocmf, "zz")
