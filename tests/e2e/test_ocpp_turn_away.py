"""A remote start the charger must turn down because no connector can take it is recorded as a refused attempt, so
the usage report counts the driver it turned away."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from chargepoint.store.history import HistoryEvent
from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config, registered
from tests.integration.harness import running_charger

CARD = "04A1B2C3"


async def test_a_remote_start_while_the_only_connector_is_busy_is_a_driver_turned_away(tmp_path: Path,
                                                                                       csms: TestCsms) -> None:
    async with running_charger(ocpp_config(tmp_path, csms)) as charger:
        await registered(charger)
        await charger.charge(card=CARD)
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"idTag": "OTHER-DRIVER"})
        assert reply == {"status": "Rejected"}
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 1, "idTag": "OTHER-DRIVER"})
        assert reply == {"status": "Rejected"}
        reply = await csms.call(CP_ID, "RemoteStartTransaction", {"connectorId": 7, "idTag": "OTHER-DRIVER"})
        assert reply == {"status": "Rejected"}  # no such connector: a wrong request, not a driver
        await asyncio.sleep(1.2)  # the history is written once a second
        now = datetime.now(UTC)
        events: list[HistoryEvent] = await charger.store.history_events(now - timedelta(hours=1), now)
    refused = [(e.connector_id, e.detail) for e in events if e.kind == "attempt" and e.value == "refused"]
    assert refused == [(0, "remote start: no connector free"), (1, "remote start: connector Charging")]
