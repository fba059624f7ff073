"""WebSocket transport to the CSMS: URL, security profiles and reconnect back-off (the keep-alive follows
WebSocketPingInterval as it changes: ``v16/connection.py``)."""

from __future__ import annotations

import base64
import random
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from websockets.exceptions import InvalidStatus

SUBPROTOCOL = "ocpp1.6"


@dataclass(frozen=True, slots=True)
class TransportSettings:
    csms_url: str
    charge_point_id: str
    security_profile: int = 0
    authorization_key: str | None = None
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    extra_ca_pem: str | None = None  # more trusted CAs (the CentralSystemRootCertificates the CSMS installed)
    open_timeout_s: float = 10.0
    max_frame_bytes: int = 1024 * 1024

    @property
    def url(self) -> str:
        return self.csms_url.rstrip("/") + "/" + self.charge_point_id


def basic_auth_header(charge_point_id: str, authorization_key: str) -> str:
    """Security profiles 1 and 2: HTTP Basic with user = charge point id, password = AuthorizationKey."""
    token = base64.b64encode(f"{charge_point_id}:{authorization_key}".encode()).decode("ascii")
    return f"Basic {token}"


def headers(settings: TransportSettings) -> dict[str, str]:
    if settings.security_profile in (1, 2) and settings.authorization_key:
        return {"Authorization": basic_auth_header(settings.charge_point_id, settings.authorization_key)}
    return {}


def tls_context(settings: TransportSettings) -> ssl.SSLContext | None:
    """TLS >= 1.2 with the server certificate verified (system store or ``ca_file``, and ``extra_ca_pem``); client
    cert for profile 3."""
    if not settings.csms_url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if settings.extra_ca_pem:
        context.load_verify_locations(cadata=settings.extra_ca_pem)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.security_profile == 3 and settings.client_cert_file and settings.client_key_file:
        context.load_cert_chain(str(settings.client_cert_file), str(settings.client_key_file))
    return context


# A connection that stayed up this long was a real one: the next reconnect starts the back-off again. Shorter ones
# (a server that accepts the WebSocket and closes it at once) keep it growing.
STABLE_LINK_S = 30.0


class Backoff:
    """Capped exponential back-off with full jitter: a fleet that lost its CSMS does not reconnect in lockstep."""

    def __init__(self, minimum_s: float = 1.0, maximum_s: float = 60.0, rng: random.Random | None = None) -> None:
        self.minimum_s = minimum_s
        self.maximum_s = maximum_s
        self._rng = rng or random.Random()
        self.ceiling_s = minimum_s  # the jitter range of the next delay
        self.last_max_s = minimum_s  # the longest the last delay could have been

    def next_s(self) -> float:
        self.last_max_s = self.minimum_s + self.ceiling_s
        delay_s = self.minimum_s + self._rng.uniform(0, self.ceiling_s)
        self.ceiling_s = min(self.maximum_s, self.ceiling_s * 2)
        return delay_s

    def link_was_up(self, duration_s: float) -> None:
        """A connection ended after ``duration_s``: only one that lasted resets the back-off."""
        if duration_s >= STABLE_LINK_S:
            self.ceiling_s = self.minimum_s


def describe_connect_failure(exc: BaseException, settings: TransportSettings) -> str:
    """Why a connection to the CSMS failed, in words a technician can act on: the TLS reason (protocol version,
    certificate, name), a refusal, a timeout, the HTTP status. The useful part is often the cause of what
    websockets raised, so the whole chain is searched."""
    parts = urlsplit(settings.csms_url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'wss' else 80)}"
    chain = _chain(exc)
    for error in chain:
        if isinstance(error, ssl.SSLCertVerificationError):
            reason = error.verify_message or error.reason or str(error)
            if "hostname" in reason.lower() or "ip address" in reason.lower():
                return f"TLS: the CSMS certificate is not for {parts.hostname} ({reason})"
            trusted = f"the CA in {settings.ca_file}" if settings.ca_file else "the system's CA store"
            return f"TLS: certificate verify failed ({reason}): the CSMS certificate must chain to {trusted}"
        if isinstance(error, ssl.SSLError):
            reason = str(error.reason or error).upper()
            if "VERSION" in reason or "UNSUPPORTED_PROTOCOL" in reason or "NO_PROTOCOLS" in reason:
                return f"TLS: no protocol version in common with the CSMS ({error.reason}); TLS 1.2 or newer is needed"
            if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason):
                return f"TLS: the CSMS refused our client certificate ({error.reason})"
            if isinstance(error, ssl.SSLEOFError):
                return "TLS: the CSMS closed the connection during the handshake"
            return f"TLS handshake failed ({error.reason or error})"
    for error in chain:
        if isinstance(error, InvalidStatus):
            return f"the CSMS answered HTTP {error.response.status_code} to the WebSocket upgrade"
        if isinstance(error, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve {parts.hostname} ({error.strerror})"
        if isinstance(error, TimeoutError):
            return f"no answer from {where} within {settings.open_timeout_s:g} s"
        if isinstance(error, ConnectionResetError | EOFError):
            if parts.scheme == "wss":
                return (f"{where} closed the connection during the TLS handshake (does it take TLS 1.2 or newer, "
                        "and our client certificate?)")
            return f"{where} closed the connection"
        if isinstance(error, OSError) and error.strerror:
            return f"{where}: {error.strerror}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    error: BaseException | None = exc
    while error is not None and error not in chain and len(chain) < 8:
        chain.append(error)
        error = error.__cause__ or error.__context__
    return chain
