"""GetDiagnostics (FirmwareManagement) and GetLog (security extension): the diagnostics bundle, uploaded.

The reply names the file at once; the bundle (``ocpp/diagnostics_bundle.py``: curated, secrets masked, never
the database) is built and uploaded in the background. GetDiagnostics reports Uploading -> Uploaded |
UploadFailed with DiagnosticsStatusNotification; GetLog reports with LogStatusNotification (its requestId).

Where an upload may go: http(s) and ftp(s). At security profiles 2 and 3 the link to the CSMS is encrypted and
so must be what leaves the charger: only https:// and ftps:// unless ``[ocpp] allow_insecure_uploads``; an
https or ftps server is verified against the system's CA store and the CSMS's ``ca_file``. Every upload (and
every refused one) is a security event, so the operator can see what left the charger and where to.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import ssl
import tempfile
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chargepoint.config.loader import redacted
from chargepoint.config.schema import Config
from chargepoint.logbook import RECENT_FRAMES, RECENT_LOG
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.diagnostics_bundle import BundleContents, build_bundle, bundle_file_name
from chargepoint.ocpp.file_transfer import SUPPORTED_SCHEMES, TransferError, redact_url, upload
from chargepoint.ocpp.v16.background import BackgroundTasks
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import Store

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 60.0
TRANSFER_TIMEOUT_S = 60.0
# The upload starts once the reply is out (``reply_sent``), or after this at the latest.
REPLY_GATE_TIMEOUT_S = 5.0
ENCRYPTED_SCHEMES = frozenset({"https", "ftps"})
FAULTS_IN_BUNDLE = 500

SecurityEventSink = Callable[[str, str], None]
"""Records a security event: (type, techInfo)."""


def upload_refusal(location: str, security_profile: int, allow_insecure: bool) -> str | None:
    """Why the charger will not upload to ``location``, or None if it will."""
    scheme = urlsplit(location).scheme.lower()
    if scheme not in SUPPORTED_SCHEMES:
        return f"unsupported scheme {scheme or '(none)'!r} (supported: {', '.join(sorted(SUPPORTED_SCHEMES))})"
    if security_profile >= 2 and scheme not in ENCRYPTED_SCHEMES and not allow_insecure:
        return (f"{scheme}:// is not encrypted, and at security profile {security_profile} only https:// and "
                "ftps:// are (set [ocpp] allow_insecure_uploads = true to allow it)")
    return None


class Diagnostics(BackgroundTasks):
    """Builds and uploads diagnostics bundles and security logs over one CSMS connection; owns their tasks."""

    def __init__(self, config: Config, connection: CsmsConnection, charger: ChargerPort, keys: OcppConfiguration,
                 store: Store, work_dir: Path, security_event: SecurityEventSink,
                 security_log: Callable[[], Coroutine[Any, Any, list[dict[str, Any]]]],
                 firmware_status: Callable[[], str]) -> None:
        super().__init__()
        assert config.ocpp is not None
        self.config = config
        self.settings = config.ocpp
        self.connection = connection
        self.charger = charger
        self.keys = keys
        self.store = store
        self.work_dir = Path(work_dir)
        self._security_event = security_event
        self._security_log = security_log
        self._firmware_status = firmware_status
        self.diagnostics_status = "Idle"
        self.log_status = "Idle"
        self.log_request_id: int | None = None
        # Used when the CSMS leaves retries/retryInterval out; tests shorten them.
        self.default_retries = DEFAULT_RETRIES
        self.default_retry_interval_s = DEFAULT_RETRY_INTERVAL_S
        self.transfer_timeout_s = TRANSFER_TIMEOUT_S
        self._diagnostics: asyncio.Task[None] | None = None
        self._log: asyncio.Task[None] | None = None
        self._diagnostics_reply_sent = asyncio.Event()
        self._log_reply_sent = asyncio.Event()

    # ----------------------------------------------------------------- tasks

    @staticmethod
    async def _replace(previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]) -> None:
        if previous is not None and not previous.done():
            previous.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await previous
        await work

    # ----------------------------------------------------------------- GetDiagnostics

    def refusal(self, location: str) -> str | None:
        refused = upload_refusal(location, self.connection.security_profile, self.settings.allow_insecure_uploads)
        if refused is not None:
            log.error("upload to %s refused: %s", redact_url(location), refused)
            self._security_event("DiagnosticsUploadRefused", f"{redact_url(location)}: {refused}")
        return refused

    def get_diagnostics(self, location: str, retries: int | None, retry_interval_s: int | None,
                        start_time: datetime | None, stop_time: datetime | None) -> str | None:
        """Name the bundle at once and upload it in the background; None (nothing will be uploaded) for a
        location this charger will not upload to. A new request replaces one still in progress."""
        if self.refusal(location) is not None:
            return None
        created_at = datetime.now(UTC)
        attempts, interval_s = self._attempts(retries, retry_interval_s)
        previous = self._diagnostics
        self._diagnostics_reply_sent.clear()

        async def report(status: str) -> None:
            self.diagnostics_status = status
            await self.connection.call("DiagnosticsStatusNotification", {"status": status})

        self._diagnostics = self._spawn(self._replace(previous, self._upload(
            "diagnostics", location, attempts, interval_s, start_time, stop_time, created_at,
            self._diagnostics_reply_sent, report, {"Uploaded": "Uploaded", "Failed": "UploadFailed"},
        )), "diagnostics upload")
        return bundle_file_name(self.connection.settings.charge_point_id, created_at)

    def diagnostics_reply_sent(self) -> None:
        """The GetDiagnostics CALLRESULT is on the wire: DiagnosticsStatusNotification may follow it."""
        self._diagnostics_reply_sent.set()

    # ----------------------------------------------------------------- GetLog

    def get_log(self, log_type: str, request_id: int, location: str, retries: int | None,
                retry_interval_s: int | None, oldest: datetime | None,
                latest: datetime | None) -> tuple[str, str | None]:
        """(status, filename) of the GetLog answer; the upload runs in the background."""
        if self.refusal(location) is not None:
            return "Rejected", None
        created_at = datetime.now(UTC)
        attempts, interval_s = self._attempts(retries, retry_interval_s)
        previous = self._log
        status = "AcceptedCanceled" if previous is not None and not previous.done() else "Accepted"
        self._log_reply_sent.clear()
        kind = "security-log" if log_type == "SecurityLog" else "diagnostics"

        async def report(upload_status: str) -> None:
            self.log_status = upload_status
            self.log_request_id = request_id
            await self.connection.call("LogStatusNotification", {"status": upload_status, "requestId": request_id})

        self._log = self._spawn(self._replace(previous, self._upload(
            kind, location, attempts, interval_s, oldest, latest, created_at, self._log_reply_sent, report,
            {"Uploaded": "Uploaded", "Failed": "UploadFailure"},
        )), "log upload")
        return status, bundle_file_name(self.connection.settings.charge_point_id, created_at, kind)

    def log_reply_sent(self) -> None:
        self._log_reply_sent.set()

    # ----------------------------------------------------------------- the upload

    def _attempts(self, retries: int | None, retry_interval_s: int | None) -> tuple[int, float]:
        attempts = 1 + max(0, self.default_retries if retries is None else retries)
        interval_s = float(self.default_retry_interval_s if retry_interval_s is None else max(0, retry_interval_s))
        return attempts, interval_s

    async def _upload(self, kind: str, location: str, attempts: int, interval_s: float, since: datetime | None,
                      until: datetime | None, created_at: datetime, reply_sent: asyncio.Event,
                      report: Callable[[str], Coroutine[Any, Any, None]], outcome: dict[str, str]) -> None:
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(REPLY_GATE_TIMEOUT_S):
                    await reply_sent.wait()
            await report("Uploading")
            self.work_dir.mkdir(parents=True, exist_ok=True)
            contents = await self.contents(since, until, security_only=kind == "security-log")
            with tempfile.TemporaryDirectory(dir=self.work_dir, prefix="upload-") as scratch:
                try:
                    bundle = await asyncio.to_thread(build_bundle, Path(scratch), contents, created_at, kind)
                except OSError as exc:
                    log.error("the %s bundle could not be built: %s", kind, exc)
                    await report(outcome["Failed"])
                    return
                for attempt in range(1, attempts + 1):
                    try:
                        await upload(location, bundle, timeout_s=self.transfer_timeout_s, tls=self._tls())
                    except TransferError as exc:
                        log.warning("%s upload %d/%d failed: %s", kind, attempt, attempts, exc)
                        if attempt < attempts:
                            await asyncio.sleep(interval_s)
                        continue
                    log.info("%s uploaded: %s to %s", kind, bundle.name, redact_url(location))
                    self._security_event("DiagnosticsUploaded", f"{bundle.name} to {redact_url(location)}")
                    await report(outcome["Uploaded"])
                    return
                await report(outcome["Failed"])
        finally:
            if asyncio.current_task() in (self._diagnostics, self._log):
                if asyncio.current_task() is self._diagnostics:
                    self.diagnostics_status = "Idle"
                else:
                    self.log_status = "Idle"

    def _tls(self) -> ssl.SSLContext:
        """The system's CA store, and the CA the CSMS's certificate chains to."""
        context = ssl.create_default_context()
        if self.settings.ca_file is not None:
            context.load_verify_locations(cafile=str(self.settings.ca_file))
        return context

    async def contents(self, since: datetime | None, until: datetime | None,
                       security_only: bool = False) -> BundleContents:
        """What goes into a bundle now (``security_only``: the security log and the status, nothing else)."""
        status: dict[str, Any] = dict(self.charger.status())
        status["firmware_status"] = self._firmware_status()
        status["ocpp_keys"] = {k.key: k.value for k in self.keys.report(None)[0]}  # readable keys only
        events = await self._security_log()
        events = [e for e in events if _within(e.get("timestamp"), since, until)]
        if security_only:
            return BundleContents(self.connection.settings.charge_point_id, status, {}, [], [], [], events, None,
                                  since, until, self._secrets())
        faults = [asdict(change) for change in await self.store.fault_log(FAULTS_IN_BUNDLE)]
        faults = [f for f in reversed(faults) if _within(f.get("at"), since, until)]
        return BundleContents(
            charge_point_id=self.connection.settings.charge_point_id,
            status=status,
            config=redacted(self.config),
            log_lines=RECENT_LOG.lines(since, until),
            frames=RECENT_FRAMES.lines(since, until),
            faults=faults,
            security_events=events,
            database=self.store.path,
            start_time=since,
            stop_time=until,
            secrets=self._secrets(),
        )

    def _secrets(self) -> list[str]:
        """Whatever must never leave the charger, in every form it may take in a line of text."""
        secrets: list[str] = []
        configured = self.settings.authorization_key
        for key in {self.connection.authorization_key,
                    None if configured is None else configured.get_secret_value()}:
            if key:
                token = base64.b64encode(f"{self.connection.settings.charge_point_id}:{key}".encode()).decode()
                secrets += [key, token]
        return secrets


def _within(at: Any, since: datetime | None, until: datetime | None) -> bool:
    if at is None or (since is None and until is None):
        return True
    try:
        moment = datetime.fromisoformat(str(at).replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (since is None or moment >= since) and (until is None or moment <= until)
