"""The simulated backend as a ``Hardware``: a ``SimulatedStation``'s devices behind the same ports as a board's.

The meter is the real driver of the station's meter model (SDM630, or the Iskra WM3M4C that signs its readings)
reading the station's Modbus TCP server, so the simulated path runs the same driver code as a charger does over
RS-485. ``station`` is the stimulus port (plug, charge, tap, faults).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hal.hardware import ConnectorHardware, Hardware, LazyMeter, LazySigningMeter
from hal.protocols import EnergyMeter
from hal.registry import load_backend
from simulators.station import SimConnector, SimParameters, SimulatedStation


@dataclass(slots=True)
class SimulatedHardware(Hardware):
    station: SimulatedStation

    async def start(self) -> None:
        """The station's meter servers and physics need a running loop."""
        await self.station.start()

    async def aclose(self) -> None:
        await Hardware.aclose(self)
        await self.station.stop()


def sim_parameters(section: Mapping[str, Any]) -> SimParameters:
    """Simulator parameters from a ``[simulator]`` table (validated or raw TOML: same names)."""
    return SimParameters(**section)


def _meter(sim: SimConnector) -> EnergyMeter:
    model = sim.params.meter_model

    def build() -> EnergyMeter:
        host, port, device_id = sim.meter_endpoint  # known once the station has started
        meter: EnergyMeter = load_backend("meter", model).tcp(host, port, device_id=device_id, timeout_s=0.5)
        return meter

    return LazySigningMeter(build) if model == "iskra_wm3m4c" else LazyMeter(build)


def simulated_hardware(params: SimParameters, connector_count: int) -> SimulatedHardware:
    """Every device in its safe state; nothing runs until ``start()``."""
    station = SimulatedStation(params, connector_count=connector_count)
    connectors = [
        ConnectorHardware(
            connector_id=c.connector_id, pilot=c.pilot, contactor=c.contactor, meter=_meter(c), rfid=c.rfid,
            lock=c.lock, rcd=c.rcd, mains=c.mains, display=c.display, pp=c.pp,
            shunt_trip=c.shunt_trip,
        )
        for c in station.connectors
    ]
    return SimulatedHardware(connectors=connectors, station=station, tamper=station.tamper)
