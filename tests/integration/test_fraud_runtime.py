"""Fraud controls through the charger on simulated hardware (issue 14 point 8)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chargepoint.ports.events import ChargerEvent, SecurityEvent
from tests.integration.harness import make_config, running_charger


async def test_through_the_charger_unknown_cards_lock_the_reader_and_a_known_card_then_waits(tmp_path: Path) -> None:
    """Standalone, on simulated hardware: five unknown taps, the event, the sixth tap (even a known card) ignored
    while the reader is locked."""
    seen: list[ChargerEvent] = []

    class Listener:
        def charger_event(self, event: ChargerEvent) -> None:
            seen.append(event)

    config = make_config(tmp_path, charger={"allowed_id_tags": ["GOOD-1"], "free_vend": False},
                         fraud={"unknown_card_taps_max": 5, "unknown_card_lockout_s": 60})
    async with running_charger(config, Listener()) as charger:
        charger.sim().apply("plug")
        for i in range(5):
            charger.sim().apply("tap", f"BAD-{i}")
            await asyncio.sleep(0.1)
        await charger.wait_for(lambda: any(isinstance(e, SecurityEvent) and e.kind == "RepeatedUnknownCards"
                                           for e in seen), what="the event")
        charger.sim().apply("tap", "GOOD-1")
        await asyncio.sleep(0.5)
        assert charger.status()["session"] is None  # ignored while locked


async def test_opening_the_enclosure_is_tamper_detection(tmp_path: Path) -> None:
    seen: list[ChargerEvent] = []

    class Listener:
        def charger_event(self, event: ChargerEvent) -> None:
            seen.append(event)

    async with running_charger(make_config(tmp_path), Listener()) as charger:
        assert charger.app.status()["enclosure_open"] is False
        charger.sim().apply("fault", "tamper")
        await charger.wait_for(lambda: any(isinstance(e, SecurityEvent) and e.kind == "TamperDetectionActivated"
                                           for e in seen), what="the tamper event")
        assert charger.app.status()["enclosure_open"] is True
        charger.sim().apply("clear-fault")
        await charger.wait_for(lambda: charger.app.status()["enclosure_open"] is False, what="closed again")
    assert [e.kind for e in seen if isinstance(e, SecurityEvent)].count("TamperDetectionActivated") == 1
