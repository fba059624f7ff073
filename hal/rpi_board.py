"""The Raspberry Pi board backend: typed wiring settings and the build of its devices.

One connector per Pi: GPIO contactor (with mirror contact), lock, RCD and mains inputs; a sysfs PWM pilot
sampled by an MCP3008; an nfcpy reader; an SDM630 meter; the journal as display. Drivers take these plain
settings, never the config schema: ``rpi_settings`` reads them from the ``[hardware]`` table, raw TOML or
validated, without pydantic, so that the daemon reaches the safe state before it validates its config.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple, TypeVar

from hal.drivers import pi_platform
from hal.errors import BackendUnavailable
from hal.hardware import ConnectorHardware, Hardware, LazyMeter, LazySigningMeter, NoProximityInput
from hal.protocols import ConnectorLock, EnergyMeter, ProximityPilot, ShuntTrip, TamperSwitch
from hal.registry import load_backend

_log = logging.getLogger(__name__)

# The defaults below repeat those of chargepoint.config.schema's hardware sections, because the raw TOML
# table is used before validation; a test checks that they agree. NamedTuples, not dataclasses: they are built on
# the early safe path, where eight dataclasses would cost 5 ms on a fast machine and several times that on a Pi.


# chip = -1: the 40-pin header's gpiochip, found by its label; pwm_chip/pwm_channel = -1: GPIO 18's PWM, found by the
# Pi model (hal.drivers.pi_platform).


class ContactorWiring(NamedTuple):
    chip: int = -1
    relay_pin: int = 17
    feedback_pin: int = 27
    debounce_s: float = 0.01
    persistent_gpio_acknowledged: bool = False


class PilotWiring(NamedTuple):
    pwm_chip: int = -1
    pwm_channel: int = -1
    sysfs_root: str = "/sys/class/pwm"
    spi_bus: int = 0
    spi_device: int = 0
    adc_channel: int = 0
    volts_per_count: float = 24.0 / 1023.0
    offset_V: float = -12.0
    poll_interval_s: float = 0.01


class LockWiring(NamedTuple):
    chip: int = -1
    lock_pin: int = 5
    unlock_pin: int = 6
    sense_pin: int = 13
    sense_active_low: bool = False
    pulse_s: float = 0.3
    timeout_s: float = 1.0


class RcdWiring(NamedTuple):
    chip: int = -1
    pin: int = 22
    active_low: bool = True
    pull_down: bool = True
    test_pin: int = -1
    test_active_low: bool = False


class MainsWiring(NamedTuple):
    chip: int = -1
    pin: int = 23
    active_low: bool = False


class PpWiring(NamedTuple):
    spi_bus: int = 0
    spi_device: int = 0
    adc_channel: int = 1
    pullup_ohm: float = 330.0
    supply_V: float = 3.3
    volts_per_count: float = 3.3 / 1023.0
    poll_interval_s: float = 0.1


class TamperWiring(NamedTuple):
    chip: int = -1
    pin: int = 25
    active_low: bool = False


class ShuntTripWiring(NamedTuple):
    chip: int = -1
    pin: int = 24
    active_low: bool = False


class RfidSettings(NamedTuple):
    backend: str = "nfc"
    device: str = "usb"


class MeterSettings(NamedTuple):
    backend: str = "sdm630"
    transport: str = "rtu"  # as the config's default: RS-485, with or without a [hardware.meter] table
    host: str = "127.0.0.1"
    port: int = 502
    serial_port: str = "/dev/ttyUSB0"
    baudrate: int = 9600
    parity: str = "N"
    device_id: int = 0  # 0: the model's factory id (FACTORY_DEVICE_IDS)
    timeout_s: float = 1.0
    signing_timeout_s: float = 10.0  # a signing meter's time to sign a begin or end reading

    @property
    def unit_id(self) -> int:
        return self.device_id or FACTORY_DEVICE_IDS.get(self.backend, 1)


# Modbus ids as the meters leave the factory; the Iskra's signing meters use 33.
FACTORY_DEVICE_IDS: Final[Mapping[str, int]] = {"sdm630": 1, "iskra_wm3m4c": 33}
# Meter backends that sign their readings (hal.protocols.SigningMeter).
SIGNING_METERS: Final = frozenset({"iskra_wm3m4c"})


# Without a [hardware.meter] table the board reads an SDM630 on the Pi's USB RS-485 adapter (9600 8N1, id 1:
# the meter's factory settings), the usual wiring of a one-connector box.
DEFAULT_METER = MeterSettings()


class RpiSettings(NamedTuple):
    contactor: ContactorWiring
    pilot: PilotWiring
    lock: LockWiring | None  # None: a tethered cable, no lock
    rcd: RcdWiring
    mains: MainsWiring
    rfid: RfidSettings
    meter: MeterSettings | None  # None: DEFAULT_METER
    pp: PpWiring | None = None  # None: no PP input (a tethered cable only)
    shunt_trip: ShuntTripWiring | None = None
    tamper: TamperWiring | None = None  # None: no tamper switch wired


_S = TypeVar("_S", bound=tuple[Any, ...])


def _section(cls: type[_S], name: str, table: object) -> _S:
    if not isinstance(table, Mapping):
        raise TypeError(f"[hardware.{name}] must be a table")
    values: dict[str, Any] = {}
    defaults: dict[str, Any] = cls._field_defaults  # type: ignore[attr-defined]
    for field_name, default in defaults.items():
        value = table.get(field_name, default)
        if value is None:  # an optional key left out of a validated table (model_dump keeps it, as None)
            value = default
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
        pp=optional(PpWiring, "pp"),
        shunt_trip=optional(ShuntTripWiring, "shunt_trip"),
        tamper=optional(TamperWiring, "tamper"),
    )


@dataclass(slots=True)
class RpiHardware(Hardware):
    """The devices of one Pi board, with the settings they were built from."""

    settings: RpiSettings


# Where the Pi's kernel interfaces are; tests point these at a tree that mimics them.
SYS_ROOT = "/sys"
DEV_ROOT = "/dev"
DT_ROOT = "/proc/device-tree"


def _chip(number: int) -> str:
    if number >= 0:
        return f"{DEV_ROOT}/gpiochip{number}"
    from hal.drivers.gpio_lines import import_gpiod

    import_gpiod()  # without gpiod, say which package is missing, not that no chip was found
    return pi_platform.find_gpio_chip(pi_platform.platform(DT_ROOT).gpio_label, DEV_ROOT)


def _pwm(pilot: PilotWiring) -> tuple[int, int]:
    found = pi_platform.platform(DT_ROOT)
    chip = pilot.pwm_chip if pilot.pwm_chip >= 0 else pi_platform.find_pwm_chip(found.pwm_device, pilot.sysfs_root)
    channel = pilot.pwm_channel if pilot.pwm_channel >= 0 else found.pwm18_channel
    return chip, channel


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

    signs = meter.backend in SIGNING_METERS
    extra = {"signing_timeout_s": meter.signing_timeout_s} if signs else {}

    def build() -> EnergyMeter:
        meter_class = load_backend("meter", meter.backend)
        if meter.transport == "rtu":
            driver: EnergyMeter = meter_class.rtu(
                meter.serial_port, baudrate=meter.baudrate, parity=meter.parity, device_id=meter.unit_id,
                timeout_s=meter.timeout_s, **extra,
            )
        else:
            driver = meter_class.tcp(meter.host, meter.port, device_id=meter.unit_id, timeout_s=meter.timeout_s,
                                     **extra)
        return driver

    return LazySigningMeter(build) if signs else LazyMeter(build)


def create_rpi_hardware(connector_count: int, settings: RpiSettings) -> RpiHardware:
    """Build the board's devices safety-first (contactor, then pilot); if one cannot be built, those already
    built are released (a released contactor line is an open contactor)."""
    if connector_count != 1:
        raise BackendUnavailable(
            f"hardware backend 'rpi' drives one connector per Pi board, the config asks for {connector_count}"
        )
    c = settings.contactor
    # Before any line is driven: a kernel that keeps released outputs driven would leave the coil on after a crash.
    _log.info("GPIO release: %s", pi_platform.check_released_lines(c.persistent_gpio_acknowledged, SYS_ROOT))
    cleanup: list[Callable[[], None]] = []
    try:
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
        pwm_chip, pwm_channel = _pwm(p)
        pilot = load_backend("pilot", "sysfs-pwm")(
            sampler, chip=pwm_chip, channel=pwm_channel, sysfs_root=p.sysfs_root,
            poll_interval_s=p.poll_interval_s,
        )
        r = settings.rcd
        rcd = load_backend("rcd", "gpio")(
            _chip(r.chip), r.pin, active_low=r.active_low, bias="pull-down" if r.pull_down else "as-is",
            test_offset=None if r.test_pin < 0 else r.test_pin, test_active_low=r.test_active_low,
        )
        cleanup.append(rcd.release)
        mains = load_backend("mains", "gpio")(
            _chip(settings.mains.chip), settings.mains.pin, active_low=settings.mains.active_low
        )
        cleanup.append(mains.release)
        lock = rpi_lock(settings)
        cleanup.append(getattr(lock, "release", lambda: None))
        pp: ProximityPilot = NoProximityInput()
        if settings.pp is not None:
            w = settings.pp
            pp = load_backend("pp", "mcp3008")(
                spi_bus=w.spi_bus, spi_device=w.spi_device, channel=w.adc_channel, pullup_ohm=w.pullup_ohm,
                supply_V=w.supply_V, volts_per_count=w.volts_per_count, poll_interval_s=w.poll_interval_s,
            )
            cleanup.append(getattr(pp, "release", lambda: None))
        shunt_trip: ShuntTrip | None = None
        if settings.shunt_trip is not None:
            t = settings.shunt_trip
            shunt_trip = load_backend("shunt-trip", "gpio")(_chip(t.chip), t.pin, active_low=t.active_low)
            cleanup.append(getattr(shunt_trip, "release", lambda: None))
        tamper: TamperSwitch | None = None
        if settings.tamper is not None:
            w2 = settings.tamper
            tamper = load_backend("tamper", "gpio")(_chip(w2.chip), w2.pin, active_low=w2.active_low)
            cleanup.append(getattr(tamper, "release", lambda: None))
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
        rcd=rcd, mains=mains, display=display, pp=pp, shunt_trip=shunt_trip,
    )
    return RpiHardware(connectors=[connector], settings=settings, tamper=tamper)
