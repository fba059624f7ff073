"""The technician's ops that need more than the charger's port: ``chargepoint diagnostics`` builds the same bundle
the CSMS gets with GetDiagnostics (through the OCPP adapter when there is one; from the charger, its log and its
store otherwise) and hands it over the control socket.
"""

from __future__ import annotations

import asyncio
import base64
import tempfile
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargepoint.config.loader import redacted
from chargepoint.config.schema import Config
from chargepoint.logbook import RECENT_FRAMES, RECENT_LOG
from chargepoint.runtime.app import ChargerApp
from chargepoint.store import Store

if TYPE_CHECKING:
    from chargepoint.ocpp.diagnostics_bundle import BundleContents

FAULTS_IN_BUNDLE = 500
BUNDLE_MAX_BYTES = 12 * 1024 * 1024  # what the control socket carries (its reader takes 16 MiB a line)


class Maintenance:
    def __init__(self, config: Config, app: ChargerApp, store: Store) -> None:
        self.config = config
        self.app = app
        self.store = store

    async def contents(self) -> BundleContents:
        # Imported when asked for: a standalone charger does not load the OCPP adapter's modules.
        from chargepoint.ocpp.diagnostics_bundle import BundleContents

        diagnostics = getattr(self.app.csms, "diagnostics", None)
        if diagnostics is not None:  # the OCPP adapter's: with its keys, firmware status and masked credentials
            contents: BundleContents = await diagnostics.contents(None, None)
            return contents
        faults = [asdict(change) for change in reversed(await self.store.fault_log(FAULTS_IN_BUNDLE))]
        events = [{"timestamp": e.at, "type": e.kind, "techInfo": e.tech_info, "critical": e.critical}
                  for e in await self.store.security_log()]
        return BundleContents(
            charge_point_id=self.config.identity.serial_number, status=self.app.status(),
            config=redacted(self.app.config), log_lines=RECENT_LOG.lines(), frames=RECENT_FRAMES.lines(),
            faults=faults, security_events=events, database=self.store.path)

    async def diagnostics(self, _request: dict[str, Any]) -> dict[str, Any]:
        """{"ok", "name", "bundle": base64 of the tar.gz}."""
        from chargepoint.ocpp.diagnostics_bundle import build_bundle, bundle_file_name

        contents = await self.contents()
        created_at = datetime.now(UTC)
        with tempfile.TemporaryDirectory(prefix="chargepoint-diagnostics-") as scratch:
            bundle = await asyncio.to_thread(build_bundle, Path(scratch), contents, created_at)
            data = bundle.read_bytes()
        if len(data) > BUNDLE_MAX_BYTES:
            return {"ok": False, "error": f"the bundle is {len(data)} bytes, more than the control socket carries"}
        return {"ok": True, "name": bundle_file_name(contents.charge_point_id, created_at),
                "bundle": base64.b64encode(data).decode()}
