"""The "rpi" hardware backend: what the registry builds from [hardware], and how it fails.

CI has neither gpiod nor a Pi. Missing packages are simulated by hiding the module; the full build is
exercised with a stand-in ``gpiod`` module (a fake chip with the character device's rules: one
request per line, released lines float to the board's pull-down, edges queued on a readable fd)
and the PWM sysfs tree in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import enum
import errno
import os
import sys
import types
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from chargepoint.composition import boot
from chargepoint.composition.devices import create_hardware, create_hardware_for, matches
from chargepoint.config.loader import load_config
from chargepoint.config.schema import Config, HardwareSettings
from hal import rpi_board as hal_rpi_board
from hal.drivers.gpio_devices import GpioContactor, GpioLock
from hal.drivers.pi_platform import UnsafeGpio
from hal.errors import BackendUnavailable, HalError, LockError, MeterError
from hal.protocols import ConnectorLock, PilotOutput, SelfTestingRcd
from hal.registry import load_backend
from hal.rpi_board import RpiHardware, rpi_lock, rpi_settings

pytestmark = pytest.mark.timeout(10)

RPI_TABLE: dict[str, Any] = {"backend": "rpi"}


# --------------------------------------------------------------------- missing packages, names


def test_rpi_without_gpiod_names_the_package_and_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # as on a laptop without the package
    with pytest.raises(BackendUnavailable) as caught:
        create_hardware("rpi", 1, {}, RPI_TABLE)
    message = str(caught.value)
    assert "'gpiod'" in message
    assert "pip install 'chargepoint[rpi]'" in message
    assert isinstance(caught.value, ImportError)  # the early boot path treats it as "not usable yet"


def test_validated_rpi_config_without_gpiod_fails_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)
    config = Config.model_validate({"hardware": {"backend": "rpi"}, "charger": {"tethered_cable": True}})
    with pytest.raises(BackendUnavailable, match=r"gpiod.*chargepoint\[rpi\]"):
        create_hardware_for(config)


def test_gpiod_v1_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    old: Any = types.ModuleType("gpiod")
    old.__version__ = "1.5.4"
    monkeypatch.setitem(sys.modules, "gpiod", old)
    with pytest.raises(BackendUnavailable, match="v1 API"):
        create_hardware("rpi", 1, {}, RPI_TABLE)


def test_rpi_drives_one_connector_per_board() -> None:
    with pytest.raises(BackendUnavailable, match="one connector"):
        create_hardware("rpi", 2, {}, RPI_TABLE)


def test_unknown_hardware_backend_lists_the_known_ones() -> None:
    with pytest.raises(BackendUnavailable, match=r"'bogus'.*known: rpi, sim"):
        create_hardware("bogus", 1, {})


def test_unknown_device_backend_lists_the_known_ones() -> None:
    with pytest.raises(BackendUnavailable, match=r"rfid backend named 'pn999'.*known: nfc, none"):
        load_backend("rfid", "pn999")


def test_nfc_reader_without_nfcpy_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nfc", None)
    with pytest.raises(BackendUnavailable, match=r"nfcpy.*chargepoint\[rpi\]"):
        load_backend("rfid", "nfc")("usb")


# --------------------------------------------------------------------- settings


def test_without_a_lock_section_the_cable_is_tethered(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[charger]\ntethered_cable = true\n[hardware]\nbackend = "rpi"\n')
    config = load_config(path)
    assert config.hardware.lock is None
    assert rpi_settings(config.hardware.model_dump()).lock is None


async def test_tethered_lock_succeeds_without_any_gpio(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gpiod", None)  # no line is requested for a fixed cable
    lock = rpi_lock(rpi_settings(RPI_TABLE))
    assert isinstance(lock, ConnectorLock)
    assert lock.tethered
    await lock.lock()
    await lock.unlock()
    assert not lock.is_locked()
    await lock.aclose()


@pytest.mark.parametrize(
    "table",
    [
        {},
        {"backend": "rpi"},
        {"lock": {}, "meter": {"transport": "rtu", "serial_port": "/dev/ttyAMA0"}},
        {"contactor": {"relay_pin": 5, "debounce_s": 0}, "pilot": {"offset_V": -12, "pwm_channel": 1}},
        {"rcd": {"active_low": False}, "mains": {"pin": 4}, "rfid": {"backend": "none"}},
        {"lock": {"pulse_s": 1, "sense_active_low": True}},
    ],
)
def test_raw_table_and_validated_config_resolve_alike(table: dict[str, Any]) -> None:
    # The early boot path reads the raw TOML with the registry's copy of the defaults; a copy that
    # drifted from the schema would run the charger on other pins than the validated config says.
    validated = HardwareSettings.model_validate(table).model_dump()
    assert rpi_settings(table) == rpi_settings(validated)


def test_raw_value_of_the_wrong_type_is_left_to_the_validation() -> None:
    with pytest.raises(TypeError, match=r"hardware\.contactor\.relay_pin"):
        rpi_settings({"contactor": {"relay_pin": "17"}})
    with pytest.raises(TypeError, match=r"hardware\.rcd\.active_low"):
        rpi_settings({"rcd": {"active_low": 1}})


@pytest.mark.skipif(os.path.exists("/dev/ttyUSB0"), reason="a real serial adapter is present")
async def test_without_a_meter_section_the_meter_is_an_sdm630_on_rtu_ttyusb0(
    tmp_path: Path, fake_board: FakeBoard
) -> None:
    hardware = create_hardware("rpi", 1, {}, fake_board.table(tmp_path))
    try:
        with pytest.raises(MeterError, match=r"rtu:///dev/ttyUSB0@9600N/1"):
            await hardware.connectors[0].meter.read()
    finally:
        await hardware.aclose()


# --------------------------------------------------------------------- a stand-in gpiod


class Value(enum.Enum):
    INACTIVE = 0
    ACTIVE = 1


class Direction(enum.Enum):
    AS_IS = 1
    INPUT = 2
    OUTPUT = 3


class Edge(enum.Enum):
    NONE = 1
    RISING = 2
    FALLING = 3
    BOTH = 4


class Bias(enum.Enum):
    AS_IS = 1
    UNKNOWN = 2
    DISABLED = 3
    PULL_UP = 4
    PULL_DOWN = 5


@dataclass
class LineSettings:
    direction: Direction = Direction.AS_IS
    edge_detection: Edge = Edge.NONE
    bias: Bias = Bias.AS_IS
    active_low: bool = False
    debounce_period: timedelta = field(default_factory=timedelta)
    output_value: Value = Value.INACTIVE


class EdgeEvent:
    class Type(enum.Enum):
        RISING_EDGE = 1
        FALLING_EDGE = 2

    def __init__(self, event_type: EdgeEvent.Type, line_offset: int) -> None:
        self.event_type = event_type
        self.line_offset = line_offset


class FakeChip:
    """Physical pin levels; an unrequested (released) output reads low: the board's pull-down."""

    def __init__(self) -> None:
        self.levels: dict[int, bool] = {}
        self.requests: dict[int, FakeRequest] = {}
        self.history: list[tuple[int, bool]] = []  # (offset, physical level) of every output change
        self.on_output: Callable[[int, bool], None] = lambda offset, level: None

    def level(self, offset: int) -> bool:
        return self.levels.get(offset, False)

    def drive_input(self, offset: int, level: bool) -> None:
        """What the board puts on an input pin."""
        before = self.level(offset)
        self.levels[offset] = level
        request = self.requests.get(offset)
        if request is not None and level != before:
            request.edge(level)

    def output_changed(self, offset: int, level: bool) -> None:
        self.levels[offset] = level
        self.history.append((offset, level))
        self.on_output(offset, level)


