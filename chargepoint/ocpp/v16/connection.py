"""The link to the CSMS: connect with the security profile's credentials, register, keep alive, reconnect.

Reconnects forever with capped, jittered back-off. BootNotification is sent once per start of the firmware: on
the first connection, until Accepted (CSMS calls are answered meanwhile); a later reconnect of an Accepted
charger resumes with a Heartbeat instead. The registration status is kept in the store for those reconnects and
forgotten at each start (``load``), so a restart or reset registers again. Heartbeats and WebSocket pings follow
``HeartbeatInterval`` and ``WebSocketPingInterval`` as they are now: a change re-arms the timer at once.

New credentials (an AuthorizationKey at profile 1 or 2, a higher SecurityProfile, a new charge point certificate at
profile 3) are tried on the next connection; if that fails, the previous ones are restored and the client is told, to
persist them and record security events. The certificates the CSMS installed (``CertificateStore``) come first: its
charge point certificate over the config file's, its CentralSystemRootCertificates trusted besides the config's CA.

``call`` sends a message that is not queued (status, heartbeat, authorize ...) only while registered, or while
Pending when a TriggerMessage asked for it (OCPP 1.6 4.2); the outbox sends transaction messages through ``link``.

Size: one class, because connecting, registering, keeping alive and falling back to the previous credentials share
the link's state and its one run loop; what each message means lives beside it (handlers, status, outbox).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chargepoint import __version__
from chargepoint.cancellation import raise_if_cancelling
from chargepoint.config.schema import IdentitySettings, OcppSettings
from chargepoint.logfields import log_fields
from chargepoint.ocpp.certificates import CertificateStore
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.transport import (
    SUBPROTOCOL,
    Backoff,
    TransportSettings,
    describe_connect_failure,
    headers,
    tls_context,
)
from chargepoint.ocpp.v16.link import CallFailed, Link
from chargepoint.ocpp.v16.wire import CsmsClock
from chargepoint.store import Store

log = logging.getLogger(__name__)

BOOT_RETRY_DEFAULT_S = 60
CALL_TIMEOUT_S = 30.0
CLOSE_TIMEOUT_S = 1.0
PONG_TIMEOUT_MAX_S = 10
# Connect failures with new credentials that say nothing about them (refused, timeout, HTTP 5xx) before the
# previous credentials are restored; a refusal of the credentials themselves restores them at once.
NEW_CREDENTIALS_ATTEMPTS = 3
REGISTRATION_KV = "ocpp.registration_status"

LinkFactory = Callable[[ClientConnection, float], Link]
"""Builds the session on a new WebSocket (the CSMS-call handlers on a ``Link``), given the call timeout."""


@dataclass(frozen=True, slots=True)
class CredentialsFallback:
    """A connection with new credentials failed; the previous ones are in force again."""

    restored: dict[str, str]  # configuration key -> the previous value now in force again (to persist)
    changed: str  # what had changed, e.g. "SecurityProfile 0 -> 1"
    reason: str  # why the connection failed
    event: str | None  # the security event the failure itself is, if it names one


@dataclass(slots=True)
class _Trial:
    """New credentials not yet proven by a connection, and the ones to go back to."""

    security_profile: int
    authorization_key: str | None
    changed: list[str] = field(default_factory=list)
    failures: int = 0
    client_certificate: bool = False  # a new charge point certificate: the previous one is kept to go back to


def _failure_event(exc: BaseException) -> str | None:
    """The security event a connect failure is, or None if it says nothing about the credentials."""
    if isinstance(exc, InvalidStatus) and exc.response.status_code in (401, 403):
        return "FailedToAuthenticateAtCentralSystem"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return "InvalidCentralSystemCertificate"
    return None


def _refuses_credentials(exc: BaseException) -> bool:
    """HTTP 401/403 or a failed TLS handshake: the CSMS (or its certificate) does not go with these credentials."""
    return _failure_event(exc) is not None or isinstance(exc, ssl.SSLError)


class CsmsConnection:
    def __init__(self, settings: OcppSettings, identity: IdentitySettings, keys: OcppConfiguration,
                 clock: CsmsClock, store: Store, make_link: LinkFactory,
                 on_registered: Callable[[], Awaitable[None]],
                 on_fallback: Callable[[CredentialsFallback], Awaitable[None]],
                 certificates: CertificateStore | None = None,
                 security_event: Callable[[str, str], None] | None = None) -> None:
        self.settings = settings
        self.certificates = certificates
        self._security_event = security_event
        self._untrusted_csms_reported = False  # InvalidCentralSystemCertificate: once per run of failed connects
        self.identity = identity
        self.keys = keys
        self.clock = clock
        self.store = store
        self._make_link = make_link
        self._on_registered = on_registered
        self._on_fallback = on_fallback
        self.authorization_key = (
            None if settings.authorization_key is None else settings.authorization_key.get_secret_value()
        )
        self.security_profile: int = settings.security_profile
        self.link: Link | None = None
        self._connection: ClientConnection | None = None
        self.registered = asyncio.Event()  # registered (or resumed) on the current connection
        # For chargepoint status: when the link last went up or down, and why it last failed (wall clock, UTC).
        self.link_since: datetime | None = None
        self.last_error: str | None = None
        self.last_error_at: datetime | None = None
        self._link_was_up = False
        # The answer to the last BootNotification on the current connection (None: none yet); "Accepted" too
        # when a connection resumed an earlier registration.
        self.boot_status: str | None = None
        self.boots_sent = 0  # BootNotifications sent since the start: a triggered one may have been sent already
        self._boot_now = asyncio.Event()  # a TriggerMessage asked for a BootNotification while registering
        self._heartbeat_rearm = asyncio.Event()
        self._ping_rearm = asyncio.Event()
        self._state_changed = asyncio.Event()  # replaced on each change: a pulse for ``wait_may_send_triggered``
        self._trial: _Trial | None = None
        self._reconnect = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def connected(self) -> bool:
        """True while the link is up and the CSMS accepted our BootNotification."""
        return self.link is not None and self.registered.is_set()

    def _link_failed(self, reason: str) -> None:
        now = datetime.now(UTC)
        if self.link_since is None or self._link_was_up:
            self.link_since = now  # it went down now (a retry that fails again changes nothing)
        self._link_was_up = False
        self.last_error, self.last_error_at = reason, now

    def link_state(self) -> dict[str, Any]:
        return {"connected": self.connected, "url": self.settings.csms_url,
                "since": None if self.link_since is None else self.link_since.isoformat(timespec="seconds"),
                "last_error": self.last_error,
                "last_error_at": None if self.last_error_at is None else self.last_error_at.isoformat(
                    timespec="seconds")}

    def transport_settings(self) -> TransportSettings:
        installed = None if self.certificates is None else self.certificates.charge_point_certificate()
        cert_file, key_file = installed or (self.settings.client_cert_file, self.settings.client_key_file)
        return TransportSettings(
            csms_url=self.settings.csms_url,
            charge_point_id=self.settings.charge_point_id,
            security_profile=self.security_profile,
            authorization_key=self.authorization_key,
            ca_file=self.settings.ca_file,
            client_cert_file=cert_file,
            client_key_file=key_file,
            extra_ca_pem=None if self.certificates is None else self.certificates.csms_roots_pem() or None,
        )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _notify(self) -> None:
        self._state_changed.set()
        self._state_changed = asyncio.Event()

    # ----------------------------------------------------------------- lifecycle

    async def load(self) -> None:
        """A start of the firmware (boot, restart, reset): the next connection registers again."""
        await self.store.set_kv(REGISTRATION_KV, "")

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            raise_if_cancelling()
            # Cleared before connecting, not after the link drops: a reconnect requested while connected (new
            # AuthorizationKey or SecurityProfile) must skip the back-off wait below, not be forgotten.
            self._reconnect.clear()
            settings = self.transport_settings()
            try:
                connection = await websockets.connect(
                    settings.url,
                    subprotocols=[websockets.Subprotocol(SUBPROTOCOL)],
                    additional_headers=headers(settings),
                    ssl=tls_context(settings),
                    open_timeout=settings.open_timeout_s,
                    # Our own keep-alive (``_keepalive``) follows WebSocketPingInterval as it changes.
                    ping_interval=None,
                    # After a ping timeout the link is closed, and websockets waits close_timeout for a closing
                    # handshake that a dead link never completes: keep it short so the link is replaced promptly.
                    close_timeout=CLOSE_TIMEOUT_S,
                    max_size=settings.max_frame_bytes,
                    proxy=None,
                    compression=None,
                )
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                reason = describe_connect_failure(exc, settings)
                if isinstance(exc, InvalidStatus) and exc.response.status_code == 401:
                    log.error("the CSMS refused our credentials (HTTP 401)")
                else:
                    log.warning("CSMS link down: %s", reason)
                self._link_failed(reason)
                if await self._new_credentials_failed(exc, reason):
                    continue  # the previous credentials worked: use them at once
                self._report_untrusted_csms(exc, reason)
            else:
                self._untrusted_csms_reported = False
                self._new_credentials_work()
                up_since_s = time.monotonic()
                try:
                    async with connection:
                        await self._serve(connection)
                except (OSError, ConnectionClosed, TimeoutError, CallFailed) as exc:
                    log.warning("CSMS link down: %s", _link_lost_reason(exc))
                    self._link_failed(_link_lost_reason(exc))
                finally:
                    if self.link is not None:
                        self.link.lost()
                    self.link = None
                    self._connection = None
                    self.registered.clear()
                    self.boot_status = None
                    self._notify()
                    backoff.link_was_up(time.monotonic() - up_since_s)
            if self._reconnect.is_set():
                log.info("reconnecting to the CSMS now")
                continue
            delay_s = backoff.next_s()
            log.info("reconnecting to the CSMS in %.1f s (back-off up to %g s)", delay_s, backoff.last_max_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay_s):
                    await self._reconnect.wait()

    async def _serve(self, connection: ClientConnection) -> None:
        if connection.subprotocol != SUBPROTOCOL:
            raise ConnectionClosed(None, None)
        link = self._make_link(connection, CALL_TIMEOUT_S)
        self._connection = connection
        self.link = link
        self._notify()
        log.info("connected to the CSMS at %s", self.transport_settings().url)
        tasks = {asyncio.create_task(link.start()), asyncio.create_task(self._session(link)),
                 asyncio.create_task(self._keepalive(connection))}
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                raise result

    # ----------------------------------------------------------------- registration

    async def _session(self, link: Link) -> None:
        """Register (or resume an earlier registration), then heartbeats."""
        if not await self._resumed(link):
            await self._register(link)
        self.registered.set()
        self.link_since, self._link_was_up = datetime.now(UTC), True
        self._notify()
        await self._on_registered()
        await self._heartbeats(link)

    async def _resumed(self, link: Link) -> bool:
        """A reconnect of a charger the CSMS accepted since this start: a Heartbeat says we are back and checks
        the clock, no BootNotification (that is for a (re)boot). A CSMS that refuses it has forgotten us."""
        if await self.store.get_kv(REGISTRATION_KV) != "Accepted":
            return False
        try:
            await self.heartbeat(link)
        except CallFailed as exc:
            log.warning("the CSMS refused the Heartbeat of a resumed connection (%s): registering again", exc)
            return False
        self.boot_status = "Accepted"
        log.info("resumed the registration with the CSMS")
        return True

    async def _register(self, link: Link) -> None:
        """BootNotification until Accepted, waiting the interval the CSMS gave (or less, if it triggers one)."""
        while True:
            raise_if_cancelling()
            self._boot_now.clear()
            status, interval_s = await self._boot_once(link)
            if status == "Accepted":
                log.info("registered with the CSMS (heartbeat every %s s)", self.keys["HeartbeatInterval"])
                return
            retry_s = interval_s if interval_s > 0 else BOOT_RETRY_DEFAULT_S
            log.warning("BootNotification %s; retrying in %d s", status, retry_s)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry_s):
                    await self._boot_now.wait()

    async def _boot_once(self, link: Link) -> tuple[str, int]:
        identity = self.identity
        payload = {
            "chargePointVendor": identity.vendor,
            "chargePointModel": identity.model,
            "chargePointSerialNumber": identity.serial_number,
            "firmwareVersion": identity.firmware_version or __version__,
        }
        self.boots_sent += 1
        reply = await link.call_raw("BootNotification", payload)
        raise_if_cancelling()
        self.clock.sync(str(reply.get("currentTime", "")))
        status = str(reply.get("status"))
        interval_s = int(reply.get("interval", 0))
        # An Accepted answer with interval 0 keeps the interval in force: a CSMS that means "no heartbeats" sets
        # HeartbeatInterval 0, and a charger that went silent by mistake would look dead.
        if status == "Accepted" and interval_s > 0:
            self.keys.set_internal("HeartbeatInterval", str(interval_s))
            self._heartbeat_rearm.set()
        self.boot_status = status
        await self.store.set_kv(REGISTRATION_KV, status)
        self._notify()
        return status, interval_s

    async def trigger_boot(self) -> None:
        """TriggerMessage BootNotification: while registering, the registration loop sends it now; once
        registered, one BootNotification on the open link. An answer other than Accepted then leaves this
        connection registered (1.6 defines Pending and Rejected for registering only) but is remembered, so
        the next connection registers again."""
        link = self.link
        if link is None:
            return
        if not self.registered.is_set():
            self._boot_now.set()
            return
        status, _ = await self._boot_once(link)
        if status != "Accepted":
            log.warning("a triggered BootNotification was answered %s; the next connection registers again", status)

    def may_send_triggered(self) -> bool:
        """Whether a message a TriggerMessage asked for may go out now: registered, or Pending (1.6 4.2)."""
        return self.link is not None and self.boot_status in ("Accepted", "Pending")

    async def wait_may_send_triggered(self) -> None:
        while not self.may_send_triggered():
            await self._state_changed.wait()

    # ----------------------------------------------------------------- keep-alive

    def intervals_changed(self) -> None:
        """HeartbeatInterval or WebSocketPingInterval changed: re-arm both timers now (not when they fire)."""
        self._heartbeat_rearm.set()
        self._ping_rearm.set()

    async def heartbeat(self, link: Link) -> None:
        reply = await link.call_raw("Heartbeat", {})
        raise_if_cancelling()
        self.clock.sync(str(reply.get("currentTime", "")))

    async def _heartbeats(self, link: Link) -> None:
        """A Heartbeat every HeartbeatInterval (0: none); a new interval counts from the last heartbeat, so the
        next one comes no later than the new interval after the change."""
        last_s = time.monotonic()
        while True:
            raise_if_cancelling()
            self._heartbeat_rearm.clear()
            wait_s = _wait_s(last_s, self.keys.get_int("HeartbeatInterval"))
            if wait_s is None or wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._heartbeat_rearm.wait()
                continue
            await self.heartbeat(link)
            last_s = time.monotonic()

    async def _keepalive(self, connection: ClientConnection) -> None:
        """A WebSocket ping every WebSocketPingInterval (0: none); a pong later than the interval (at most
        10 s) means the link is dead (TimeoutError ends the connection)."""
        last_s = time.monotonic()
        while True:
            raise_if_cancelling()
            self._ping_rearm.clear()
            interval_s = self.keys.get_int("WebSocketPingInterval")
            wait_s = _wait_s(last_s, interval_s)
            if wait_s is None or wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._ping_rearm.wait()
                continue
            pong = await connection.ping()
            last_s = time.monotonic()
            timeout_s = min(PONG_TIMEOUT_MAX_S, interval_s)
            try:
                async with asyncio.timeout(timeout_s):
                    await pong
            except TimeoutError:
                raise TimeoutError(f"no pong within {timeout_s} s") from None

    # ----------------------------------------------------------------- credentials

    def change_credentials(self, *, security_profile: int | None = None, authorization_key: str | None = None,
                           client_certificate: bool = False) -> bool:
        """Take a new SecurityProfile or AuthorizationKey, or a newly installed charge point certificate; True if
        it needs a new connection (the caller reconnects once the CSMS has its answer). A key at profile 0 or 3,
        or a certificate at profiles 0-2, is only kept for later."""
        before_profile, before_key = self.security_profile, self.authorization_key
        changed: list[str] = []
        if security_profile is not None and security_profile != before_profile:
            self.security_profile = security_profile
            changed.append(f"SecurityProfile {before_profile} -> {security_profile}")
        if authorization_key is not None and authorization_key != before_key:
            self.authorization_key = authorization_key
            if self.security_profile in (1, 2):
                changed.append("AuthorizationKey")
        new_certificate = client_certificate and self.security_profile == 3
        if new_certificate:
            changed.append("charge point certificate")
        if not changed:
            return False
        if self._trial is None:  # the last credentials that worked, not ones still on trial
            self._trial = _Trial(before_profile, before_key)
        self._trial.changed.extend(changed)
        self._trial.client_certificate |= new_certificate
        return True

    def _new_credentials_work(self) -> None:
        if self._trial is not None:
            log.info("connected with the new %s", ", ".join(self._trial.changed))
            if self._trial.client_certificate and self.certificates is not None:
                try:
                    self.certificates.forget_previous()
                except OSError as exc:
                    log.warning("cannot delete the previous charge point certificate: %s", exc)
            self._trial = None

    async def _new_credentials_failed(self, exc: BaseException, reason: str) -> bool:
        """A connect failed: if it was with new credentials that are to blame (or kept failing), restore the
        previous ones and return True."""
        trial = self._trial
        if trial is None:
            return False
        trial.failures += 1
        if not _refuses_credentials(exc) and trial.failures < NEW_CREDENTIALS_ATTEMPTS:
            return False
        self._trial = None
        restored: dict[str, str] = {}
        if trial.security_profile != self.security_profile:
            self.security_profile = trial.security_profile
            restored["SecurityProfile"] = str(trial.security_profile)
        if trial.authorization_key is not None and trial.authorization_key != self.authorization_key:
            self.authorization_key = trial.authorization_key
            restored["AuthorizationKey"] = trial.authorization_key
        for name, value in restored.items():
            self.keys.set_internal(name, value)
        if trial.client_certificate and self.certificates is not None:
            try:
                self.certificates.restore_previous()
            except OSError as error:
                log.error("cannot go back to the previous charge point certificate: %s", error)
        changed = ", ".join(trial.changed)
        log.error("connecting with the new %s failed (%s): back to the previous one", changed, reason)
        await self._on_fallback(CredentialsFallback(restored, changed, reason, _failure_event(exc)))
        return True

    def _report_untrusted_csms(self, exc: BaseException, reason: str) -> None:
        """TC_078: a CSMS certificate that does not verify is a security event, told once the link is back; once
        per run of failed connections, not once per attempt."""
        if _failure_event(exc) != "InvalidCentralSystemCertificate" or self._untrusted_csms_reported:
            return
        self._untrusted_csms_reported = True
        if self._security_event is not None:
            self._security_event("InvalidCentralSystemCertificate", reason)

    def request_reconnect(self) -> None:
        """Drop the current connection and reconnect at once (new credentials or security profile)."""
        if self._connection is not None:
            self._spawn(self._connection.close())
        self._reconnect.set()

    # ----------------------------------------------------------------- messages that are not queued

    async def call(self, action: str, payload: dict[str, Any], *, triggered: bool = False) -> dict[str, Any] | None:
        """Send a non-transaction message now if registered (or Pending, for a ``triggered`` one); None if it
        may not be sent now or the CSMS did not answer."""
        link = self.link
        if link is None or not (self.registered.is_set() or (triggered and self.may_send_triggered())):
            return None
        try:
            reply = await link.call_raw(action, payload)
            raise_if_cancelling()
            return reply
        except (CallFailed, TimeoutError, ConnectionClosed) as exc:  # CallFailed and CallTimedOut name the CALL
            how = "refused by the CSMS" if isinstance(exc, CallFailed) else "not answered"
            log.warning("%s %s: %s", action, how, str(exc) or type(exc).__name__,
                        extra=log_fields(ocpp_message_id=getattr(exc, "unique_id", None), ocpp_action=action))
        return None


def _link_lost_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError) and not str(exc):
        return "a CALL went unanswered"
    return str(exc) or type(exc).__name__


def _wait_s(last_s: float, interval_s: int) -> float | None:
    """Seconds until the timer of ``interval_s`` started at ``last_s`` fires (<= 0: due); None when it is off."""
    if interval_s <= 0:
        return None
    return last_s + interval_s - time.monotonic()
