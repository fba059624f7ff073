"""The charger with a signing meter (the simulated Iskra WM3M4C) and no CSMS: each session keeps the meter's signed
dataset; a meter that does not answer leaves the session unsigned but billed; another meter serial is a security
event, kept in the security log although no CSMS is there to hear of it."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from pyocmf import OCMF

from chargepoint.store import Store
from tests.integration.harness import Charger, make_config, running_charger

CARD = "04A1B2C3"


async def session(charger: Charger) -> dict[str, object]:
    await charger.charge(card=CARD)
    await asyncio.sleep(0.5)
    charger.sim().apply("tap", CARD)
    await charger.wait_status("Finishing")
    await charger.app.flush_store()
    return (await charger.app.recent_sessions(1))[0]


async def test_a_standalone_session_keeps_the_meters_signed_dataset(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": [CARD]},
                                           simulator={"meter_model": "iskra_wm3m4c"})) as charger:
        row = await session(charger)
    ocmf, key = row["signed_meter_data"], row["meter_public_key"]
    assert isinstance(ocmf, str) and isinstance(key, str)
    assert OCMF.from_string(ocmf).verify_signature(key)


async def test_a_silent_meter_leaves_the_session_unsigned_but_recorded(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    config = make_config(tmp_path, charger={"free_vend": False, "allowed_id_tags": [CARD]},
                         simulator={"meter_model": "iskra_wm3m4c"}, hardware={"backend": "sim"})
    async with running_charger(config) as charger:
        await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")
        charger.sim().apply("fault", "meter-offline")
        charger.sim().apply("plug")
        await charger.wait_status("Preparing")
        with caplog.at_level(logging.ERROR, logger="chargepoint.runtime.signed_metering"):
            charger.sim().apply("tap", CARD)
            await charger.wait_for(lambda: charger.status()["session"] is not None, what="session")
            await charger.wait_for(lambda: any("did not sign the begin" in r.getMessage() for r in caplog.records),
                                   timeout_s=20, what="the begin's failure")
        charger.sim().apply("clear-fault")
        charger.sim().apply("tap", CARD)
        await charger.wait_for(lambda: charger.status()["session"] is None, timeout_s=10, what="session ended")
        await charger.app.flush_store()
        row = (await charger.app.recent_sessions(1))[0]
    assert row["stopped_at"] is not None
    assert row["signed_meter_data"] is None and row["meter_public_key"] is None


async def test_another_meter_serial_on_a_connector_is_a_security_event(tmp_path: Path) -> None:
    config = make_config(tmp_path, simulator={"meter_model": "iskra_wm3m4c"})
    async with running_charger(config) as charger:
        first = await charger.store.get_kv("meter_serial.1")
        assert first  # the meter's serial, as read at start
        assert [e for e in await charger.store.security_log() if e.kind == "MeterReplaced"] == []
    store = await Store.open(config.storage.database_path)
    try:
        await store.set_kv("meter_serial.1", "59999999")  # the meter seen before was another one
    finally:
        await store.close()
    async with running_charger(config) as charger:
        await asyncio.sleep(0.2)  # the security log is written by its own task
        replaced = [e for e in await charger.store.security_log() if e.kind == "MeterReplaced"]
        assert len(replaced) == 1 and f"59999999 replaced by {first}" in replaced[0].tech_info
        assert await charger.store.get_kv("meter_serial.1") == first
