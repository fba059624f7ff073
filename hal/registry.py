"""Pick each device's backend from config and import it lazily.

CI and laptops never import RPi/lgpio/nfc modules: a backend's module is imported only when the
config names it, and a missing package becomes ``BackendUnavailable`` naming the backend.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hal.errors import BackendUnavailable
from hal.protocols import (
    ConnectorLock,
    Contactor,
    ControlPilot,
    EnergyMeter,
    MainsMonitor,
    MeterReading,
    ResidualCurrentMonitor,
    RfidReader,
)

if TYPE_CHECKING:
    from chargepoint.config.schema import Config
    from simulators.station import SimParameters, SimulatedStation

# (device, backend) -> "module:attribute"
BACKENDS: dict[tuple[str, str], str] = {
    ("station", "sim"): "simulators.station:SimulatedStation",
    ("meter", "sdm630"): "hal.drivers.sdm630:Sdm630Meter",
    ("contactor", "gpio"): "hal.drivers.gpio_contactor:GpioContactor",
}


def load_backend(device: str, backend: str) -> Any:
    try:
        target = BACKENDS[(device, backend)]
    except KeyError:
        known = sorted(name for dev, name in BACKENDS if dev == device)
        raise BackendUnavailable(f"no {device} backend named {backend!r} (known: {', '.join(known)})") from None
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise BackendUnavailable(
            f"{device} backend {backend!r} cannot be loaded: {exc} (install the 'rpi' extra on the charger)"
        ) from exc
    return getattr(module, attribute)


@dataclass(slots=True)
class ConnectorHardware:
    connector_id: int
    pilot: ControlPilot
    contactor: Contactor
    meter: EnergyMeter
    rfid: RfidReader
    lock: ConnectorLock
    rcd: ResidualCurrentMonitor
    mains: MainsMonitor


@dataclass(slots=True)
class Hardware:
    connectors: list[ConnectorHardware]
    station: SimulatedStation | None = None  # the stimulus port; None on real hardware

    async def force_safe(self) -> None:
        """Contactors open and pilots at +12 V, whatever happened before. Never raises."""
        for hw in self.connectors:
            for action in (hw.contactor.open, hw.pilot.set_high):
                # The safe state must be attempted on every device, whatever one of them raises.
                with contextlib.suppress(Exception):
                    await action()

    async def start(self) -> None:
        """Start what needs a running loop (the simulated station's meter servers and physics)."""
        if self.station is not None:
            await self.station.start()

    async def aclose(self) -> None:
        await self.force_safe()
        for hw in self.connectors:
            for device in (hw.meter, hw.rfid, hw.lock, hw.rcd, hw.mains, hw.pilot, hw.contactor):
                await device.aclose()
        if self.station is not None:
            await self.station.stop()


def sim_parameters(section: dict[str, Any]) -> SimParameters:
    """Simulator parameters from a ``[simulator]`` table (validated or raw TOML: same names)."""
    from simulators.station import SimParameters

    return SimParameters(**section)


def create_hardware(backend: str, connector_count: int, simulator: dict[str, Any]) -> Hardware:
    """Construct every device in its safe state without starting any I/O loop or server.

    Kept free of heavy imports (pydantic, pymodbus) so that the daemon can reach the safe state
    before it even validates its configuration.
    """
    if backend != "sim":
        raise BackendUnavailable(
            "hardware backend 'rpi' needs the pilot/RCD board drivers, which are not written yet; "
            "use [hardware] backend = \"sim\""
        )
    station_class = load_backend("station", "sim")
    station: SimulatedStation = station_class(sim_parameters(simulator), connector_count=connector_count)
    connectors = [
        ConnectorHardware(
            connector_id=c.connector_id,
            pilot=c.pilot,
            contactor=c.contactor,
            meter=_DeferredMeter(c),
            rfid=c.rfid,
            lock=c.lock,
            rcd=c.rcd,
            mains=c.mains,
        )
        for c in station.connectors
    ]
    return Hardware(connectors=connectors, station=station)


def create_hardware_for(config: Config) -> Hardware:
    return create_hardware(config.hardware.backend, config.charger.connectors, config.simulator.model_dump())


async def build_hardware(config: Config) -> Hardware:
    """Construct and start every device the config names."""
    hardware = create_hardware_for(config)
    await hardware.start()
    return hardware


class _DeferredMeter:
    """The real SDM630 driver, connected to the simulated meter once its server has a port."""

    def __init__(self, sim_connector: Any) -> None:
        self._sim_connector = sim_connector
        self._driver: EnergyMeter | None = None

    async def read(self) -> MeterReading:
        if self._driver is None:
            meter_class = load_backend("meter", "sdm630")
            host, port, device_id = self._sim_connector.meter_endpoint
            self._driver = meter_class.tcp(host, port, device_id=device_id, timeout_s=0.5)
        assert self._driver is not None
        return await self._driver.read()

    async def aclose(self) -> None:
        if self._driver is not None:
            await self._driver.aclose()
