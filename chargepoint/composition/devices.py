"""Build the charger's devices for ``[hardware] backend``: the Raspberry Pi board, an EVSE board or the simulators.

Kept free of heavy imports (pydantic, pymodbus) so that the daemon can reach the safe state from the raw TOML
before it even validates its configuration; the simulators are imported only when the config asks for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from hal.boards import BoardHardware, BoardSettings, board_settings, create_board_hardware
from hal.errors import BackendUnavailable
from hal.hardware import Hardware
from hal.payment import PaymentTerminal
from hal.protocols import ConnectorLock, RfidReader
from hal.registry import load_backend
from hal.rpi_board import RpiHardware, RpiSettings, create_rpi_hardware, rpi_lock, rpi_meter, rpi_settings

if TYPE_CHECKING:
    from chargepoint.config.schema import Config
    from simulators.station import SimulatedStation
    from simulators.zvt_terminal import ZvtTerminalSimulator

# Values of [hardware] backend = ...
HARDWARE_BACKENDS: tuple[str, ...] = ("rpi", "sim", "board")


def create_hardware(
    backend: str,
    connector_count: int,
    simulator: Mapping[str, Any],
    hardware: Mapping[str, Any] | None = None,
    charger: Mapping[str, Any] | None = None,
) -> Hardware:
    """Construct every device in its safe state without starting any I/O loop or server.

    ``simulator``, ``hardware`` and ``charger`` are the ``[simulator]``, ``[hardware]`` and ``[charger]`` tables as
    plain dicts (``model_dump()`` of the validated settings, or the raw TOML tables). Without ``charger`` (the early
    safe path) a board's cable is read on its PP input; the build from the validated config then has it right.
    """
    if backend == "rpi":
        return create_rpi_hardware(connector_count, rpi_settings(hardware or {}))
    if backend == "board":
        return _board_hardware(connector_count, hardware or {}, charger or {})
    if backend != "sim":
        raise BackendUnavailable(f"no hardware backend named {backend!r} (known: {', '.join(HARDWARE_BACKENDS)})")
    from simulators.hardware import sim_parameters, simulated_hardware

    return simulated_hardware(sim_parameters(simulator), connector_count)


def _board_hardware(connector_count: int, hardware: Mapping[str, Any], charger: Mapping[str, Any]) -> BoardHardware:
    """One connector on an EVSE board; the meter, card reader and lock are the Pi's, as for the rpi backend.

    Nothing is opened here: the board's link opens with its first command (for the early safe path: "stop").
    """
    if connector_count != 1:
        raise BackendUnavailable(f"hardware backend 'board' drives one connector, not {connector_count}")
    settings, pi, tethered_A = _board_plan(hardware, charger)
    lock = rpi_lock(pi)
    try:
        rfid_class = load_backend("rfid", pi.rfid.backend)
        rfid: RfidReader = rfid_class() if pi.rfid.backend == "none" else rfid_class(pi.rfid.device)
    except BaseException:
        _release(lock)
        raise
    return create_board_hardware(
        settings, meter=rpi_meter(pi.meter), rfid=rfid, lock=lock, display=load_backend("display", "log")(1),
        tethered_cable_A=tethered_A, built_from=(pi.meter, pi.lock, pi.rfid, tethered_A),
    )


def _board_plan(
    hardware: Mapping[str, Any], charger: Mapping[str, Any]
) -> tuple[BoardSettings, RpiSettings, float | None]:
    """The board's settings, the Pi's (meter, lock, reader) and the fixed cable's rating (None: a socket)."""
    table = hardware.get("board")
    if not isinstance(table, Mapping):
        raise TypeError("[hardware.board] is missing")  # the validation explains it
    tethered_A = float(charger.get("cable_rating_A", 32.0)) if charger.get("tethered_cable") is True else None
    return board_settings(table), rpi_settings(hardware), tethered_A


def _release(lock: ConnectorLock) -> None:
    release = getattr(lock, "release", None)
    if callable(release):
        release()


def create_hardware_for(config: Config) -> Hardware:
    hardware = create_hardware(
        config.hardware.backend, config.charger.connectors, config.simulator.model_dump(),
        config.hardware.model_dump(), config.charger.model_dump(),
    )
    attach_payment(hardware, config)
    return hardware


