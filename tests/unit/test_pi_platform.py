"""The Pi's own rules for our GPIO and PWM, read from trees that mimic /sys, /dev and the device tree; the hardware
watchdog and the safety-loop feeding; the proximity pilot's resistor coding."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest

from chargepoint.composition import watchdogs
from chargepoint.composition.watchdogs import SafetyFeeder
from chargepoint.core.pilot import cable_rating_from_resistance, pp_resistance_ohm
from hal.drivers import pi_platform
from hal.drivers.watchdog import HardwareWatchdog
from hal.errors import HalError


def _param(root: Path, module: str, name: str, value: str) -> None:
    path = root / "module" / module / "parameters" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")


@pytest.mark.parametrize(("module", "name", "value", "safe"), [
    ("pinctrl_bcm2835", "persist_gpio_outputs", "Y", False),  # Raspberry Pi OS default: outputs stay driven
    ("pinctrl_bcm2835", "persist_gpio_outputs", "N", True),  # dtparam=strict_gpiod=on
    ("pinctrl_rp1", "persist_gpio_outputs", "Y", False),  # Pi 5
    ("pinctrl_rp1", "strict_gpiod", "N", False),  # older kernels' spelling
    ("pinctrl_rp1", "strict_gpiod", "Y", True),
])
def test_released_lines_are_judged_from_the_pinctrl_parameter(
    tmp_path: Path, module: str, name: str, value: str, safe: bool
) -> None:
    _param(tmp_path, module, name, value)
    assert pi_platform.released_lines_fall_back(str(tmp_path))[0] is safe
    if safe:
        pi_platform.check_released_lines(False, str(tmp_path))
    else:
        with pytest.raises(pi_platform.UnsafeGpio, match="strict_gpiod=on"):
            pi_platform.check_released_lines(False, str(tmp_path))
        assert "accepted" in pi_platform.check_released_lines(True, str(tmp_path))


def test_a_kernel_without_the_parameter_follows_upstream(tmp_path: Path) -> None:
    safe, why = pi_platform.released_lines_fall_back(str(tmp_path))
    assert safe and "upstream" in why


@pytest.mark.parametrize(("model", "label", "device", "channel"), [
    ("Raspberry Pi 5 Model B Rev 1.0", "pinctrl-rp1", "1f00098000.pwm", 2),
    ("Raspberry Pi 4 Model B Rev 1.4", "pinctrl-bcm2711", "20c000.pwm", 0),
    ("Raspberry Pi Compute Module 4 Rev 1.0", "pinctrl-bcm2711", "20c000.pwm", 0),
    ("Raspberry Pi 3 Model B Plus Rev 1.3", "pinctrl-bcm2835", "20c000.pwm", 0),
])
def test_defaults_are_right_on_each_model(tmp_path: Path, model: str, label: str, device: str, channel: int) -> None:
    (tmp_path / "model").write_text(model + "\0")
    found = pi_platform.platform(str(tmp_path))
    assert (found.gpio_label, found.pwm_device, found.pwm18_channel) == (label, device, channel)


def test_gpio_chip_is_found_by_label_whatever_its_number(tmp_path: Path) -> None:
    for name in ("gpiochip0", "gpiochip4", "gpiochip10"):
        (tmp_path / name).write_text("")
    labels = {"gpiochip0": "rp1-firmware", "gpiochip4": "pinctrl-rp1", "gpiochip10": "other"}
    assert pi_platform.find_gpio_chip("pinctrl-rp1", str(tmp_path), lambda p: labels[os.path.basename(p)]) == \
        str(tmp_path / "gpiochip4")
    with pytest.raises(HalError, match="gpiochip0=rp1-firmware"):
        pi_platform.find_gpio_chip("pinctrl-bcm2711", str(tmp_path), lambda p: labels[os.path.basename(p)])


def test_pwm_chip_is_found_by_its_device(tmp_path: Path) -> None:
    devices = tmp_path / "devices"
    for chip, device in (("pwmchip0", "1f00098000.pwm"), ("pwmchip2", "1f0009c000.pwm")):
        target = devices / device / "pwm" / chip
        target.mkdir(parents=True)
        (tmp_path / "class").mkdir(exist_ok=True)
        (tmp_path / "class" / chip).symlink_to(target)
    assert pi_platform.find_pwm_chip("1f00098000.pwm", str(tmp_path / "class")) == 0
    with pytest.raises(HalError, match="overlay"):
        pi_platform.find_pwm_chip("20c000.pwm", str(tmp_path / "class"))


def test_hardware_watchdog_is_fed_and_disarmed_with_the_magic_close(tmp_path: Path) -> None:
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    watchdog = HardwareWatchdog(str(device), 10)
    watchdog.feed()
    watchdog.feed()
    watchdog.close()
    watchdog.close()
    assert device.read_bytes() == b"\0\0V"
    with pytest.raises(HalError, match="cannot open"):
        HardwareWatchdog(str(tmp_path / "missing"))


def test_watchdogs_are_fed_only_when_every_connector_ticked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    notified: list[str] = []
    monkeypatch.setattr(watchdogs, "sd_notify", lambda message: notified.append(message) or True)
    clock = [100.0]
    monkeypatch.setattr(watchdogs.time, "monotonic", lambda: clock[0])
    feeder = SafetyFeeder([1, 2], systemd=True, hardware=HardwareWatchdog(str(device), 10))
    feeder.tick(1)
    feeder.tick(1)
    assert feeder.feeds == 0  # connector 2's sampler has not delivered: a stall there starves the watchdogs
    feeder.tick(2)
    assert feeder.feeds == 1 and notified == ["WATCHDOG=1"] and device.read_bytes() == b"\0"
    feeder.tick(1)
    feeder.tick(2)
    assert feeder.feeds == 1  # not more often than FEED_INTERVAL_S
    clock[0] += watchdogs.FEED_INTERVAL_S
    feeder.tick(2)
    feeder.tick(1)
    assert feeder.feeds == 2
    assert feeder.hardware is not None
    feeder.hardware.close()


def test_open_hardware_watchdog_without_the_device_warns_and_runs_on(tmp_path: Path) -> None:
    assert watchdogs.open_hardware_watchdog(str(tmp_path / "none"), 10) is None
    assert watchdogs.open_hardware_watchdog("", 10) is None


@pytest.mark.parametrize(("resistance_ohm", "rating_A"), [
    (1500.0, 13.0), (680.0, 20.0), (220.0, 32.0), (100.0, 63.0),
    (2500.0, None), (math.inf, None), (50.0, None), (math.nan, None),
])
def test_pp_resistor_codes_the_cable_rating(resistance_ohm: float, rating_A: float | None) -> None:
    assert cable_rating_from_resistance(resistance_ohm) == rating_A


def test_pp_divider_voltage_gives_back_the_resistor() -> None:
    for resistance_ohm in (100.0, 220.0, 680.0, 1500.0):
        pp_V = 3.3 * resistance_ohm / (330.0 + resistance_ohm)
        assert pp_resistance_ohm(pp_V, 3.3, 330.0) == pytest.approx(resistance_ohm)
    assert pp_resistance_ohm(3.3, 3.3, 330.0) == math.inf
