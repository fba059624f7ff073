"""The Raspberry Pi board backend: typed wiring settings and the build of its devices.

One connector per Pi: GPIO contactor (with mirror contact), lock, RCD and mains inputs; a sysfs PWM pilot
sampled by an MCP3008; an nfcpy reader; an SDM630 meter; the journal as display. Drivers take these plain
settings, never the config schema: ``rpi_settings`` reads them from the ``[hardware]`` table, raw TOML or
validated, without pydantic, so that the daemon reaches the safe state before it validates its config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from hal.errors import BackendUnavailable
from hal.hardware import ConnectorHardware, Hardware, LazyMeter, NoProximityInput
from hal.protocols import ConnectorLock, EnergyMeter
from hal.registry import load_backend

# The defaults below repeat those of chargepoint.config.schema's hardware sections, because the raw TOML
# table is used before validation; a test checks that they agree. NamedTuples, not dataclasses: they are built on
# the early safe path, where eight dataclasses would cost 5 ms on a fast machine and several times that on a Pi.


class ContactorWiring(NamedTuple):
    chip: int = 0
    relay_pin: int = 17
    feedback_pin: int = 27
    debounce_s: float = 0.01


class PilotWiring(NamedTuple):
    pwm_chip: int = 0
    pwm_channel: int = 0
    sysfs_root: str = "/sys/class/pwm"
    spi_bus: int = 0
    spi_device: int = 0
    adc_channel: int = 0
    volts_per_count: float = 24.0 / 1023.0
    offset_V: float = -12.0
    poll_interval_s: float = 0.01


class LockWiring(NamedTuple):
    chip: int = 0
    lock_pin: int = 5
    unlock_pin: int = 6
    sense_pin: int = 13
    sense_active_low: bool = False
    pulse_s: float = 0.3
    timeout_s: float = 1.0


class RcdWiring(NamedTuple):
    chip: int = 0
    pin: int = 22
    active_low: bool = True


class MainsWiring(NamedTuple):
    chip: int = 0
    pin: int = 23
    active_low: bool = False


class RfidSettings(NamedTuple):
    backend: str = "nfc"
    device: str = "usb"


class MeterSettings(NamedTuple):
    backend: str = "sdm630"
    transport: str = "tcp"
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    parity: str = "N"
    device_id: int = 1
    timeout_s: float = 1.0


# Without a [hardware.meter] table the board reads an SDM630 on the Pi's USB RS-485 adapter (9600 8N1, id 1:
# the meter's factory settings), the usual wiring of a one-connector box.
DEFAULT_METER = MeterSettings(transport="rtu")


class RpiSettings(NamedTuple):
    contactor: ContactorWiring
    pilot: PilotWiring
    lock: LockWiring | None  # None: a tethered cable, no lock
    rcd: RcdWiring
    mains: MainsWiring
    rfid: RfidSettings
    meter: MeterSettings | None  # None: DEFAULT_METER


_S = TypeVar("_S", bound=tuple[Any, ...])


def _section(cls: type[_S], name: str, table: object) -> _S:
    if not isinstance(table, Mapping):
        raise TypeError(f"[hardware.{name}] must be a table")
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
    for field_name, default in defaults.items():
        value = table.get(field_name, default)
        if isinstance(default, bool | str | int):
            ok = type(value) is type(default)
        else:  # float: an integer is a float too, as in TOML validation
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            value = float(value) if ok else value
        if not ok:
            raise TypeError(f"hardware.{name}.{field_name} = {value!r}: expected {type(default).__name__}")
        values[field_name] = value
    return cls(**values)


def rpi_settings(hardware: Mapping[str, Any]) -> RpiSettings:
    """The board's settings from a ``[hardware]`` table (raw or ``model_dump()``), defaults filled in.

    Raises ``TypeError`` on a value of the wrong type (the schema's validation then explains it); unknown keys
    are left to the validation.
    """

    def optional(cls: type[_S], name: str) -> _S | None:
        table = hardware.get(name)
        return None if table is None else _section(cls, name, table)

    meter = optional(MeterSettings, "meter")
    if meter is not None and meter.transport not in ("tcp", "rtu"):
        raise ValueError(f"hardware.meter.transport = {meter.transport!r}: expected 'tcp' or 'rtu'")
    return RpiSettings(
        contactor=_section(ContactorWiring, "contactor", hardware.get("contactor") or {}),
        pilot=_section(PilotWiring, "pilot", hardware.get("pilot") or {}),
        lock=optional(LockWiring, "lock"),
        rcd=_section(RcdWiring, "rcd", hardware.get("rcd") or {}),
        mains=_section(MainsWiring, "mains", hardware.get("mains") or {}),
        rfid=_section(RfidSettings, "rfid", hardware.get("rfid") or {}),
        meter=meter,
    )


@dataclass(slots=True)
class RpiHardware(Hardware):
    """The devices of one Pi board, with the settings they were built from."""

    settings: RpiSettings


def _chip(number: int) -> str:
    return f"/dev/gpiochip{number}"


def rpi_lock(settings: RpiSettings) -> ConnectorLock:
    """The plug lock, or the tethered-cable variant when there is no ``[hardware.lock]``."""
    lock_class = load_backend("lock", "gpio")
    wiring = settings.lock
    if wiring is None:
        lock: ConnectorLock = lock_class.tethered_cable()
        return lock
    lock = lock_class(
        _chip(wiring.chip), wiring.lock_pin, wiring.unlock_pin, wiring.sense_pin,
        pulse_s=wiring.pulse_s, timeout_s=wiring.timeout_s, sense_active_low=wiring.sense_active_low,
    )
    return lock


def rpi_meter(settings: MeterSettings | None) -> EnergyMeter:
    """The meter driver, built on the first read: pymodbus stays off the early safe path."""
    meter = DEFAULT_METER if settings is None else settings

    def build() -> EnergyMeter:
        meter_class = load_backend("meter", meter.backend)
        if meter.transport == "rtu":
            driver: EnergyMeter = meter_class.rtu(
                meter.serial_port, baudrate=meter.baudrate, parity=meter.parity, device_id=meter.device_id,
                timeout_s=meter.timeout_s,
            )
        else:
            driver = meter_class.tcp(meter.host, meter.port, device_id=meter.device_id, timeout_s=meter.timeout_s)
        return driver

    return LazyMeter(build)


def create_rpi_hardware(connector_count: int, settings: RpiSettings) -> RpiHardware:
    """Build the board's devices safety-first (contactor, then pilot); if one cannot be built, those already
    built are released (a released contactor line is an open contactor)."""
    if connector_count != 1:
        raise BackendUnavailable(
            f"hardware backend 'rpi' drives one connector per Pi board, the config asks for {connector_count}"
        )
    cleanup: list[Callable[[], None]] = []
    try:
        c = settings.contactor
        contactor = load_backend("contactor", "gpio")(
            _chip(c.chip), c.relay_pin, c.feedback_pin, debounce_s=c.debounce_s
        )
        cleanup.append(contactor.release)
        p = settings.pilot
        sampler = load_backend("pilot-adc", "mcp3008")(
            spi_bus=p.spi_bus, spi_device=p.spi_device, channel=p.adc_channel, volts_per_count=p.volts_per_count,
            offset_V=p.offset_V,
        )
        cleanup.append(sampler.close)
        pilot = load_backend("pilot", "sysfs-pwm")(
            sampler, chip=p.pwm_chip, channel=p.pwm_channel, sysfs_root=p.sysfs_root,
            poll_interval_s=p.poll_interval_s,
        )
        rcd = load_backend("rcd", "gpio")(
            _chip(settings.rcd.chip), settings.rcd.pin, active_low=settings.rcd.active_low
        )
        cleanup.append(rcd.release)
        mains = load_backend("mains", "gpio")(
            _chip(settings.mains.chip), settings.mains.pin, active_low=settings.mains.active_low
        )
        cleanup.append(mains.release)
        lock = rpi_lock(settings)
        cleanup.append(getattr(lock, "release", lambda: None))
        rfid_class = load_backend("rfid", settings.rfid.backend)
        rfid = rfid_class() if settings.rfid.backend == "none" else rfid_class(settings.rfid.device)
        # No panel driver yet: what a screen would show goes to the journal.
        display = load_backend("display", "log")(1)
    except BaseException:
        for release in reversed(cleanup):
            with contextlib.suppress(Exception):  # the error being raised is the one to report
                release()
        raise
    connector = ConnectorHardware(
        connector_id=1, pilot=pilot, contactor=contactor, meter=rpi_meter(settings.meter), rfid=rfid, lock=lock,
        rcd=rcd, mains=mains, display=display, pp=NoProximityInput(),
    )
    return RpiHardware(connectors=[connector], settings=settings)
