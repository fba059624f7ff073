"""Device backends by name: each maps to the factory (a driver class) that builds it, imported lazily.

CI and laptops never import RPi/lgpio/nfc modules: a backend's module is imported only when a board asks for
it, and a missing package becomes ``BackendUnavailable`` naming the backend. Simulated devices are not here:
the composition root builds them from ``simulators`` when the config says ``backend = "sim"``.
"""

from __future__ import annotations

import importlib
from typing import Any

from hal.errors import BackendUnavailable

# (device, backend) -> "module:attribute"
BACKENDS: dict[tuple[str, str], str] = {
    ("meter", "sdm630"): "hal.drivers.sdm630:Sdm630Meter",
    ("meter", "iskra_wm3m4c"): "hal.drivers.iskra_wm3m4c:IskraWm3m4cMeter",
    ("contactor", "gpio"): "hal.drivers.gpio_devices:GpioContactor",
    ("lock", "gpio"): "hal.drivers.gpio_devices:GpioLock",
    ("rcd", "gpio"): "hal.drivers.gpio_devices:GpioResidualCurrentMonitor",
    ("mains", "gpio"): "hal.drivers.gpio_devices:GpioMainsMonitor",
    ("shunt-trip", "gpio"): "hal.drivers.gpio_devices:GpioShuntTrip",
    ("tamper", "gpio"): "hal.drivers.gpio_devices:GpioTamperSwitch",
    ("pp", "mcp3008"): "hal.drivers.adc_pp:Mcp3008ProximityPilot",
    ("pilot", "sysfs-pwm"): "hal.drivers.pwm_pilot:SysfsPwmPilot",
    ("pilot-adc", "mcp3008"): "hal.drivers.pwm_pilot:Mcp3008PilotSampler",
    ("rfid", "nfc"): "hal.drivers.nfc_reader:NfcRfidReader",
    ("rfid", "none"): "hal.drivers.nfc_reader:NoRfidReader",
    ("display", "log"): "hal.drivers.log_display:LogDisplay",
    ("board", "openevse"): "hal.drivers.openevse_rapi:OpenEvseBoard",
    ("board", "evse-din"): "hal.drivers.evse_din:EvseDinBoard",
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
            f"{device} backend {backend!r} cannot be loaded: {exc} (on the charger: pip install 'chargepoint[rpi]')"
        ) from exc
    return getattr(module, attribute)
