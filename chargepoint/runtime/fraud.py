"""Fraud controls: patterns that suggest abuse or tampering, each recorded as a security event (and sent to the
CSMS as SecurityEventNotification by the OCPP adapter).

- Repeated unknown cards: more than ``unknown_card_taps_max`` rejected taps on a connector within
  ``unknown_card_window_s`` locks its reader for ``unknown_card_lockout_s`` (a card-guessing attempt, or a
  cloned-card search): further taps are ignored meanwhile. ``RepeatedUnknownCards``.
- The same card on two connectors at once (a cloned card): ``SameCardOnTwoConnectors``; refused where
  ``refuse_card_in_use``.
- Energy through the meter while no session runs (a bypassed or welded contactor, a tapped supply):
  ``EnergyWithoutSession``, once per idle spell.
- The meter's import register going backwards (a meter replaced or reset): ``MeterReplaced``.
- The wall clock jumping against the monotonic clock (someone set the time): ``SettingSystemTime``.
- The enclosure opened (its tamper switch, where one is wired): ``TamperDetectionActivated``, at once and also when
  the charger starts with it open.

Payment cards have their own controls in the card flow (a capture above its pre-authorisation is refused).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from chargepoint.ports.events import ChargerEvent, MeterRead, SecurityEvent
from chargepoint.runtime.connector import ConnectorRuntime
from hal.protocols import TamperSwitch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FraudSettings:
    unknown_card_taps_max: int = 5
    unknown_card_window_s: float = 60.0
    unknown_card_lockout_s: float = 60.0
    refuse_card_in_use: bool = False
    idle_energy_threshold_Wh: int = 10
    clock_jump_threshold_s: float = 120.0
    clock_check_interval_s: float = 10.0


class FraudWatch:
    def __init__(self, settings: FraudSettings, connectors: Mapping[int, ConnectorRuntime],
                 publish: Callable[[ChargerEvent], None], monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.connectors = connectors
        self._publish = publish
        self._monotonic = monotonic
        self._wall = wall
        self._rejected: dict[int, deque[float]] = {}
        self._locked_until_s: dict[int, float] = {}
        self._idle_baseline_Wh: dict[int, int] = {}
        self._idle_reported: set[int] = set()
        self._last_Wh: dict[int, int] = {}
        self._clock_offset_s = wall() - monotonic()

    def _event(self, kind: str, tech_info: str) -> None:
        log.warning("security event %s: %s", kind, tech_info)
        self._publish(SecurityEvent(kind, tech_info, datetime.now(UTC)))

    # ----------------------------------------------------------------- cards

    def taps_locked(self, connector_id: int) -> bool:
        """Whether taps on this connector are ignored now (too many unknown cards lately)."""
        return self._monotonic() < self._locked_until_s.get(connector_id, 0.0)

    def card_rejected(self, connector_id: int, id_tag: str) -> None:
        now_s = self._monotonic()
        taps = self._rejected.setdefault(connector_id, deque())
        taps.append(now_s)
        while taps and taps[0] < now_s - self.settings.unknown_card_window_s:
            taps.popleft()
        if len(taps) >= self.settings.unknown_card_taps_max:
            taps.clear()
            self._locked_until_s[connector_id] = now_s + self.settings.unknown_card_lockout_s
            self._event("RepeatedUnknownCards", f"connector {connector_id}: {self.settings.unknown_card_taps_max} "
                        f"unknown cards within {self.settings.unknown_card_window_s:g} s (last {id_tag}); the "
                        f"reader ignores taps for {self.settings.unknown_card_lockout_s:g} s")

    def card_in_use_elsewhere(self, connector_id: int, id_tag: str) -> bool:
        """Whether ``id_tag`` must be refused on ``connector_id`` because it charges elsewhere (recorded)."""
        for other in self.connectors.values():
            if other.connector_id != connector_id and other.session is not None and \
                    other.session.id_tag.upper() == id_tag.upper():
                refused = self.settings.refuse_card_in_use
                self._event("SameCardOnTwoConnectors", f"card {id_tag} presented on connector {connector_id} while "
                            f"it charges on connector {other.connector_id}" + ("; refused" if refused else ""))
                return refused
        return False

    # ----------------------------------------------------------------- meter

    def charger_event(self, event: ChargerEvent) -> None:
        if isinstance(event, MeterRead):
            self._meter(event.connector_id, event.reading.energy_Wh_import)

    def _meter(self, connector_id: int, energy_Wh: int) -> None:
        last = self._last_Wh.get(connector_id)
        self._last_Wh[connector_id] = energy_Wh
        if last is not None and energy_Wh < last:
            self._event("MeterReplaced", f"connector {connector_id}: the meter's import register went back from "
                        f"{last} Wh to {energy_Wh} Wh (meter replaced or reset)")
            self._idle_baseline_Wh.pop(connector_id, None)
        c = self.connectors.get(connector_id)
        if c is None:
            return
        if c.session is not None or c.core.contactor_commanded:
            self._idle_baseline_Wh.pop(connector_id, None)
            self._idle_reported.discard(connector_id)
            return
        baseline = self._idle_baseline_Wh.setdefault(connector_id, energy_Wh)
        drawn_Wh = energy_Wh - baseline
        if drawn_Wh >= self.settings.idle_energy_threshold_Wh and connector_id not in self._idle_reported:
            self._idle_reported.add(connector_id)
            self._event("EnergyWithoutSession", f"connector {connector_id}: {drawn_Wh} Wh through the meter with no "
                        "session and the contactor commanded open (bypass, weld or tapped supply?)")

    # ----------------------------------------------------------------- clock

    def check_clock(self) -> None:
        offset_s = self._wall() - self._monotonic()
        jump_s = offset_s - self._clock_offset_s
        self._clock_offset_s = offset_s
        if abs(jump_s) >= self.settings.clock_jump_threshold_s:
            self._event("SettingSystemTime", f"the wall clock jumped {jump_s:+.0f} s")

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.clock_check_interval_s)
            self.check_clock()

    # ----------------------------------------------------------------- enclosure

    async def watch_tamper(self, tamper: TamperSwitch) -> None:
        if tamper.opened():
            self._event("TamperDetectionActivated", "the charger started with its enclosure open")
        async for opened in tamper.changes():
            if opened:
                self._event("TamperDetectionActivated", "the enclosure was opened (tamper switch)")
            else:
                log.info("the enclosure is closed again (tamper switch)")
