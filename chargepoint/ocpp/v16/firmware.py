"""OCPP 1.6 firmware updates: UpdateFirmware (FirmwareManagement) and SignedUpdateFirmware (security
extension), run as background tasks of the adapter (GetDiagnostics: ``diagnostics.py``).

UpdateFirmware: wait for retrieveDate, download (Downloading -> Downloaded | DownloadFailed, with the
requested retries), wait until no transaction runs on any connector (OCPP: installation waits for the
transactions to end), install (Installing -> Installed | InstallationFailed), and after Installed restart the
firmware in place with a soft reset. A second UpdateFirmware while one runs replaces it.

Status notifications are not queued while offline (OCPP 1.6 behaviour); ``firmware_status`` always says
where things stand, for TriggerMessage. Once an update is over (whatever its outcome, once its final status
was sent) it goes back to ``Idle``, because OCPP 1.6 says Idle is what a triggered notification reports when
nothing firmware-related is going on.

SignedUpdateFirmware: the signing certificate is checked against the installed ManufacturerRootCertificates
before the answer (InvalidCertificate, with the security event InvalidFirmwareSigningCertificate); the image's
signature after the download and before anything is installed (InvalidSignature, security event
InvalidFirmwareSignature). Statuses go out as SignedFirmwareStatusNotification with the requestId: Downloading,
Downloaded | DownloadFailed, SignatureVerified | InvalidSignature, InstallScheduled (installDateTime), Installing,
InstallRebooting | InstallationFailed; after the restart Installed, with the critical security event
FirmwareUpdated (the pending update is kept in the store across the restart). An unsigned UpdateFirmware is
refused (NotSupported) unless ``[ocpp] allow_unsigned_firmware_updates``: an installer that checks signatures of
its own (RAUC, SWUpdate) makes it safe; so does ``[update]`` (``TrialInstaller``: signed releases only).

With a ``TrialInstaller`` (``[update]``, ``chargepoint.release``) an installation finishes after the restart: the
new firmware runs on trial and is kept once healthy, or the previous one comes back. UpdateFirmware then reports
Downloading, Downloaded, Installing and, after the restart, Installed (from the new firmware) or InstallationFailed
(from the old one, after the rollback); SignedUpdateFirmware Installing, InstallRebooting, then the same. The
pending update is kept in the store across the restarts; an image the installer refuses (unsigned, tampered, signed
by someone else, a downgrade) is InstallationFailed with its security event, and nothing is installed.

Not yet: connectors stay available while an installation waits for transactions to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from cryptography import x509

from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.file_transfer import (
    FirmwareInstaller,
    InstallError,
    InstallOutcome,
    InstallRefused,
    TransferError,
    TrialInstaller,
    download,
    redact_url,
    supported,
)
from chargepoint.ocpp.firmware_signature import (
    FirmwareSignatureError,
    check_signing_certificate,
    verify_image,
)
from chargepoint.ocpp.v16.background import BackgroundTasks
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ports.charger import ChargerPort
from chargepoint.store import Store

log = logging.getLogger(__name__)

DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 60.0
TRANSACTION_POLL_INTERVAL_S = 1.0
TRANSFER_TIMEOUT_S = 60.0
OUTBOX_WAIT_S = 3.0
PENDING_SIGNED_UPDATE_KV = "ocpp.firmware.signed_update_pending"  # requestId of an update that restarts us
PENDING_UPDATE_KV = "ocpp.firmware.update_pending"  # an UpdateFirmware whose outcome comes after the restart


class NoInstaller:
    """The installer of real hardware without ``[ocpp] firmware_install_command``: every install fails."""

    async def install(self, image: Path) -> None:
        log.error("firmware %s downloaded but not installed: no installer is configured "
                  "(set [ocpp] firmware_install_command)", image.name)
        raise InstallError("no firmware installer is configured")


class FirmwareManager(BackgroundTasks):
    """Runs firmware updates over one CSMS connection; owns their tasks."""

    def __init__(self, connection: CsmsConnection, charger: ChargerPort, keys: OcppConfiguration,
                 outbox_drained: asyncio.Event, work_dir: Path, installer: FirmwareInstaller, store: Store,
                 manufacturer_roots: Callable[[], Sequence[x509.Certificate]],
                 security_event: Callable[[str, str], None]) -> None:
        super().__init__()
        self.connection = connection
        self.charger = charger
        self.keys = keys
        self._outbox_drained = outbox_drained
        self.work_dir = Path(work_dir)
        self.installer = installer
        self.store = store
        self._manufacturer_roots = manufacturer_roots
        self._security_event = security_event
        self.firmware_status = "Idle"
        self.signed_request_id: int | None = None  # the SignedUpdateFirmware the status belongs to, if any
        self.allow_unsigned = False  # UpdateFirmware, unsigned: [ocpp] allow_unsigned_firmware_updates
        # Used when the CSMS leaves retries/retryInterval out; tests shorten them.
        self.default_retries = DEFAULT_RETRIES
        self.default_retry_interval_s = DEFAULT_RETRY_INTERVAL_S
        self.transaction_poll_interval_s = TRANSACTION_POLL_INTERVAL_S
        self.transfer_timeout_s = TRANSFER_TIMEOUT_S
        self._update: asyncio.Task[None] | None = None
        self._reporting = asyncio.Lock()  # one report after a restart at a time, however often we register

    # ----------------------------------------------------------------- tasks

    # ----------------------------------------------------------------- firmware

    def start_update(self, location: str, retrieve_date: datetime, retries: int | None,
                     retry_interval_s: int | None) -> None:
        """Begin ``update_firmware`` in the background, replacing (cancelling) an update that still runs."""
        previous = self._update
        self._update = self._spawn(
            self._replace(previous, self.update_firmware(location, retrieve_date, retries, retry_interval_s)),
            "firmware update",
        )

    async def _replace(self, previous: asyncio.Task[None] | None, work: Coroutine[Any, Any, None]) -> None:
        try:
            if previous is not None and not previous.done():
                log.warning("a new request replaces the %s in progress", previous.get_name())
                previous.cancel()
                await asyncio.wait({previous})
        except BaseException:
            work.close()  # cancelled before it began: never started, so never awaited
            raise
        await work

    async def update_firmware(self, location: str, retrieve_date: datetime, retries: int | None,
                              retry_interval_s: int | None) -> None:
        """The whole update: wait, download with retries, wait for transactions to end, install, restart.

        ``retries`` is the number of further attempts after the first failed download."""
        attempts = 1 + max(0, self.default_retries if retries is None else retries)
        interval_s = float(self.default_retry_interval_s if retry_interval_s is None else max(0, retry_interval_s))
        image = self.work_dir / _image_name(location)
        try:
            wait_s = (retrieve_date - self.connection.clock.now()).total_seconds()
            if wait_s > 0:
                log.info("firmware %s: download at %s (in %.0f s)", redact_url(location), retrieve_date, wait_s)
                await asyncio.sleep(wait_s)
            await self._firmware_status("Downloading")
            if not await self._download(location, image, attempts, interval_s):
                await self._firmware_status("DownloadFailed")
                return
            await self._firmware_status("Downloaded")
            await self._wait_for_no_transactions()
            await self._firmware_status("Installing")
            try:
                await self.installer.install(image)
            except InstallError as exc:
                log.error("firmware installation failed: %s", exc)
                self._refused(image, exc)
                await self._firmware_status("InstallationFailed")
                return
            if isinstance(self.installer, TrialInstaller):
                # Installed (or InstallationFailed after the rollback) comes once the new firmware ran its trial.
                await self.store.set_kv(PENDING_UPDATE_KV, json.dumps({"image": image.name}))
                log.warning("firmware installed beside the running one: restarting to try it")
                self.firmware_status = "Idle"
                await self.charger.reset(hard=False)
                return
            await self._firmware_status("Installed")
            log.warning("firmware installed: restarting")
            self.firmware_status = "Idle"
            await self.charger.reset(hard=False)
        finally:
            image.unlink(missing_ok=True)
            if asyncio.current_task() is self._update:
                self.firmware_status = "Idle"

    async def _download(self, location: str, image: Path, attempts: int, interval_s: float) -> bool:
        if not supported(location):
            log.error("firmware location %s: unsupported scheme", redact_url(location))
            return False
        for attempt in range(1, attempts + 1):
            try:
                size = await download(location, image, timeout_s=self.transfer_timeout_s)
            except TransferError as exc:
                log.warning("firmware download %d/%d failed: %s", attempt, attempts, exc)
                if attempt < attempts:
                    await asyncio.sleep(interval_s)
                continue
            log.info("firmware downloaded: %s (%d bytes)", image.name, size)
            return True
        return False

    async def _wait_for_no_transactions(self) -> None:
        logged = False
        while any(c.session is not None for c in self.charger.connectors.values()):
            if not logged:
                log.info("firmware installation waits for the running transactions to end")
                logged = True
            await asyncio.sleep(self.transaction_poll_interval_s)
        if logged and self.connection.registered.is_set():
            # Let the CSMS hear of the StopTransaction (durable in the outbox either way) before Installing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(OUTBOX_WAIT_S):
                    await self._outbox_drained.wait()

    async def _firmware_status(self, status: str) -> None:
        self.firmware_status = status
        await self.connection.call("FirmwareStatusNotification", {"status": status})

    # ----------------------------------------------------------------- signed firmware

    def start_signed_update(self, request_id: int, location: str, retrieve_at: datetime, install_at: datetime | None,
                            signing_certificate: str, signature: str, retries: int | None,
                            retry_interval_s: int | None) -> str:
        """The SignedUpdateFirmware answer; if Accepted (or AcceptedCanceled: it replaces one in progress), the
        update runs in the background."""
        try:
            certificate = check_signing_certificate(signing_certificate, self._manufacturer_roots())
        except FirmwareSignatureError as exc:
            log.error("SignedUpdateFirmware %d refused: %s", request_id, exc)
            self._security_event("InvalidFirmwareSigningCertificate", str(exc))
            return "InvalidCertificate"
        previous = self._update
        status = "AcceptedCanceled" if previous is not None and not previous.done() else "Accepted"
        self._update = self._spawn(self._replace(previous, self.signed_update(
            request_id, location, retrieve_at, install_at, certificate, signature, retries, retry_interval_s)),
            "signed firmware update")
        return status

    async def signed_update(self, request_id: int, location: str, retrieve_at: datetime, install_at: datetime | None,
                            certificate: x509.Certificate, signature: str, retries: int | None,
                            retry_interval_s: int | None) -> None:
        attempts = 1 + max(0, self.default_retries if retries is None else retries)
        interval_s = float(self.default_retry_interval_s if retry_interval_s is None else max(0, retry_interval_s))
        image = self.work_dir / _image_name(location)
        self.signed_request_id = request_id

        async def report(status: str) -> None:
            self.firmware_status = status
            await self.connection.call("SignedFirmwareStatusNotification", {"status": status, "requestId": request_id})

        try:
            wait_s = (retrieve_at - self.connection.clock.now()).total_seconds()
            if wait_s > 0:
                await report("DownloadScheduled")
                await asyncio.sleep(wait_s)
            await report("Downloading")
            if not await self._download(location, image, attempts, interval_s):
                await report("DownloadFailed")
                return
            await report("Downloaded")
            try:
                sha256 = await asyncio.to_thread(verify_image, image, signature, certificate)
            except FirmwareSignatureError as exc:
                log.error("firmware %s not installed: %s", image.name, exc)
                self._security_event("InvalidFirmwareSignature", f"{image.name}: {exc}")
                await report("InvalidSignature")
                return
            log.info("firmware %s: signature verified (SHA-256 %s)", image.name, sha256)
            await report("SignatureVerified")
            if install_at is not None and (wait_s := (install_at - self.connection.clock.now()).total_seconds()) > 0:
                await report("InstallScheduled")
                await asyncio.sleep(wait_s)
            await self._wait_for_no_transactions()
            await report("Installing")
            try:
                if isinstance(self.installer, TrialInstaller):
                    await self.installer.install(image, verified=True)  # the payload; its signature is checked
                else:
                    await self.installer.install(image)
            except InstallError as exc:
                log.error("firmware installation failed: %s", exc)
                self._refused(image, exc)
                await report("InstallationFailed")
                return
            await self.store.set_kv(PENDING_SIGNED_UPDATE_KV, json.dumps({"requestId": request_id,
                                                                          "image": image.name, "sha256": sha256}))
            await report("InstallRebooting")
            log.warning("signed firmware installed: restarting")
            self.firmware_status = "Idle"
            await self.charger.reset(hard=False)
        finally:
            image.unlink(missing_ok=True)
            if asyncio.current_task() is self._update:
                self.firmware_status = "Idle"

    def _refused(self, image: Path, exc: InstallError) -> None:
        """An image the installer refused before installing anything (unsigned, tampered, ...): a security event."""
        if isinstance(exc, InstallRefused) and exc.event is not None:
            self._security_event(exc.event, f"{image.name}: {exc}"[:255])

    async def report_installed_after_restart(self) -> None:
        """Registered after a restart: an update that restarted us is over. Installed (and the security event
        FirmwareUpdated), or, where the installer tries the new firmware first (``TrialInstaller``), whatever its
        trial decided: Installed once it passed, InstallationFailed once the previous firmware is back."""
        if self._reporting.locked():
            return
        async with self._reporting:
            await self._report_after_restart(PENDING_SIGNED_UPDATE_KV, "SignedFirmwareStatusNotification")
            await self._report_after_restart(PENDING_UPDATE_KV, "FirmwareStatusNotification")

    async def _report_after_restart(self, key: str, action: str) -> None:
        text = await self.store.get_kv(key)
        if not text:
            return
        try:
            pending = json.loads(text)
            request_id = int(pending["requestId"]) if key == PENDING_SIGNED_UPDATE_KV else None
        except (ValueError, KeyError, TypeError):
            await self.store.set_kv(key, "")
            return
        self.signed_request_id = request_id
        self.firmware_status = "Installing"
        try:
            outcome = await self._outcome()
            status = "Installed" if outcome.installed else "InstallationFailed"
            if not outcome.installed:
                log.error("firmware update %s: %s", pending.get("image", ""), outcome.detail)
            elif not pending.get("event_recorded"):  # once, however often the notification waits for the CSMS
                sha256 = f" (SHA-256 {pending['sha256']})" if pending.get("sha256") else ""
                self._security_event("FirmwareUpdated", f"{pending.get('image', 'image')}{sha256}"
                                     + (f", request {request_id}" if request_id is not None else ""))
                await self.store.set_kv(key, json.dumps({**pending, "event_recorded": True}))
            self.firmware_status = status
            payload: dict[str, Any] = {"status": status}
            if request_id is not None:
                payload["requestId"] = request_id
            reply = await self.connection.call(action, payload)
            if reply is not None:
                await self.store.set_kv(key, "")
        finally:
            self.firmware_status = "Idle"

    async def _outcome(self) -> InstallOutcome:
        if not isinstance(self.installer, TrialInstaller):
            return InstallOutcome(True, "installed before the restart")
        return await self.installer.outcome() or InstallOutcome(False, "the installation left no record")

def _image_name(location: str) -> str:
    """The file name the image is saved under: the URL's last path segment, or ``firmware.bin``."""
    name = Path(unquote(urlsplit(location).path)).name
    if not name or name in (".", ".."):
        return "firmware.bin"
    return name
