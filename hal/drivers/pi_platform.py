"""What the Raspberry Pi itself decides about our GPIO and PWM: which chip is which, and what a released line does.

- **Released lines.** Upstream Linux returns a GPIO to an input when its owner releases it (or dies). Raspberry Pi
  OS kernels keep released outputs driven, so that ``gpioset`` settings persist, unless told otherwise: the module
  parameter ``persist_gpio_outputs=N`` of ``pinctrl_bcm2835`` (Pi 0-4) / ``pinctrl_rp1`` (Pi 5), set with
  ``dtparam=strict_gpiod=on`` in config.txt (older kernels: ``strict_gpiod=Y``). With persistence, a crashed daemon
  leaves the contactor coil energised, so the GPIO contactor refuses to start (``released_lines_fall_back``).
- **Chips.** The 40-pin header is ``pinctrl-bcm2835`` (Pi 0-3), ``pinctrl-bcm2711`` (Pi 4/400/CM4) or
  ``pinctrl-rp1`` (Pi 5/CM5); its gpiochip number changed between kernels on the Pi 5 (4, then 0), so it is found by
  label. GPIO 18's hardware PWM is channel 0 of the SoC's PWM block on Pi 0-4 (``dtoverlay=pwm``) but channel 2 of
  the RP1's PWM0 on the Pi 5 (``dtoverlay=pwm,pin=18,func=2``); its pwmchip is found by its device.

Every path is a parameter, so tests point them at a tree that mimics the Pi's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from hal.errors import HalError

_PINCTRL_MODULES = ("pinctrl_bcm2835", "pinctrl_rp1")


class UnsafeGpio(HalError):
    """The kernel keeps released outputs driven: a crash would leave the contactor closed."""


def released_lines_fall_back(sys_root: str = "/sys") -> tuple[bool, str]:
    """(True if a released output falls back to an input, why). Unknown kernels follow upstream: they do."""
    for module in _PINCTRL_MODULES:
        parameters = Path(sys_root) / "module" / module / "parameters"
        persist = _read(parameters / "persist_gpio_outputs")
        if persist is not None:
            safe = persist.upper().startswith("N")
            return safe, f"{module}.persist_gpio_outputs = {persist}"
        strict = _read(parameters / "strict_gpiod")
        if strict is not None:
            safe = strict.upper().startswith("Y")
            return safe, f"{module}.strict_gpiod = {strict}"
    return True, "no Raspberry Pi pinctrl persistence parameter: released lines return to inputs (upstream)"


def check_released_lines(acknowledged: bool, sys_root: str = "/sys") -> str:
    """Raise ``UnsafeGpio`` unless released outputs fall back or the installer acknowledged external protection."""
    safe, why = released_lines_fall_back(sys_root)
    if safe:
        return why
    if acknowledged:
        return f"{why}: released outputs stay driven; accepted by hardware.contactor.persistent_gpio_acknowledged"
    raise UnsafeGpio(
        f"the kernel keeps released GPIO outputs driven ({why}): a crashed daemon would leave the contactor "
        "closed. Add 'dtparam=strict_gpiod=on' to /boot/firmware/config.txt and reboot (see docs/hardware.md), or, "
        "only if the coil is also switched off by a watchdog relay, set hardware.contactor."
        "persistent_gpio_acknowledged = true"
    )


class PiPlatform(NamedTuple):
    model: str
    gpio_label: str  # the 40-pin header's gpiochip label
    pwm_device: str  # a fragment of the PWM block's device path
    pwm18_channel: int  # GPIO 18's PWM channel on that block


def platform(dt_root: str = "/proc/device-tree") -> PiPlatform:
    """The running Pi's model and where its header GPIO and GPIO 18's PWM are."""
    model = (_read(Path(dt_root) / "model") or "unknown").rstrip("\0")
    if "Raspberry Pi 5" in model or "Compute Module 5" in model:
        return PiPlatform(model, "pinctrl-rp1", "1f00098000.pwm", 2)
    if any(name in model for name in ("Raspberry Pi 4", "Raspberry Pi 400", "Compute Module 4")):
        return PiPlatform(model, "pinctrl-bcm2711", "20c000.pwm", 0)
    return PiPlatform(model, "pinctrl-bcm2835", "20c000.pwm", 0)


def _gpiod_label(path: str) -> str:
    from hal.drivers.gpio_lines import import_gpiod

    gpiod = import_gpiod()
    with gpiod.Chip(path) as chip:
        return str(chip.get_info().label)


def find_gpio_chip(label: str, dev_root: str = "/dev", label_of: Callable[[str], str] = _gpiod_label) -> str:
    """The /dev/gpiochipN whose label is ``label``."""
    candidates = sorted((name for name in os.listdir(dev_root) if name.startswith("gpiochip")),
                        key=lambda name: int(name.removeprefix("gpiochip") or 0))
    seen = []
    for name in candidates:
        path = os.path.join(dev_root, name)
        try:
            found = label_of(path)
        except (OSError, HalError):
            continue
        if found == label:
            return path
        seen.append(f"{name}={found}")
    raise HalError(f"no gpiochip labelled {label!r} (found: {', '.join(seen) or 'none'}); set the chip number")


def find_pwm_chip(device: str, sysfs_root: str = "/sys/class/pwm") -> int:
    """The N of the pwmchipN whose device path contains ``device``."""
    try:
        names = sorted(os.listdir(sysfs_root))
    except OSError as exc:
        raise HalError(f"no PWM sysfs at {sysfs_root}: {exc} (dtoverlay=pwm missing?)") from exc
    seen = []
    for name in names:
        if not name.startswith("pwmchip"):
            continue
        target = os.path.realpath(os.path.join(sysfs_root, name))
        if device in target:
            return int(name.removeprefix("pwmchip"))
        seen.append(f"{name} -> {target}")
    raise HalError(f"no pwmchip of {device!r} under {sysfs_root} (found: {', '.join(seen) or 'none'}); "
                   "is the PWM overlay enabled in config.txt? (docs/hardware.md)")


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None
