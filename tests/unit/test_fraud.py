"""Fraud controls (issue 14 point 8): each pattern recorded once as a security event, with fake clocks."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chargepoint.core.metering import MeterReading
from chargepoint.ports.events import ChargerEvent, MeterRead, SecurityEvent
from chargepoint.runtime.fraud import FraudSettings, FraudWatch


@dataclass
class Core:
    contactor_commanded: bool = False


@dataclass
class Session:
    id_tag: str


@dataclass
class Connector:
    connector_id: int
    session: Session | None = None
    core: Core = field(default_factory=Core)


class Clocks:
    def __init__(self) -> None:
        self.mono_s = 1000.0
        self.wall_s = 1_800_000_000.0

    def tick(self, seconds: float) -> None:
        self.mono_s += seconds
        self.wall_s += seconds


def watch(settings: FraudSettings | None = None) -> tuple[FraudWatch, dict[int, Any], list[SecurityEvent], Clocks]:
    clocks = Clocks()
    connectors: dict[int, Any] = {1: Connector(1), 2: Connector(2)}
    events: list[SecurityEvent] = []

    def publish(event: ChargerEvent) -> None:
        assert isinstance(event, SecurityEvent)
        events.append(event)

    fraud = FraudWatch(settings or FraudSettings(), connectors, publish, lambda: clocks.mono_s, lambda: clocks.wall_s)
    return fraud, connectors, events, clocks


def reading(energy_Wh: int) -> MeterRead:
    return MeterRead(1, MeterReading(energy_Wh, 0.0, (230.0, 230.0, 230.0), (0.0, 0.0, 0.0), 0.0), datetime.now(UTC))


def test_repeated_unknown_cards_lock_the_reader_for_a_while() -> None:
    fraud, _, events, clocks = watch(FraudSettings(unknown_card_taps_max=3, unknown_card_window_s=60,
                                                   unknown_card_lockout_s=30))
    fraud.card_rejected(1, "A1")
    clocks.tick(61)  # the first falls out of the window
    fraud.card_rejected(1, "A2")
    fraud.card_rejected(1, "A3")
    assert events == [] and not fraud.taps_locked(1)
    fraud.card_rejected(1, "A4")
    assert [e.kind for e in events] == ["RepeatedUnknownCards"] and "A4" in events[0].detail
    assert fraud.taps_locked(1) and not fraud.taps_locked(2)
    clocks.tick(29.9)
    assert fraud.taps_locked(1)
    clocks.tick(0.2)
    assert not fraud.taps_locked(1)


def test_the_same_card_on_two_connectors_is_reported_and_refused_if_configured() -> None:
    fraud, connectors, events, _ = watch()
    connectors[1].session = Session("CARD-7")
    assert fraud.card_in_use_elsewhere(1, "card-7") is False  # its own connector
    assert fraud.card_in_use_elsewhere(2, "card-7") is False  # reported, allowed by default
    assert [e.kind for e in events] == ["SameCardOnTwoConnectors"]
    strict, connectors, events, _ = watch(FraudSettings(refuse_card_in_use=True))
    connectors[1].session = Session("CARD-7")
    assert strict.card_in_use_elsewhere(2, "CARD-7") is True and "refused" in events[0].detail


def test_energy_with_no_session_is_reported_once_per_idle_spell() -> None:
    fraud, connectors, events, _ = watch(FraudSettings(idle_energy_threshold_Wh=10))
    for energy_Wh in (1000, 1005, 1009):
        fraud.charger_event(reading(energy_Wh))
    assert events == []
    fraud.charger_event(reading(1010))
    fraud.charger_event(reading(1050))
    assert [e.kind for e in events] == ["EnergyWithoutSession"]
    connectors[1].session = Session("CARD-1")  # a session draws: not reported, and the spell ends
    fraud.charger_event(reading(2000))
    connectors[1].session = None
    fraud.charger_event(reading(2000))
    fraud.charger_event(reading(2009))
    assert len(events) == 1
    fraud.charger_event(reading(2010))
    assert [e.kind for e in events] == ["EnergyWithoutSession"] * 2


def test_a_meter_register_going_back_is_a_replaced_meter() -> None:
    fraud, connectors, events, _ = watch()
    connectors[1].session = Session("CARD-1")
    fraud.charger_event(reading(50_000))
    fraud.charger_event(reading(50_001))
    fraud.charger_event(reading(12))
    assert [e.kind for e in events] == ["MeterReplaced"] and "50001 Wh to 12 Wh" in events[0].detail


def test_a_wall_clock_jump_is_setting_system_time() -> None:
    fraud, _, events, clocks = watch(FraudSettings(clock_jump_threshold_s=120))
    clocks.tick(10)
    fraud.check_clock()
    clocks.wall_s += 119  # drift and small corrections pass
    fraud.check_clock()
    assert events == []
    clocks.wall_s -= 3600
    fraud.check_clock()
    assert [e.kind for e in events] == ["SettingSystemTime"] and "-3600 s" in events[0].detail

