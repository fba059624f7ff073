"""WebSocket transport to the CSMS: URL, security profiles and reconnect back-off (the keep-alive follows
WebSocketPingInterval as it changes: ``v16/connection.py``)."""

from __future__ import annotations

import base64
import random
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    """TLS >= 1.2 with the server certificate verified (system store or ``ca_file``); client cert for profile 3."""
    if not settings.csms_url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.security_profile == 3 and settings.client_cert_file and settings.client_key_file:
        context.load_cert_chain(str(settings.client_cert_file), str(settings.client_key_file))
    return context


def backoff_delays_s(
    minimum_s: float = 1.0, maximum_s: float = 60.0, rng: random.Random | None = None
) -> Iterator[float]:
    """Capped exponential back-off with full jitter: a fleet that lost its CSMS does not reconnect in lockstep."""
    rng = rng or random.Random()
    ceiling_s = minimum_s
    while True:
        yield minimum_s + rng.uniform(0, ceiling_s)
        ceiling_s = min(maximum_s, ceiling_s * 2)