class FakeRequest:
    def __init__(self, chip: FakeChip, offset: int, settings: LineSettings) -> None:
        self._chip = chip
        self._offset = offset
        self._settings = settings
        self._events: list[EdgeEvent] = []
        self.fd, self._write_fd = os.pipe()
        os.set_blocking(self.fd, False)
        if settings.direction is Direction.OUTPUT:
            chip.output_changed(offset, (settings.output_value is Value.ACTIVE) != settings.active_low)

    def edge(self, level: bool) -> None:
        if self._settings.edge_detection is Edge.NONE:
            return
        active = level != self._settings.active_low
        kind = EdgeEvent.Type.RISING_EDGE if active else EdgeEvent.Type.FALLING_EDGE
        self._events.append(EdgeEvent(kind, self._offset))
        os.write(self._write_fd, b"e")

    def get_value(self, offset: int) -> Value:
        assert offset == self._offset
        active = self._chip.level(offset) != self._settings.active_low
        return Value.ACTIVE if active else Value.INACTIVE

    def set_value(self, offset: int, value: Value) -> None:
        assert offset == self._offset and self._settings.direction is Direction.OUTPUT
        level = (value is Value.ACTIVE) != self._settings.active_low
        if level != self._chip.level(offset):
            self._chip.output_changed(offset, level)

    def wait_edge_events(self, timeout: float) -> bool:
        return bool(self._events)

    def read_edge_events(self) -> list[EdgeEvent]:
        events, self._events = self._events, []
        while True:
            try:
                os.read(self.fd, 64)
            except BlockingIOError:
                break
        return events

    def release(self) -> None:
        del self._chip.requests[self._offset]
        if self._settings.direction is Direction.OUTPUT and self._chip.level(self._offset):
            self._chip.output_changed(self._offset, False)  # floats: the pull-down wins
        os.close(self.fd)
        os.close(self._write_fd)


