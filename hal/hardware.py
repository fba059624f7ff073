"""The devices of a charger, grouped per connector, with the whole set's safe state and lifecycle.

A backend (the Raspberry Pi board in ``hal.rpi_board``, the simulators in ``simulators.hardware``) builds a
``Hardware``; the runtime only sees the ports.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from chargepoint.core.metering import MeterReading
from hal.errors import MeterError
from hal.payment import PaymentTerminal
from hal.protocols import (
    ConnectorLock,
    Contactor,
    ControlPilot,
    Display,
    EnergyMeter,
    MainsMonitor,
    OcmfIdentification,
    ProximityPilot,
    ResidualCurrentMonitor,
    RfidReader,
    ShuntTrip,
    SignedMeterData,
    SigningMeter,
    TamperSwitch,
)


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
    pp: ProximityPilot
    # The most the device itself can switch or generate (an EVSE board's configured maximum); None: no such limit.
    max_current_A: float | None = None
    shunt_trip: ShuntTrip | None = None  # None: no second means of disconnection is wired
    # An EVSE board generates the pilot and switches the relay itself (and tests them at its own power-on): the Pi
    # must not drive PWM or close the relay to test them - a board offers PWM to an EV and closes on state C.
    board_controlled: bool = False


class TetheredCable:
    """``ProximityPilot`` of a fixed cable: no PP resistor to read, the rating is what the installer configured."""

    def __init__(self, rating_A: float) -> None:
        self.rating_A = rating_A
        self._closed = asyncio.Event()

    def cable_max_A(self) -> float | None:
        return self.rating_A

    async def changes(self) -> AsyncIterator[float | None]:
        yield self.rating_A
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


@dataclass(slots=True)
class Hardware:
    """Every device of the charger. Backends that need a running loop (servers, physics) override ``start``."""

    connectors: list[ConnectorHardware]
    # The card payment terminal, if the charger has one (not per connector: one terminal serves them all).
    payment: PaymentTerminal | None = field(default=None, kw_only=True)
    # The enclosure's tamper switch, if one is wired (also the charger's as a whole).
    tamper: TamperSwitch | None = field(default=None, kw_only=True)

    async def force_safe(self) -> None:
        """Contactors open and pilots at +12 V, whatever happened before. Never raises."""
        for hw in self.connectors:
            for action in (hw.contactor.open, hw.pilot.set_high):
                # The safe state must be attempted on every device, whatever one of them raises.
                with contextlib.suppress(Exception):
                    await action()

    async def start(self) -> None:
        """Start what needs a running loop; real devices need nothing."""

    async def aclose(self) -> None:
        await self.force_safe()
        for hw in self.connectors:
            # The display last: a broken screen must not keep the safety devices from closing.
            for device in (hw.meter, hw.rfid, hw.lock, hw.rcd, hw.mains, hw.pp, hw.pilot, hw.contactor, hw.display):
                await device.aclose()
            if hw.shunt_trip is not None:
                await hw.shunt_trip.aclose()
        if self.tamper is not None:
            await self.tamper.aclose()
        if self.payment is not None:
            await self.payment.aclose()  # an open pre-authorisation stays on the terminal, to be reconciled


class NoProximityInput:
    """``ProximityPilot`` of a board with no PP input wired: no cable is ever detected, so a socket outlet offers
    nothing (configure a tethered cable, or wire the PP input)."""

    def __init__(self) -> None:
        self._closed = asyncio.Event()

    def cable_max_A(self) -> float | None:
        return None

    async def changes(self) -> AsyncIterator[float | None]:
        yield None
        await self._closed.wait()

    async def aclose(self) -> None:
        self._closed.set()


class LazyMeter:
    """An ``EnergyMeter`` built on its first read: the Modbus driver imports pymodbus, which must stay off the
    early safe path, and a simulated meter's server has no port until the station has started."""

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


class LazySigningMeter(LazyMeter):
    """A ``LazyMeter`` whose driver signs (``SigningMeter``): the signing calls build it too."""

    def _signing(self) -> SigningMeter:
        if self._driver is None:
            self._driver = self._build()
        driver = self._driver
        if not isinstance(driver, SigningMeter):
            raise MeterError(f"{type(driver).__name__} does not sign its readings")
        return driver

    async def begin_transaction(self, identification: OcmfIdentification) -> None:
        await self._signing().begin_transaction(identification)

    async def end_transaction(self) -> SignedMeterData:
        return await self._signing().end_transaction()

    async def transaction_open(self) -> bool:
        return await self._signing().transaction_open()

    async def serial_number(self) -> str:
        return await self._signing().serial_number()

    async def public_key_hex(self) -> str:
        return await self._signing().public_key_hex()
