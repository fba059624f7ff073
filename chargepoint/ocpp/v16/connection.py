"""The link to the CSMS: connect with the security profile's credentials, register, keep alive, reconnect.

Reconnects forever with capped, jittered back-off. Once connected: BootNotification until Accepted (CSMS calls
are answered meanwhile), then heartbeats at the interval the CSMS gave. ``call`` sends a message that is not
queued (status, heartbeat, authorize ...) only while registered; the outbox sends transaction messages through
``link`` itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chargepoint import __version__
from chargepoint.cancellation import raise_if_cancelling
from chargepoint.config.schema import IdentitySettings, OcppSettings
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.transport import SUBPROTOCOL, TransportSettings, backoff_delays_s, headers, tls_context
from chargepoint.ocpp.v16.link import CallFailed, Link
from chargepoint.ocpp.v16.wire import CsmsClock

log = logging.getLogger(__name__)

BOOT_RETRY_DEFAULT_S = 60
CALL_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 2.0

LinkFactory = Callable[[ClientConnection, float], Link]
"""Builds the session on a new WebSocket (the CSMS-call handlers on a ``Link``), given the call timeout."""


class CsmsConnection:
    def __init__(self, settings: OcppSettings, identity: IdentitySettings, keys: OcppConfiguration,
                 clock: CsmsClock, make_link: LinkFactory, on_registered: Callable[[], Awaitable[None]]) -> None:
        self.settings = settings
        self.identity = identity
        self.keys = keys
        self.clock = clock
        self._make_link = make_link
        self._on_registered = on_registered
        self.authorization_key = (
            None if settings.authorization_key is None else settings.authorization_key.get_secret_value()
        )
        self.security_profile: int = settings.security_profile
        self.link: Link | None = None
        self._connection: ClientConnection | None = None
        self.registered = asyncio.Event()  # BootNotification accepted on the current connection
        self._reconnect = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        """True while the link is up and the CSMS accepted our BootNotification."""
        return self.link is not None and self.registered.is_set()

    def transport_settings(self) -> TransportSettings:
        return TransportSettings(
            csms_url=self.settings.csms_url,
            charge_point_id=self.settings.charge_point_id,
            security_profile=self.security_profile,
            authorization_key=self.authorization_key,
            ca_file=self.settings.ca_file,
            client_cert_file=self.settings.client_cert_file,
            client_key_file=self.settings.client_key_file,
            ping_interval_s=float(self.keys.get_int("WebSocketPingInterval")),
            # A pong later than the ping interval (at most 10 s) means the link is dead.
            ping_timeout_s=float(min(10, self.keys.get_int("WebSocketPingInterval") or 10)),
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        delays = backoff_delays_s()
        while True:
            raise_if_cancelling()
            # Cleared before connecting, not after the link drops: a reconnect requested while connected (new
            # AuthorizationKey or SecurityProfile) must skip the back-off wait below, not be forgotten.
            self._reconnect.clear()
            settings = self.transport_settings()
            try:
                async with websockets.connect(
                    settings.url,
                    subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                    additional_headers=headers(settings),
                    ssl=tls_context(settings),
                    open_timeout=settings.open_timeout_s,
                    ping_interval=settings.ping_interval_s or None,
                    ping_timeout=settings.ping_timeout_s,
                    # After a ping timeout websockets waits close_timeout for a closing handshake that a dead
                    # link never completes: keep it short so a half-open link is replaced promptly.
                    close_timeout=CLOSE_TIMEOUT_S,
                    max_size=settings.max_frame_bytes,
                    proxy=None,
                    compression=None,
                ) as connection:
                    delays = backoff_delays_s()
                    await self._serve(connection)
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError, CallFailed) as exc:
                if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                    log.error("the CSMS refused our credentials (HTTP 401)")
                else:
                    log.warning("CSMS link down: %s", exc or type(exc).__name__)
            finally:
                self.link = None
                self._connection = None
                self.registered.clear()
            delay_s = next(delays)
            if self._reconnect.is_set():
                log.info("reconnecting to the CSMS now")
                continue
            log.info("reconnecting to the CSMS in %.1f s", delay_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._reconnect.wait()

    async def _serve(self, connection: ClientConnection) -> None:
        if connection.subprotocol != SUBPROTOCOL:
            raise ConnectionClosed(None, None)
        link = self._make_link(connection, CALL_TIMEOUT_S)
        self._connection = connection
        self.link = link
        log.info("connected to the CSMS at %s", self.transport_settings().url)
        reader = asyncio.create_task(link.start())
        session = asyncio.create_task(self._registered_session(link))
        try:
            await asyncio.wait({reader, session}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, session):
                task.cancel()
            results = await asyncio.gather(reader, session, return_exceptions=True)
            await connection.close()
        for result in results:
            if isinstance(result, (CallFailed, TimeoutError, ConnectionClosed, OSError)):
                raise result
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    async def _registered_session(self, link: Link) -> None:
        """BootNotification until Accepted (answering CSMS calls meanwhile), then heartbeats."""
        await self.boot(link)
        self.registered.set()
        await self._on_registered()
        while True:
            raise_if_cancelling()
            interval_s = max(1, self.keys.get_int("HeartbeatInterval") or 300)
            await asyncio.sleep(interval_s)
            reply = await link.call_raw("Heartbeat", {})
            self.clock.sync(str(reply.get("currentTime", "")))

    async def boot(self, link: Link) -> None:
        identity = self.identity
        payload = {
            "chargePointVendor": identity.vendor,
            "chargePointModel": identity.model,
            "chargePointSerialNumber": identity.serial_number,
            "firmwareVersion": identity.firmware_version or __version__,
        }
        while True:
            reply = await link.call_raw("BootNotification", payload)
            self.clock.sync(str(reply.get("currentTime", "")))
            interval_s = int(reply.get("interval", 0))
            status = reply.get("status")
            if status == "Accepted":
                if interval_s > 0:
                    self.keys.set_internal("HeartbeatInterval", str(interval_s))
                log.info("registered with the CSMS (heartbeat every %s s)", self.keys["HeartbeatInterval"])
                return
            retry_s = interval_s if interval_s > 0 else BOOT_RETRY_DEFAULT_S
            log.warning("BootNotification %s; retrying in %d s", status, retry_s)
            await asyncio.sleep(retry_s)

    def request_reconnect(self) -> None:
        """Drop the current connection and reconnect at once (new credentials or security profile)."""
        if self._connection is not None:
            self._spawn(self._connection.close())
        self._reconnect.set()

    async def close_link(self) -> None:
        """Close the connection now: a call went unanswered, so the link cannot be trusted any more."""
        if self._connection is not None:
            await self._connection.close()

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        """Send a non-transaction message now if registered; None if offline or the CSMS did not answer."""
        link = self.link
        if link is None or not self.registered.is_set():
            return None
        try:
            reply = await link.call_raw(action, payload)
            raise_if_cancelling()
            return reply
        except CallFailed as exc:
            log.warning("%s refused by the CSMS: %s", action, exc)
        except (TimeoutError, ConnectionClosed) as exc:
            log.warning("%s not answered: %s", action, exc or type(exc).__name__)
        return None
