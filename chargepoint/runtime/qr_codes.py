"""Dynamic QR codes for mobile payment: one per connector and attempt, signed, expiring, used once.

A code is the operator's payment page with these query parameters::

    https://pay.example.com/start?cp=<charge point id>&c=<connector>&n=<nonce>&e=<expiry, Unix s>&s=<signature>

``s`` is HMAC-SHA256 under the key shared with the payment backend over ``"<cp>|<c>|<n>|<e>"``, base64url without
padding. The backend checks ``s`` and ``e``, takes the payment, derives the attempt's idTag and asks the CSMS to
send ``RemoteStartTransaction(connectorId=<c>, idTag=<idTag>)``::

    idTag = "Q" + uppercase hex of HMAC-SHA256(key, "idtag|<n>"), first 19 characters (20 in all)

The charger starts a session for such an idTag only if it belongs to an attempt it showed on that connector, not
expired and not used before: a replayed, expired, forged or misdirected code starts nothing. Pure: the clock and
the nonces are given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

QR_ID_TAG = re.compile(r"Q[0-9A-F]{19}")
ATTEMPTS_KEPT = 8  # per connector: a code replaced while its driver pays stays valid until its own expiry


@dataclass(slots=True)
class QrAttempt:
    connector_id: int
    nonce: str
    expires_at_s: int
    url: str
    id_tag: str
    used: bool = False


def sign(key: bytes, charge_point_id: str, connector_id: int, nonce: str, expires_at_s: int) -> str:
    digest = hmac.new(key, f"{charge_point_id}|{connector_id}|{nonce}|{expires_at_s}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def id_tag_of(key: bytes, nonce: str) -> str:
    return "Q" + hmac.new(key, f"idtag|{nonce}".encode(), hashlib.sha256).hexdigest().upper()[:19]


def is_qr_id_tag(id_tag: str) -> bool:
    return QR_ID_TAG.fullmatch(id_tag) is not None


class QrCodes:
    def __init__(self, payment_url: str, key: bytes, charge_point_id: str, validity_s: int,
                 clock: Callable[[], float], new_nonce: Callable[[], str] | None = None) -> None:
        self.payment_url = payment_url
        self._key = key
        self.charge_point_id = charge_point_id
        self.validity_s = validity_s
        self._clock = clock
        self._new_nonce = new_nonce or (lambda: secrets.token_urlsafe(12))
        self._attempts: dict[int, list[QrAttempt]] = {}

    def current(self, connector_id: int) -> QrAttempt:
        """The code to show now: the last one while it is valid, else a new one."""
        now_s = self._clock()
        attempts = self._attempts.setdefault(connector_id, [])
        attempts[:] = [a for a in attempts if a.expires_at_s > now_s][-ATTEMPTS_KEPT:]
        # A code shown with less than a tenth of its life left is replaced: a driver needs time to pay.
        if attempts and not attempts[-1].used and attempts[-1].expires_at_s - now_s > self.validity_s / 10:
            return attempts[-1]
        nonce = self._new_nonce()
        expires_at_s = int(now_s) + self.validity_s
        query = urlencode({"cp": self.charge_point_id, "c": connector_id, "n": nonce, "e": expires_at_s,
                           "s": sign(self._key, self.charge_point_id, connector_id, nonce, expires_at_s)})
        separator = "&" if "?" in self.payment_url else "?"
        attempt = QrAttempt(connector_id, nonce, expires_at_s, f"{self.payment_url}{separator}{query}",
                            id_tag_of(self._key, nonce))
        attempts.append(attempt)
        return attempt

    def claim(self, connector_id: int, id_tag: str) -> str | None:
        """Use the attempt ``id_tag`` belongs to; None if it may start a session, else why not."""
        now_s = self._clock()
        for cid, attempts in self._attempts.items():
            for attempt in attempts:
                if not hmac.compare_digest(attempt.id_tag, id_tag.upper()):
                    continue
                if cid != connector_id:
                    return f"the code was shown on connector {cid}, not {connector_id}"
                if attempt.used:
                    return "the code was used already (a replay)"
                if attempt.expires_at_s <= now_s:
                    return "the code has expired"
                attempt.used = True
                return None
        return "no code shown by this charger has this idTag (forged, or expired long ago)"
