"""Mobile payment in the runtime: the QR code on each free connector, and the remote starts it may begin.

A code is shown (with the idle price) while its connector is Available with no session and the charger is
registered with its CSMS; it is hidden while offline (a paid code could not start anything), replaced when it
nears its expiry, and a used one is never shown again. ``claim`` is asked before a RemoteStartTransaction is
accepted: an idTag shaped like a QR idTag must belong to a valid attempt on that connector, or nothing starts,
and the refusal is a security event (see ``qr_codes.py`` for the code and what the payment backend sends).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from chargepoint.config.schema import Config
from chargepoint.core.commands import ConnectorStatus
from chargepoint.ports.csms import CsmsAdapter
from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.runtime.qr_codes import QrCodes, is_qr_id_tag
from hal.protocols import DisplayKind, DisplayMessage

log = logging.getLogger(__name__)

REFRESH_S = 1.0


class MobilePayment:
    def __init__(self, config: Config, connectors: Mapping[int, ConnectorRuntime],
                 csms: Callable[[], CsmsAdapter | None], show_idle: Callable[[ConnectorRuntime], None],
                 show: Callable[[ConnectorRuntime, DisplayMessage], None], publish: Callable[[ChargerEvent], None],
                 clock: Callable[[], float] = time.time) -> None:
        self.connectors = connectors
        self._csms = csms
        self._show_idle = show_idle
        self._show = show
        self._publish = publish
        self.codes: QrCodes | None = None
        if config.qr.enabled and config.qr.key is not None and config.ocpp is not None:
            self.codes = QrCodes(config.qr.payment_url, config.qr.key.get_secret_value().encode(),
                                 config.ocpp.charge_point_id, config.qr.validity_s, clock)
        self._shown: dict[int, str | None] = {}

    @property
    def enabled(self) -> bool:
        return self.codes is not None

    def text_for(self, c: ConnectorRuntime) -> str | None:
        """The code to show on ``c`` now, or None (off, offline, or the connector is not free)."""
        csms = self._csms()
        if self.codes is None or csms is None or not csms.connected:
            return None
        if c.session is not None or c.core.status is not ConnectorStatus.Available:
            return None
        url = self.codes.current(c.connector_id).url
        self._shown[c.connector_id] = url
        return url

    def why_not_shown(self, c: ConnectorRuntime) -> str:
        if self.codes is None:
            return "QR payment is not enabled ([qr] enabled = true)"
        csms = self._csms()
        if csms is None or not csms.connected:
            return "the charger is offline: a paid code could not start a session"
        return f"connector {c.connector_id} is not free ({c.core.status})"

    def claim(self, connector_id: int, id_tag: str) -> bool:
        """May a remote start for ``id_tag`` begin on ``connector_id``? A QR idTag uses up its attempt."""
        if self.codes is None or not is_qr_id_tag(id_tag.upper()):
            return True
        refused = self.codes.claim(connector_id, id_tag)
        if refused is None:
            log.info("connector %d: a paid QR code starts the session (%s)", connector_id, id_tag)
            return True
        log.warning("connector %d: remote start for QR idTag %s refused: %s", connector_id, id_tag, refused)
        self._publish(SecurityEvent("QrCodeRefused", f"connector {connector_id}, idTag {id_tag}: {refused}",
                                    datetime.now(UTC)))
        return False

    def _hide_code(self, c: ConnectorRuntime) -> None:
        """A busy connector, or an offline charger, shows no payment code: the screen keeps its text, without the
        code."""
        shown = c.hw.display.shown()
        if self.codes is None or shown is None or not (shown.qr_code_text or "").startswith(self.codes.payment_url):
            return
        lines = () if shown.kind is DisplayKind.info else shown.lines  # "scan to pay" means nothing any more
        self._show(c, DisplayMessage(shown.kind, lines, shown.language))

    async def run(self) -> None:
        """Keep each free connector's code current: shown when it should be, hidden when not, renewed in time."""
        while self.codes is not None:
            for c in self.connectors.values():
                if c.session is not None or c.core.status is not ConnectorStatus.Available:
                    self._shown.pop(c.connector_id, None)
                    self._hide_code(c)
                    continue
                shown = self._shown.get(c.connector_id)
                wanted = self.text_for(c)
                if wanted != shown:
                    if wanted is None:  # offline: the price stays, the code goes
                        self._shown.pop(c.connector_id, None)
                        self._hide_code(c)
                    else:
                        self._show_idle(c)
            await asyncio.sleep(REFRESH_S)
