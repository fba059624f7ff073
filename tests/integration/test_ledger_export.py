"""Exports carry the chain (issue 14 point 7): each session in `chargepoint sessions` names its ledger record."""

from __future__ import annotations

from pathlib import Path

from tests.integration.harness import make_config, running_charger


async def test_each_exported_session_names_its_ledger_record(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:  # free vend: plug and charge
        for _ in range(2):
            charger.sim().apply("plug")
            await charger.wait_for(lambda: charger.status()["session"] is not None, what="a session")
            charger.sim().apply("unplug")
            await charger.wait_for(lambda: charger.status()["status"] == "Available", what="free")
        await charger.app.flush_store()
        rows = await charger.app.recent_sessions(10)
        records = {r.body["session_id"]: r for r in await charger.store.ledger() if r.kind == "session"}
    assert len(rows) == 2
    for row in rows:
        record = records[row["session_id"]]
        assert (row["ledger_seq"], row["ledger_hash"]) == (record.seq, record.hash)
        assert row["payment_method"] == "free"
