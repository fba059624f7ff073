"""Pick each device's backend from config and import it lazily.

CI and laptops never import RPi/lgpio/nfc modules: a backend's module is imported only when the
config names it, and a missing package becomes ``BackendUnavailable`` naming the backend.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hal.errors import BackendUnavailable
from hal.protocols import (
    ConnectorLock,
    Contactor,
    ControlPilot,
    EnergyMeter,
    MainsMonitor,
    ResidualCurrentMonitor,
    RfidReader,
)

if TYPE_CHECKING:
    from chargepoint.config.schema import Config
    from simulators.station import SimulatedStation

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
    _closables: list[Any] = field(default_factory=list)

    async def force_safe(self) -> None:
        """Contactors open and pilots at +12 V, whatever happened before. Never raises."""
        for hw in self.connectors:
            for action in (hw.contactor.open, hw.pilot.set_high):
                try:
                    await action()
                except Exception:  # noqa: BLE001 - the safe state must be attempted on every device
                    pass

    async def aclose(self) -> None:
        await self.force_safe()
        for hw in self.connectors:
            for device in (hw.meter, hw.rfid, hw.lock, hw.rcd, hw.mains, hw.pilot, hw.contactor):
                await device.aclose()
        if self.station is not None:
            await self.station.stop()


async def build_hardware(config: Config) -> Hardware:
    """Build every device the config names. Simulated devices share one simulated station."""
    if config.hardware.backend == "sim":
        return await _build_simulated(config)
    raise BackendUnavailable(
        "hardware backend 'rpi' needs the pilot/RCD board drivers, which are not written yet; "
        "use [hardware] backend = \"sim\""
    )


async def _build_simulated(config: Config) -> Hardware:
    from simulators.station import SimParameters

    station_class = load_backend("station", "sim")
    meter_class = load_backend("meter", "sdm630")
    sim = config.simulator
    params = SimParameters(
        ev_max_current_A=sim.ev_max_current_A,
        ev_phases=sim.ev_phases,
        ev_follow_s=sim.ev_follow_s,
        ev_battery_Wh=sim.ev_battery_Wh,
        ev_soc_percent=sim.ev_soc_percent,
        voltage_V=sim.voltage_V,
        contactor_feedback_delay_s=sim.contactor_feedback_delay_s,
        lock_delay_s=sim.lock_delay_s,
        meter_port=sim.meter_port,
        time_scale=sim.time_scale,
    )
    station: SimulatedStation = station_class(params, connector_count=config.charger.connectors)
    await station.start()
    connectors = []
    for sim_connector in station.connectors:
        host, port, device_id = sim_connector.meter_endpoint
        connectors.append(
            ConnectorHardware(
                connector_id=sim_connector.connector_id,
                pilot=sim_connector.pilot,
                contactor=sim_connector.contactor,
                # The real driver, talking Modbus TCP to the simulated meter.
                meter=meter_class.tcp(host, port, device_id=device_id, timeout_s=0.5),
                rfid=sim_connector.rfid,
                lock=sim_connector.lock,
                rcd=sim_connector.rcd,
                mains=sim_connector.mains,
            )
        )
    return Hardware(connectors=connectors, station=station)
