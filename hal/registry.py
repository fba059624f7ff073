"""Pick each device's backend from config and import it lazily.

CI and laptops never import RPi/lgpio/nfc modules: a backend's module is imported only when the
config names it, and a missing package becomes ``BackendUnavailable`` naming the backend.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hal.errors import BackendUnavailable
from hal.protocols import (
    ConnectorLock,
    Contactor,
    ControlPilot,
    Display,
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
    ("contactor", "gpio"): "hal.drivers.gpio_devices:GpioContactor",
    ("lock", "gpio"): "hal.drivers.gpio_devices:GpioLock",
    ("rcd", "gpio"): "hal.drivers.gpio_devices:GpioResidualCurrentMonitor",
    ("mains", "gpio"): "hal.drivers.gpio_devices:GpioMainsMonitor",
    ("pilot", "sysfs-pwm"): "hal.drivers.pwm_pilot:SysfsPwmPilot",
    ("pilot-adc", "mcp3008"): "hal.drivers.pwm_pilot:Mcp3008PilotSampler",
    ("rfid", "nfc"): "hal.drivers.nfc_reader:NfcRfidReader",
    ("rfid", "none"): "hal.drivers.nfc_reader:NoRfidReader",
    ("display", "log"): "hal.drivers.log_display:LogDisplay",
}

# Values of [hardware] backend = ...
HARDWARE_BACKENDS: tuple[str, ...] = ("rpi", "sim")


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
            f"{device} backend {backend!r} cannot be loaded: {exc} (on the charger: pip install 'chargepoint[rpi]')"
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
    display: Display


@dataclass(slots=True)
class Hardware:
    connectors: list[ConnectorHardware]
    station: SimulatedStation | None = None  # the stimulus port; None on real hardware
    # rpi: the [hardware] settings it was built from, defaults filled in (see rpi_settings)
    settings: dict[str, Any] | None = None

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
            # The display last: a broken screen must not keep the safety devices from closing.
            for device in (hw.meter, hw.rfid, hw.lock, hw.rcd, hw.mains, hw.pilot, hw.contactor, hw.display):
                await device.aclose()
        if self.station is not None:
            await self.station.stop()


def sim_parameters(section: dict[str, Any]) -> SimParameters:
    """Simulator parameters from a ``[simulator]`` table (validated or raw TOML: same names)."""
    from simulators.station import SimParameters

    return SimParameters(**section)


def create_hardware(
    backend: str,
    connector_count: int,
    simulator: dict[str, Any],
    hardware: dict[str, Any] | None = None,
) -> Hardware:
    """Construct every device in its safe state without starting any I/O loop or server.

    ``hardware`` is the ``[hardware]`` table as a plain dict (``model_dump()`` of the validated
    settings, or the raw TOML table); the rpi backend needs it, the sim backend ignores it.
    Kept free of heavy imports (pydantic, pymodbus) so that the daemon can reach the safe state
    before it even validates its configuration.
    """
    if backend == "rpi":
        return create_rpi_hardware(connector_count, hardware or {})
    if backend != "sim":
        raise BackendUnavailable(
            f"no hardware backend named {backend!r} (known: {', '.join(HARDWARE_BACKENDS)})"
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
            display=c.display,
        )
        for c in station.connectors
    ]
    return Hardware(connectors=connectors, station=station)


def create_hardware_for(config: Config) -> Hardware:
    return create_hardware(
        config.hardware.backend,
        config.charger.connectors,
        config.simulator.model_dump(),
        config.hardware.model_dump(),
    )


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


# ----------------------------------------------------------------------------- rpi backend

# The defaults of chargepoint.config.schema's hardware sections, repeated here because the raw TOML
# table is used before validation (no pydantic on the early path); tests check that they agree.
_RPI_DEFAULTS: dict[str, dict[str, Any]] = {
    "contactor": {"chip": 0, "relay_pin": 17, "feedback_pin": 27, "debounce_s": 0.01},
    "pilot": {
        "pwm_chip": 0,
        "pwm_channel": 0,
        "sysfs_root": "/sys/class/pwm",
        "spi_bus": 0,
        "spi_device": 0,
        "adc_channel": 0,
        "volts_per_count": 24.0 / 1023.0,
        "offset_V": -12.0,
        "poll_interval_s": 0.01,
    },
    "lock": {
        "chip": 0,
        "lock_pin": 5,
        "unlock_pin": 6,
        "sense_pin": 13,
        "sense_active_low": False,
        "pulse_s": 0.3,
        "timeout_s": 1.0,
    },
    "rcd": {"chip": 0, "pin": 22, "active_low": True},
    "mains": {"chip": 0, "pin": 23, "active_low": False},
    "rfid": {"backend": "nfc", "device": "usb"},
    "meter": {
        "backend": "sdm630",
        "transport": "tcp",
        "host": "127.0.0.1",
        "port": 502,
        "serial_port": "/dev/ttyUSB0",
        "baudrate": 9600,
        "parity": "N",
        "device_id": 1,
        "timeout_s": 1.0,
    },
}
# Without a [hardware.meter] table the rpi backend reads an SDM630 on the Pi's USB RS-485 adapter
# (9600 8N1, id 1: the meter's factory settings), the usual wiring of a one-connector box.
_RPI_DEFAULT_METER_TRANSPORT = "rtu"
_OPTIONAL_SECTIONS = ("lock", "meter")


def _resolve_section(name: str, table: object) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        raise TypeError(f"[hardware.{name}] must be a table")
    resolved: dict[str, Any] = {}
    for key, default in _RPI_DEFAULTS[name].items():
        value = table.get(key, default)
        if isinstance(default, bool | str | int):
            ok = type(value) is type(default)
        else:  # float: an integer is a float too, as in TOML validation
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        if not ok:
            raise TypeError(f"hardware.{name}.{key} = {value!r}: expected {type(default).__name__}")
        resolved[key] = value
    if name == "meter" and resolved["transport"] not in ("tcp", "rtu"):
        raise ValueError(f"hardware.meter.transport = {resolved['transport']!r}: expected 'tcp' or 'rtu'")
    return resolved


def rpi_settings(hardware: Mapping[str, Any]) -> dict[str, Any]:
    """The rpi backend's settings from a ``[hardware]`` table (raw or ``model_dump()``), defaults filled in.

    Sections ``lock`` and ``meter`` are None when absent: no lock means a tethered cable, no meter
    table means an SDM630 over RTU on /dev/ttyUSB0. Raises ``TypeError`` on a value of the wrong
    type (the schema's validation then explains it); unknown keys are left to the validation.
    """
    settings: dict[str, Any] = {}
    for name in _RPI_DEFAULTS:
        table = hardware.get(name)
        if table is None and name in _OPTIONAL_SECTIONS:
            settings[name] = None
        else:
            settings[name] = _resolve_section(name, {} if table is None else table)
    return settings


def _chip(number: int) -> str:
    return f"/dev/gpiochip{number}"


def rpi_lock(settings: Mapping[str, Any]) -> ConnectorLock:
    """The plug lock, or the tethered-cable variant when there is no ``[hardware.lock]``."""
    lock_class = load_backend("lock", "gpio")
    section = settings.get("lock")
    if section is None:
        lock: ConnectorLock = lock_class.tethered_cable()
        return lock
    lock = lock_class(
        _chip(section["chip"]),
        section["lock_pin"],
        section["unlock_pin"],
        section["sense_pin"],
        pulse_s=section["pulse_s"],
        timeout_s=section["timeout_s"],
        sense_active_low=section["sense_active_low"],
    )
    return lock


def _rpi_meter(section: Mapping[str, Any] | None) -> EnergyMeter:
    """The SDM630 driver, built on the first read: pymodbus stays off the early safe path."""
    if section is None:
        section = {**_RPI_DEFAULTS["meter"], "transport": _RPI_DEFAULT_METER_TRANSPORT}
    settings = dict(section)

    def build() -> EnergyMeter:
        meter_class = load_backend("meter", settings["backend"])
        if settings["transport"] == "rtu":
            meter: EnergyMeter = meter_class.rtu(
                settings["serial_port"],
                baudrate=settings["baudrate"],
                parity=settings["parity"],
                device_id=settings["device_id"],
                timeout_s=settings["timeout_s"],
            )
        else:
            meter = meter_class.tcp(
                settings["host"], settings["port"], device_id=settings["device_id"], timeout_s=settings["timeout_s"]
            )
        return meter

    return _LazyMeter(build)


def create_rpi_hardware(connector_count: int, hardware: Mapping[str, Any]) -> Hardware:
    """One connector on a Raspberry Pi board: GPIO contactor/lock/RCD/mains, sysfs PWM pilot with an
    MCP3008, nfcpy reader, SDM630 meter, the log as display. Devices are built safety-first (contactor, then pilot); if
    one cannot be built, those already built are released (released contactor line == open)."""
    if connector_count != 1:
        raise BackendUnavailable(
            f"hardware backend 'rpi' drives one connector per Pi board, the config asks for {connector_count}"
        )
    settings = rpi_settings(hardware)
    cleanup: list[Callable[[], None]] = []
    try:
        c = settings["contactor"]
        contactor = load_backend("contactor", "gpio")(
            _chip(c["chip"]), c["relay_pin"], c["feedback_pin"], debounce_s=c["debounce_s"]
        )
        cleanup.append(contactor.release)
        p = settings["pilot"]
        sampler = load_backend("pilot-adc", "mcp3008")(
            spi_bus=p["spi_bus"],
            spi_device=p["spi_device"],
            channel=p["adc_channel"],
            volts_per_count=p["volts_per_count"],
            offset_V=p["offset_V"],
        )
        cleanup.append(sampler.close)
        pilot = load_backend("pilot", "sysfs-pwm")(
            sampler,
            chip=p["pwm_chip"],
            channel=p["pwm_channel"],
            sysfs_root=p["sysfs_root"],
            poll_interval_s=p["poll_interval_s"],
        )
        rcd = load_backend("rcd", "gpio")(
            _chip(settings["rcd"]["chip"]), settings["rcd"]["pin"], active_low=settings["rcd"]["active_low"]
        )
        cleanup.append(rcd.release)
        mains = load_backend("mains", "gpio")(
            _chip(settings["mains"]["chip"]), settings["mains"]["pin"], active_low=settings["mains"]["active_low"]
        )
        cleanup.append(mains.release)
        lock = rpi_lock(settings)
        cleanup.append(getattr(lock, "release", lambda: None))
        r = settings["rfid"]
        rfid_class = load_backend("rfid", r["backend"])
        rfid = rfid_class() if r["backend"] == "none" else rfid_class(r["device"])
        # No panel driver yet: what a screen would show goes to the journal.
        display = load_backend("display", "log")(1)
    except BaseException:
        for release in reversed(cleanup):
            with contextlib.suppress(Exception):  # the error being raised is the one to report
                release()
        raise
    connector = ConnectorHardware(
        connector_id=1,
        pilot=pilot,
        contactor=contactor,
        meter=_rpi_meter(settings["meter"]),
        rfid=rfid,
        lock=lock,
        rcd=rcd,
        mains=mains,
        display=display,
    )
    return Hardware(connectors=[connector], settings=settings)


class _LazyMeter:
    """An ``EnergyMeter`` built on its first read (the driver's module imports pymodbus)."""

    def __init__(self, build: Callable[[], EnergyMeter]) -> None:
        self._build = build
        self._driver: EnergyMeter | None = None

    async def read(self) -> MeterReading:
        if self._driver is None:
            self._driver = self._build()
        return await self._driver.read()

    async def aclose(self) -> None:
        if self._driver is not None:
            await self._driver.aclose()
