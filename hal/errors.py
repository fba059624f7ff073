"""Errors raised by hardware ports. Drivers convert vendor exceptions into these."""

from __future__ import annotations

from chargepoint.errors import ChargePointError


class HalError(ChargePointError, OSError):
    """A device did not do what it was asked."""


class HalTimeout(HalError, TimeoutError):
    """A device did not answer in time (meter silent on the bus, reader gone)."""


class MeterError(HalError):
    """The energy meter could not be read or returned an impossible value."""


class LockError(HalError):
    """The connector lock actuator did not reach the requested position."""


class BackendUnavailable(ChargePointError, ImportError):
    """A backend named in the config cannot be loaded on this machine (missing package, unknown name)."""


class NotSimulated(HalError):
    """A simulator stimulus was requested but this device runs on real hardware."""
