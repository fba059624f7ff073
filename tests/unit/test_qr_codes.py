"""Dynamic QR codes (issue 14 point 5): signed, expiring, one use, one connector - checked with an independent
verifier written from the documented format, not with the code under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import parse_qs, urlsplit

import pytest

from chargepoint.runtime.qr_codes import QrCodes, is_qr_id_tag

KEY = b"shared-with-the-payment-backend"
URL = "https://pay.example.com/start"


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now_s


def backend_reads(url: str, key: bytes = KEY) -> tuple[dict[str, str], str]:
    """What the operator's payment page does with a scanned code (docs/payments.md): check, then derive the idTag."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    message = f"{query['cp']}|{query['c']}|{query['n']}|{query['e']}".encode()
    expected = base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode()
    assert hmac.compare_digest(expected, query["s"]), "signature"
    id_tag = "Q" + hmac.new(key, f"idtag|{query['n']}".encode(), hashlib.sha256).hexdigest().upper()[:19]
    return query, id_tag


def codes(clock: Clock, validity_s: int = 300) -> QrCodes:
    return QrCodes(URL, KEY, "CP-7", validity_s, clock)


def test_a_code_carries_what_the_backend_needs_signed() -> None:
    clock = Clock()
    attempt = codes(clock).current(2)
    query, id_tag = backend_reads(attempt.url)
    assert attempt.url.startswith(URL + "?")
    assert (query["cp"], query["c"], int(query["e"])) == ("CP-7", "2", int(clock.now_s) + 300)
    assert id_tag == attempt.id_tag and len(id_tag) == 20 and is_qr_id_tag(id_tag)
    with pytest.raises(AssertionError, match="signature"):
        backend_reads(attempt.url, b"another key")


def test_each_code_is_used_once_on_its_own_connector() -> None:
    clock = Clock()
    qr = codes(clock)
    one, two = qr.current(1), qr.current(2)
    assert one.nonce != two.nonce
    assert qr.claim(2, one.id_tag) == "the code was shown on connector 1, not 2"
    assert qr.claim(1, one.id_tag.lower()) is None  # idTags are case-insensitive (CiString)
    assert qr.claim(1, one.id_tag) == "the code was used already (a replay)"
    assert qr.current(1).nonce != one.nonce  # a used code is replaced
    forged = "Q" + "0" * 19
    assert qr.claim(1, forged) is not None and "forged" in str(qr.claim(1, forged))


def test_a_code_expires_and_is_replaced_before_it_does() -> None:
    clock = Clock()
    qr = codes(clock, validity_s=300)
    first = qr.current(1)
    clock.now_s += 200
    assert qr.current(1) is first
    clock.now_s += 75  # 25 s left, less than a tenth of its life: a new code is shown ...
    second = qr.current(1)
    assert second.nonce != first.nonce
    assert qr.claim(1, first.id_tag) is None  # ... but a driver paying for the old one still gets the session
    third = qr.current(1)
    clock.now_s = third.expires_at_s + 1
    assert qr.claim(1, third.id_tag) == "the code has expired"


def test_only_the_qr_shape_is_a_qr_id_tag() -> None:
    assert is_qr_id_tag("Q0123456789ABCDEF012")
    assert not is_qr_id_tag("04A1B2C3")
    assert not is_qr_id_tag("Q0123456789ABCDEF01")  # 19 characters
    assert not is_qr_id_tag("Q0123456789ABCDEFG12")
