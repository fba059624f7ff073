"""Build the charger's devices for ``[hardware] backend``: the Raspberry Pi board or the simulators.

Kept free of heavy imports (pydantic, pymodbus) so that the daemon can reach the safe state from the raw TOML
before it even validates its configuration; the simulators are imported only when the config asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hal.errors import BackendUnavailable
from hal.hardware import Hardware
from hal.rpi_board import RpiHardware, create_rpi_hardware, rpi_settings

if TYPE_CHECKING:
    from chargepoint.config.schema import Config
    from simulators.station import SimulatedStation

# Values of [hardware] backend = ...
HARDWARE_BACKENDS: tuple[str, ...] = ("rpi", "sim")


def create_hardware(
    backend: str,
    connector_count: int,
    simulator: Mapping[str, Any],
    hardware: Mapping[str, Any] | None = None,
) -> Hardware:
    """Construct every device in its safe state without starting any I/O loop or server.

    ``simulator`` and ``hardware`` are the ``[simulator]`` and ``[hardware]`` tables as plain dicts
    (``model_dump()`` of the validated settings, or the raw TOML tables).
    """
    if backend == "rpi":
        return create_rpi_hardware(connector_count, rpi_settings(hardware or {}))
    if backend != "sim":
        raise BackendUnavailable(f"no hardware backend named {backend!r} (known: {', '.join(HARDWARE_BACKENDS)})")
    from simulators.hardware import sim_parameters, simulated_hardware

    return simulated_hardware(sim_parameters(simulator), connector_count)


def create_hardware_for(config: Config) -> Hardware:
    return create_hardware(
        config.hardware.backend, config.charger.connectors, config.simulator.model_dump(),
        config.hardware.model_dump(),
    )


async def build_hardware(config: Config) -> Hardware:
    """Construct and start every device the config names."""
    hardware = create_hardware_for(config)
    await hardware.start()
    return hardware


def station_of(hardware: Hardware) -> SimulatedStation | None:
    """The simulators' stimulus port, or None on real hardware."""
    if isinstance(hardware, RpiHardware):
        return None
    from simulators.hardware import SimulatedHardware

    return hardware.station if isinstance(hardware, SimulatedHardware) else None


def matches(hardware: Hardware, config: Config) -> bool:
    """True if ``hardware`` (built early from the raw TOML) is what the validated ``config`` asks for."""
    if config.hardware.backend == "rpi":
        return isinstance(hardware, RpiHardware) and hardware.settings == rpi_settings(config.hardware.model_dump())
    station = station_of(hardware)
    if station is None:
        return False
    from simulators.hardware import sim_parameters

    return (
        len(hardware.connectors) == config.charger.connectors
        and station.params == sim_parameters(config.simulator.model_dump())
    )
