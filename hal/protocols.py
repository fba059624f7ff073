"""Hardware ports: one Protocol per device, with its behaviour contract.

Every value carries its unit in its name. Every port has ``aclose()``, after which the device is in
its declared safe state. Drivers raise only the ``hal.errors`` tree.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from chargepoint.core.metering import MeterReading, SignedMeterData
from chargepoint.core.pilot import PilotOutput, PilotReading

__all__ = [
    "ConnectorLock", "Contactor", "ControlPilot", "Display", "DisplayKind", "DisplayMessage", "EnergyMeter",
    "MainsMonitor", "MeterReading", "OcmfIdentification", "PilotOutput", "PilotReading", "ProximityPilot",
    "ResidualCurrentMonitor", "RfidReader", "SelfTestingRcd", "ShuntTrip", "SignedMeterData", "SigningMeter",
]


@runtime_checkable
class ControlPilot(Protocol):
    """Control pilot generator and sampler (IEC 61851-1 annex A).

    Contract:
    - Initial and shutdown output is HIGH (+12 V, no PWM): an EV never sees permission to charge
      from a controller that has not decided to give it.
    - ``set_pwm(duty_percent)`` switches to PWM with 0 < duty_percent <= 100; ``set_high()`` and
      ``set_negative()`` switch to constant levels. Each takes effect before it returns.
    - ``readings()`` yields every sample, promptly, at least every 20 ms even when nothing changes: the runtime
      takes a gap longer than ``pilot_timeout_s`` for a dead sampler and opens the contactor. Each reading says
      which output it was taken under (``PilotReading.output``).
    """

    async def set_pwm(self, duty_percent: float) -> None: ...

    async def set_high(self) -> None: ...

    async def set_negative(self) -> None: ...

    def output(self) -> tuple[PilotOutput, float]:
        """The output being driven and its duty in percent (0 unless PWM)."""
        ...

    def readings(self) -> AsyncIterator[PilotReading]: ...

    def latest(self) -> PilotReading: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Contactor(Protocol):
    """Main AC contactor (or relay) with a mirror (auxiliary) contact for feedback.

    Contract:
    - Open is the initial and shutdown state; losing the controller must open it (pull-down).
    - ``close()``/``open()`` request a position and return at once; the mirror contact confirms it
      within ``feedback_delay_s`` of the device, reported by ``feedback_closed()`` and
      ``feedback()``. A welded contactor keeps reporting closed after ``open()``: the caller decides
      what that means, the port never hides it.
    """

    async def close(self) -> None: ...

    async def open(self) -> None: ...

    def commanded_closed(self) -> bool: ...

    def feedback_closed(self) -> bool: ...

    def feedback(self) -> AsyncIterator[bool]:
        """Yields the mirror contact's state on every change (True = closed)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class EnergyMeter(Protocol):
    """Billing energy meter.

    Contract: ``read()`` returns a fresh reading or raises ``MeterError``/``HalTimeout``; it never
    returns a cached value as if it were fresh. The register map stays inside the driver.
    """

    async def read(self) -> MeterReading: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OcmfIdentification:
    """What a signing meter writes into its signed dataset at the begin of a transaction (OCMF metadata fields).

    Values are OCMF's own vocabulary (REFERENCE 4.5); none may contain ``|``, which separates an OCMF string's
    sections."""

    identified: bool  # IS: the user is assigned (a card or a CSMS start), False for free vend
    identification_type: str  # IT: ISO14443, CENTRAL, CARD_TXN_NR, NONE ...
    identification_data: str  # ID: the idTag, or "" when there is none
    identification_flags: tuple[str, ...]  # IF: RFID_PLAIN, OCPP_AUTH, OCPP_CACHE ...
    charge_point_type: str  # CT: EVSEID or CBIDC
    charge_point_id: str  # CI
    gateway_id: str  # GI: who built the metadata (this firmware)
    gateway_serial: str  # GS: the charger's serial (its OCPP identity)
    gateway_version: str  # GV: the firmware's version
    tariff_text: str = ""  # TT: the price shown to the driver (<= 250 characters)


@runtime_checkable
class SigningMeter(EnergyMeter, Protocol):
    """A billing meter that signs begin and end readings of a transaction (OCMF), e.g. an Iskra WM3M4C.

    Contract: ``begin_transaction`` makes the meter take its signed begin reading, and returns once the meter has
    it; a transaction the meter still holds open (from a power cut) is ended first, its data dropped (the runtime
    asks ``end_transaction`` for it before, where it can still use it). ``end_transaction`` makes it take the
    end reading and returns the signed dataset of begin and end. ``transaction_open`` says whether the meter holds
    a transaction open (it survives a restart of the firmware and a power cut). Failures raise ``MeterError`` or
    ``HalTimeout``; the meter's plain readings (``read``) go on regardless.
    """

    async def begin_transaction(self, identification: OcmfIdentification) -> None: ...

    async def end_transaction(self) -> SignedMeterData: ...

    async def transaction_open(self) -> bool: ...

    async def serial_number(self) -> str: ...

    async def public_key_hex(self) -> str: ...