@dataclass
class FakeBoard:
    chips: dict[str, FakeChip] = field(default_factory=lambda: {"/dev/gpiochip0": FakeChip()})

    @property
    def chip(self) -> FakeChip:
        return self.chips["/dev/gpiochip0"]

    def request_lines(self, path: str, consumer: str, config: dict[int, LineSettings]) -> FakeRequest:
        if path not in self.chips:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        ((offset, settings),) = config.items()
        chip = self.chips[path]
        if offset in chip.requests:
            raise OSError(errno.EBUSY, "Device or resource busy")
        chip.requests[offset] = request = FakeRequest(chip, offset, settings)
        return request

    def table(self, root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
        """A [hardware] table for this board: PWM sysfs in ``root``, no card reader."""
        chip = root / "pwmchip0"
        channel = chip / "pwm0"
        channel.mkdir(parents=True, exist_ok=True)
        (chip / "export").write_text("")
        for name, value in (("period", "0"), ("duty_cycle", "0"), ("enable", "0"), ("polarity", "normal")):
            (channel / name).write_text(value)
        table: dict[str, Any] = {"backend": "rpi", "pilot": {"sysfs_root": str(root)}, "rfid": {"backend": "none"},
                                 **sections}
        # The fake board's lines are on /dev/gpiochip0 and its PWM on pwmchip0/pwm0 (auto-detection: test_pi_platform).
        for name in ("contactor", "rcd", "mains", "lock", "shunt_trip"):
            if name in table or name in ("contactor", "rcd", "mains"):
                table[name] = {"chip": 0, **table.get(name, {})}
        table["pilot"] = {"pwm_chip": 0, "pwm_channel": 0, **table["pilot"]}
        return table


class FakeSpiDev:
    counts: ClassVar[dict[int, int]] = {}  # ADC counts per MCP3008 channel; absent: full scale (+12 V pilot, open PP)

    def open(self, bus: int, device: int) -> None:
        pass

    def xfer2(self, data: list[int]) -> list[int]:
        count = self.counts.get((data[1] >> 4) & 0x07, 1023)
        return [0, (count >> 8) & 0x03, count & 0xFF]

    def close(self) -> None:
        pass


@pytest.fixture
def fake_board(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeBoard]:
    board = FakeBoard()
    gpiod: Any = types.ModuleType("gpiod")
    line: Any = types.ModuleType("gpiod.line")
    line.Value, line.Direction, line.Edge, line.Bias = Value, Direction, Edge, Bias
    gpiod.line = line
    gpiod.LineSettings = LineSettings
    gpiod.EdgeEvent = EdgeEvent
    gpiod.request_lines = board.request_lines
    spidev: Any = types.ModuleType("spidev")
    spidev.SpiDev = FakeSpiDev
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    monkeypatch.setitem(sys.modules, "spidev", spidev)
    yield board
    assert not board.chip.requests, "every line must be released"


async def next_value(values: AsyncIterator[bool]) -> bool:
    async with asyncio.timeout(1.0):
        return await anext(values)


def as_generator(values: AsyncIterator[bool]) -> AsyncGenerator[bool, None]:
    assert isinstance(values, AsyncGenerator)
    return values


# --------------------------------------------------------------------- the full rpi build


async def test_rpi_hardware_is_built_safe_and_released_on_close(tmp_path: Path, fake_board: FakeBoard) -> None:
    table = fake_board.table(tmp_path)
    hardware = create_hardware("rpi", 1, {}, table)
    chip = fake_board.chip
    hw = hardware.connectors[0]
    assert isinstance(hardware, RpiHardware)
    assert hardware.settings == rpi_settings(table)
    assert set(chip.requests) == {17, 27, 22, 23}  # relay, mirror contact, RCD, mains; tethered: no lock
    assert chip.level(17) is False
    assert hw.pilot.output() == (PilotOutput.HIGH, 0.0)
    assert (tmp_path / "pwmchip0" / "pwm0" / "duty_cycle").read_text() == "1000000"
    assert hw.lock.tethered
    await hardware.force_safe()
    await hardware.aclose()
    assert chip.requests == {}
    assert chip.level(17) is False


async def test_a_device_that_cannot_be_built_releases_those_built_before(
    tmp_path: Path, fake_board: FakeBoard
) -> None:
    table = fake_board.table(tmp_path)
    table["pilot"] = {"sysfs_root": str(tmp_path / "no-pwm-here")}
    with pytest.raises(HalError, match="dtoverlay"):
        create_hardware("rpi", 1, {}, table)
    assert fake_board.chip.requests == {}  # the contactor line was released: open


async def test_busy_line_is_a_hal_error_naming_chip_and_line(tmp_path: Path, fake_board: FakeBoard) -> None:
    table = fake_board.table(tmp_path, rcd={"pin": 27})  # wired onto the mirror contact's line
    with pytest.raises(HalError, match=r"/dev/gpiochip0 line 27.*busy"):
        create_hardware("rpi", 1, {}, table)


async def test_contactor_feedback_follows_the_mirror_contact(fake_board: FakeBoard) -> None:
    chip = fake_board.chip
    contactor = GpioContactor("/dev/gpiochip0", 17, 27)
    feedback = as_generator(contactor.feedback())
    try:
        assert await next_value(feedback) is False
        await contactor.close()
        assert chip.level(17) is True
        assert contactor.commanded_closed()
        assert not contactor.feedback_closed()  # commanded is not confirmed
        chip.drive_input(27, True)  # the mirror contact closes
        assert await next_value(feedback) is True
        assert contactor.feedback_closed()
        await contactor.open()
        assert chip.level(17) is False
        chip.drive_input(27, False)
        assert await next_value(feedback) is False
        await contactor.close()
    finally:
        await contactor.aclose()
    assert chip.level(17) is False  # open at shutdown
    with pytest.raises(StopAsyncIteration):
        await next_value(feedback)


async def test_rcd_trip_on_an_active_low_fault_output(tmp_path: Path, fake_board: FakeBoard) -> None:
    chip = fake_board.chip
    chip.drive_input(22, True)  # pulled up: no fault
    chip.drive_input(23, True)  # mains present
    hardware = create_hardware("rpi", 1, {}, fake_board.table(tmp_path))
    hw = hardware.connectors[0]
    trips = as_generator(hw.rcd.trips())
    try:
        assert not hw.rcd.tripped()
        assert hw.mains.present()
        assert await next_value(trips) is False
        chip.drive_input(22, False)  # the module pulls its output low on a fault
        assert await next_value(trips) is True
        assert hw.rcd.tripped()
    finally:
        await hardware.aclose()


def lock_table(root: Path, board: FakeBoard) -> dict[str, Any]:
    return board.table(root, lock={"lock_pin": 5, "unlock_pin": 6, "sense_pin": 13, "pulse_s": 0.02, "timeout_s": 0.2})


async def test_lock_pulses_one_motor_output_and_returns_when_the_sensor_confirms(
    tmp_path: Path, fake_board: FakeBoard
) -> None:
    chip = fake_board.chip

    def actuator(offset: int, level: bool) -> None:
        if level and offset in (5, 6):
            assert not (chip.level(5) and chip.level(6)), "both motor outputs driven"
            chip.drive_input(13, offset == 5)

    chip.on_output = actuator
    hardware = create_hardware("rpi", 1, {}, lock_table(tmp_path, fake_board))
    lock = hardware.connectors[0].lock
    try:
        assert not lock.tethered
        await lock.lock()
        assert lock.is_locked()
        await lock.unlock()
        assert not lock.is_locked()
        motor = [entry for entry in chip.history if entry[0] in (5, 6)]
        assert motor == [(5, False), (6, False), (5, True), (5, False), (6, True), (6, False)]
    finally:
        await hardware.aclose()


async def test_stuck_lock_raises_lock_error_with_the_motor_off(tmp_path: Path, fake_board: FakeBoard) -> None:
    hardware = create_hardware("rpi", 1, {}, lock_table(tmp_path, fake_board))
    lock = hardware.connectors[0].lock
    try:
        with pytest.raises(LockError, match=r"did not lock within 0\.2 s"):
            await lock.lock()
        assert fake_board.chip.level(5) is False
        assert not lock.is_locked()
    finally:
        await hardware.aclose()


def test_gpio_lock_needs_all_its_lines_or_none() -> None:
    with pytest.raises(ValueError, match="tethered"):
        GpioLock("/dev/gpiochip0", 5, 6, 13, tethered=True)
    with pytest.raises(ValueError, match="needs"):
        GpioLock("/dev/gpiochip0", 5)
    assert GpioLock.tethered_cable().tethered


async def test_early_hardware_from_the_raw_file_matches_the_validated_config(
    tmp_path: Path, fake_board: FakeBoard
) -> None:
    table = fake_board.table(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(
        '[charger]\ntethered_cable = true\n[hardware]\nbackend = "rpi"\n'
        f'[hardware.pilot]\nsysfs_root = "{table["pilot"]["sysfs_root"]}"\npwm_chip = 0\npwm_channel = 0\n'
        '[hardware.rfid]\nbackend = "none"\n'
        "[hardware.contactor]\nrelay_pin = 16\nchip = 0\n[hardware.rcd]\nchip = 0\n[hardware.mains]\nchip = 0\n"
    )
    hardware = await boot._early_safe(path)
    assert hardware is not None
    try:
        assert set(fake_board.chip.requests) >= {16, 27}
        assert matches(hardware, load_config(path))
        other = load_config(path).model_copy(
            update={"hardware": HardwareSettings.model_validate({**table, "contactor": {"relay_pin": 18, "chip": 0}})}
        )
        assert not matches(hardware, other)
    finally:
        await hardware.aclose()


# --------------------------------------------------------------------- hardening


async def test_contactor_is_refused_when_released_lines_stay_driven(
    tmp_path: Path, fake_board: FakeBoard, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys_root = tmp_path / "sys"
    parameter = sys_root / "module" / "pinctrl_bcm2835" / "parameters" / "persist_gpio_outputs"
    parameter.parent.mkdir(parents=True)
    parameter.write_text("Y\n")  # Raspberry Pi OS without dtparam=strict_gpiod=on
    monkeypatch.setattr(hal_rpi_board, "SYS_ROOT", str(sys_root))
    with pytest.raises(UnsafeGpio, match="strict_gpiod"):
        create_hardware("rpi", 1, {}, fake_board.table(tmp_path))
    assert fake_board.chip.requests == {}  # nothing was driven
    acknowledged = fake_board.table(tmp_path, contactor={"persistent_gpio_acknowledged": True})
    hardware = create_hardware("rpi", 1, {}, acknowledged)
    await hardware.aclose()


async def test_rcd_input_is_fail_safe_and_its_self_test_is_hidden_from_trips(
    tmp_path: Path, fake_board: FakeBoard
) -> None:
    chip = fake_board.chip
    hardware = create_hardware("rpi", 1, {}, fake_board.table(tmp_path, rcd={"test_pin": 25}))
    rcd = hardware.connectors[0].rcd
    try:
        assert chip.requests[22]._settings.bias is Bias.PULL_DOWN
        assert rcd.tripped()  # nothing drives the input: a broken wire reads as a trip
        chip.drive_input(22, True)  # the healthy module holds the line high
        assert not rcd.tripped()
        trips = as_generator(rcd.trips())
        while await next_value(trips):  # the level at construction (tripped) may come first
            pass
        # The module trips while TEST is driven and resets when it is released.
        chip.on_output = lambda offset, level: chip.drive_input(22, not level) if offset == 25 else None
        assert isinstance(rcd, SelfTestingRcd) and rcd.has_test_input
        await rcd.self_test()
        assert (25, True) in chip.history and chip.level(25) is False
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await anext(trips)  # the test's own trip never reached the runtime
        chip.on_output = lambda offset, level: None  # a module that no longer trips on its test
        with pytest.raises(HalError, match="did not trip"):
            await rcd.self_test()
        await trips.aclose()
    finally:
        await hardware.aclose()


async def test_shunt_trip_output_and_pp_input(tmp_path: Path, fake_board: FakeBoard,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeSpiDev, "counts", {1: round(3.3 * 680 / (330 + 680) / (3.3 / 1023))})  # a 20 A cable
    table = fake_board.table(tmp_path, shunt_trip={"pin": 24}, pp={"adc_channel": 1})
    hardware = create_hardware("rpi", 1, {}, table)
    hw = hardware.connectors[0]
    try:
        assert hw.pp.cable_max_A() == 20.0
        assert hw.shunt_trip is not None and not hw.shunt_trip.tripped()
        await hw.shunt_trip.trip()
        assert chip_level(fake_board, 24) and hw.shunt_trip.tripped()
    finally:
        await hardware.aclose()


def chip_level(board: FakeBoard, offset: int) -> bool:
    return board.chip.level(offset)
