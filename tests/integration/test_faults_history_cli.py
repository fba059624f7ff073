"""``chargepoint faults --history`` after a real run on simulated hardware, read while the daemon is stopped."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from tests.integration.harness import make_config, running_charger

ROOT = Path(__file__).resolve().parents[2]


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chargepoint", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)


async def test_the_fault_history_names_each_fault_with_start_end_and_duration(tmp_path: Path) -> None:
    async with running_charger(make_config(tmp_path)) as charger:
        charger.sim().apply("fault", "ground-fault")
        await charger.wait_status("Faulted")
        await asyncio.sleep(0.3)
        charger.sim().apply("clear-fault")
        await charger.wait_for(lambda: charger.status()["status"] != "Faulted", what="cleared")
    config = tmp_path / "config.toml"
    config.write_text(f'[hardware]\nbackend = "sim"\n[storage]\ndir = "{tmp_path}"\n')
    done = await asyncio.to_thread(cli, config, "faults", "--history", "--json")
    assert done.returncode == 0, done.stderr
    faults = json.loads(done.stdout)["faults"]
    assert len(faults) >= 1
    first = faults[0]
    assert first["connector_id"] == 1 and first["active"] is False and first["end"] is not None
    assert first["start"] <= first["end"] and first["duration_s"] >= 0
    text = await asyncio.to_thread(cli, config, "faults", "--history")
    assert f"connector 1  {first['code']}" in text.stdout and "until" in text.stdout