@runtime_checkable
class RfidReader(Protocol):
    """Card reader. ``tags()`` yields the id of each card presented (upper-case hex UID), once per tap."""

    def tags(self) -> AsyncIterator[str]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ConnectorLock(Protocol):
    """Actuator that locks the plug in a socket outlet.

    Contract: ``lock()``/``unlock()`` return once the position sensor confirms it and raise
    ``LockError`` if it does not within the actuator's time. ``tethered`` is True for a fixed cable,
    which has no lock: then both calls succeed without doing anything. Shutdown state: unchanged
    (a crash must not release a plug under load; the contactor is already open).
    """

    @property
    def tethered(self) -> bool: ...

    async def lock(self) -> None: ...

    async def unlock(self) -> None: ...

    def is_locked(self) -> bool: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ResidualCurrentMonitor(Protocol):
    """RCD / RDC-DD module (IEC 62955, 6 mA DC).

    Contract: ``tripped()`` is True while the module signals a fault; ``trips()`` yields True on a trip
    and False when the module has been reset. The module itself cuts power on real hardware; the
    controller must still open the contactor and report GroundFailure.
    """

    def tripped(self) -> bool: ...

    def trips(self) -> AsyncIterator[bool]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class SelfTestingRcd(Protocol):
    """An RCD module with its TEST input wired (optional capability of a ``ResidualCurrentMonitor``).

    Contract: ``self_test()`` makes the module trip and reset and returns when it has; it raises ``HalError`` if the
    module does not trip, does not reset, or reads tripped before the test. The test's own trip is not reported
    through ``trips()``.
    """

    @property
    def has_test_input(self) -> bool: ...

    async def self_test(self) -> None: ...


@runtime_checkable
class ProximityPilot(Protocol):
    """Proximity pilot (PP, IEC 61851-1 annex B / IEC 62196-2): the current rating of the plugged cable.

    Contract:
    - ``cable_max_A()`` is the rating the cable's PP resistor codes (13, 20, 32 or 63 A), or None when no cable is
      detected (PP open) or the reading fits no band: the charger then offers nothing.
    - ``changes()`` yields the present value first, then each change, promptly.
    - A tethered cable (``hal.hardware.TetheredCable``) reports its configured rating all the time.
    """

    def cable_max_A(self) -> float | None: ...

    def changes(self) -> AsyncIterator[float | None]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class ShuntTrip(Protocol):
    """Second means of disconnection: the shunt-trip release of the upstream breaker, driven when the contactor has
    welded and can no longer cut the supply.

    Contract: ``trip()`` energises the release and returns; the breaker then stays open until someone resets it by
    hand (so the whole connector, controller supply excepted, loses mains). ``tripped()`` is True once it was driven.
    """

    async def trip(self) -> None: ...

    def tripped(self) -> bool: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class MainsMonitor(Protocol):
    """Supply voltage presence (the controller may run on from a UPS or capacitor after mains loss).

    ``changes()`` yields False when mains is lost and True when it returns.
    """

    def present(self) -> bool: ...

    def changes(self) -> AsyncIterator[bool]: ...

    async def aclose(self) -> None: ...


class TamperSwitch(Protocol):
    """The enclosure's tamper switch (door or cover contact), for the charger as a whole.

    ``changes()`` yields True when the enclosure is opened and False when it is closed again. Wired so that a broken
    wire reads as opened.
    """

    def opened(self) -> bool: ...

    def changes(self) -> AsyncIterator[bool]: ...

    async def aclose(self) -> None: ...


class DisplayKind(enum.StrEnum):
    """What a screen is showing, so that a panel driver can pick a layout (and tests can wait for it)."""

    price = "price"  # the tariff before a session
    running = "running"  # energy, time and cost while charging
    receipt = "receipt"  # the bill after a session
    info = "info"  # anything else: status, instructions, CSMS texts


@dataclass(frozen=True, slots=True)
class DisplayMessage:
    """One screenful: ``lines`` top to bottom, already in ``language`` (RFC 5646, e.g. "de").

    ``qr_code_text`` is shown as a QR code next to the lines where the panel can (payment or receipt URL).
    """

    kind: DisplayKind
    lines: tuple[str, ...]
    language: str = "en"
    qr_code_text: str | None = None


@runtime_checkable
class Display(Protocol):
    """The connector's screen (or whatever stands in for it on a board without one).

    Contract:
    - ``show(message)`` replaces what is on the screen at once, completely; it never raises for the
      content (lines too long or too many are cut by the driver); a failing device raises ``HalError``.
    - ``shown()`` is the message on the screen now, None while it is blank.
    - Blank is the initial and shutdown state: ``aclose()`` blanks the screen.
    """

    async def show(self, message: DisplayMessage) -> None: ...

    def shown(self) -> DisplayMessage | None:
        """What is on the screen now; None while it is blank."""
        ...

    async def aclose(self) -> None: ...