class PaymentPlan(NamedTuple):
    """``[hardware.payment]`` as the terminal is built from it (a tuple: ``plan[0]`` is the backend)."""

    backend: str
    host: str
    port: int
    password: str
    currency: str
    timeout_s: float
    capture_command: str
    transport: Literal["tcp", "serial"] = "tcp"
    serial_port: str = ""
    baudrate: int = 9600

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        shown = ", ".join(f"{name}={'******' if name == 'password' else repr(value)}"
                          for name, value in zip(self._fields, self, strict=True))
        return f"PaymentPlan({shown})"


def payment_plan(config: Config) -> PaymentPlan:
    """The terminal ``[hardware.payment]`` asks for, with ``auto`` resolved: the simulated terminal on the sim
    backend, none on real hardware."""
    p = config.hardware.payment
    backend = p.backend if p.backend != "auto" else ("sim" if config.hardware.backend == "sim" else "none")
    password = "000000" if p.password is None else p.password.get_secret_value()
    return PaymentPlan(backend, p.host, p.port, password, p.currency, p.timeout_s, p.capture_command, p.transport,
                       p.serial_port, p.baudrate)


def create_payment_terminal(config: Config) -> PaymentTerminal | None:
    """The configured payment terminal, built but not connected (a driver connects on its first request).

    The simulated terminal on ``transport = "serial"`` serves the serial framing on a pseudo-terminal of its own;
    ``serial_port`` names a real device and is for a real terminal only."""
    plan = payment_plan(config)
    capture: Literal["book-total", "partial-reversal"] = (
        "partial-reversal" if plan.capture_command == "partial-reversal" else "book-total")
    if plan.backend == "none":
        return None
    if plan.backend == "sim":
        from simulators.zvt_terminal import SimulatedPaymentTerminal

        return SimulatedPaymentTerminal(password=plan.password, currency=plan.currency, timeout_s=plan.timeout_s,
                                        capture_command=capture, transport=plan.transport, baudrate=plan.baudrate)
    from hal.drivers.zvt import ZvtSettings, ZvtTerminal

    return ZvtTerminal(ZvtSettings(plan.host, plan.port, password=plan.password, currency=plan.currency,
                                   timeout_s=plan.timeout_s, capture_command=capture, transport=plan.transport,
                                   serial_port=plan.serial_port, baudrate=plan.baudrate))


def attach_payment(hardware: Hardware, config: Config) -> None:
    """Give ``hardware`` the configured payment terminal if it has none yet.

    Not part of ``create_hardware``: the early safe path builds devices from the raw file, and a payment terminal
    has no safe state to reach; it joins once the config has validated."""
    if hardware.payment is None:
        hardware.payment = create_payment_terminal(config)


def payment_simulator_of(hardware: Hardware) -> ZvtTerminalSimulator | None:
    """The simulated terminal's stimulus port (``present_card``, the ledger), or None for a real or no terminal."""
    from hal.drivers.zvt import ZvtTerminal

    if hardware.payment is None or isinstance(hardware.payment, ZvtTerminal):
        return None
    from simulators.zvt_terminal import SimulatedPaymentTerminal

    return hardware.payment.simulator if isinstance(hardware.payment, SimulatedPaymentTerminal) else None


async def build_hardware(config: Config) -> Hardware:
    """Construct and start every device the config names."""
    hardware = create_hardware_for(config)
    await hardware.start()
    return hardware


def station_of(hardware: Hardware) -> SimulatedStation | None:
    """The simulators' stimulus port, or None on real hardware."""
    if isinstance(hardware, RpiHardware | BoardHardware):
        return None
    from simulators.hardware import SimulatedHardware

    return hardware.station if isinstance(hardware, SimulatedHardware) else None


def matches(hardware: Hardware, config: Config) -> bool:
    """True if ``hardware`` (built early from the raw TOML) is what the validated ``config`` asks for."""
    if hardware.payment is None and payment_plan(config)[0] != "none":
        return False  # built without its payment terminal: rebuild from the validated config, which adds it
    if config.hardware.backend == "rpi":
        return isinstance(hardware, RpiHardware) and hardware.settings == rpi_settings(config.hardware.model_dump())
    if config.hardware.backend == "board":
        settings, pi, tethered_A = _board_plan(config.hardware.model_dump(), config.charger.model_dump())
        return (
            isinstance(hardware, BoardHardware)
            and hardware.settings == settings
            and hardware.built_from == (pi.meter, pi.lock, pi.rfid, tethered_A)
        )
    station = station_of(hardware)
    if station is None:
        return False
    from simulators.hardware import sim_parameters

    return (
        len(hardware.connectors) == config.charger.connectors
        and station.params == sim_parameters(config.simulator.model_dump())
    )
