"""Run the real app (core + runtime + store + simulators + Modbus meter) inside the test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargepoint.composition.charger import build_charger
from chargepoint.composition.devices import build_hardware
from chargepoint.config.loader import parse_config
from chargepoint.config.schema import Config
from chargepoint.ocpp.v16.client import OcppClient
from chargepoint.ports.events import ChargerListener
from chargepoint.runtime.app import ChargerApp
from chargepoint.store import Store
from hal.hardware import Hardware
from simulators.station import SimConnector, SimulatedStation

# Fast but realistic: short delays so tests finish quickly, the same rules as the defaults.
FAST: dict[str, dict[str, Any]] = {
    "charger": {
        "meter_poll_interval_s": 0.1,
        "pwm_min_update_interval_s": 0.3,
        "contactor_feedback_timeout_s": 0.3,
        "connection_timeout_s": 2.0,
        "overcurrent_grace_s": 1.0,
        # A loaded CI runner can stall the loop for longer than the 100 ms a charger allows.
        "pilot_timeout_s": 0.5,
    },
    "simulator": {"contactor_feedback_delay_s": 0.01, "lock_delay_s": 0.01, "ev_follow_s": 0.2, "time_scale": 60},
    "hardware": {"backend": "sim"},
}


def make_config(tmp_path: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {name: dict(values) for name, values in FAST.items()}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    data["storage"] = {"dir": str(tmp_path)}
    return parse_config(data, tmp_path / "config.toml")


@dataclass
class Charger:
    app: ChargerApp
    hardware: Hardware
    store: Store

    @property
    def ocpp(self) -> OcppClient | None:
        """The OCPP 1.6 adapter the composition root attached, if the config has an [ocpp] section."""
        assert self.app.csms is None or isinstance(self.app.csms, OcppClient)
        return self.app.csms

    @property
    def station(self) -> SimulatedStation:
        assert self.hardware.station is not None
        return self.hardware.station

    def sim(self, connector_id: int = 1) -> SimConnector:
        return self.station.connector(connector_id)

    def status(self, connector_id: int = 1) -> dict[str, Any]:
        connectors = self.app.status()["connectors"]
        result = connectors[connector_id - 1]
        assert isinstance(result, dict)
        return result

    async def wait_for(self, predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what or predicate}: status {self.status()}")
            await asyncio.sleep(0.01)

    async def wait_status(self, wanted: str, connector_id: int = 1, timeout_s: float = 5.0) -> None:
        await self.wait_for(lambda: self.status(connector_id)["status"] == wanted, timeout_s, f"status {wanted}")

    async def charge(self, connector_id: int = 1, card: str | None = None) -> None:
        """Plug in, authorize (card or free vend), ask for energy; return once Charging."""
        sim = self.sim(connector_id)
        await self.wait_for(lambda: self.status(connector_id)["meter_energy_Wh"] is not None, what="meter")
        sim.apply("plug")
        if card is not None:
            await self.wait_status("Preparing", connector_id)
            sim.apply("tap", card)
        await self.wait_status("SuspendedEV", connector_id)
        sim.apply("charge")
        await self.wait_status("Charging", connector_id)


@asynccontextmanager
async def running_charger(config: Config, listener: ChargerListener | None = None) -> AsyncIterator[Charger]:
    hardware = await build_hardware(config)
    store = await Store.open(config.storage.database_path)
    app = build_charger(config, hardware, store)
    if listener is not None:
        app.add_listener(listener)
    stop = asyncio.Event()
    ready = asyncio.Event()

    async def on_ready() -> None:
        ready.set()

    task = asyncio.create_task(app.run(stop, ready=on_ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        yield Charger(app, hardware, store)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await store.close()
        await hardware.aclose()
