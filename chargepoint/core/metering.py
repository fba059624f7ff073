"""What the energy meter measured: the value type that the meter drivers produce and the charger consumes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One consistent snapshot of the energy meter.

    ``energy_Wh_import`` is the meter's import register (never decreases on a healthy meter);
    per-phase tuples are (L1, L2, L3); ``measured_at_s`` is on the monotonic clock.
    """

    energy_Wh_import: int
    power_W: float
    voltage_V: tuple[float, float, float]
    current_A: tuple[float, float, float]
    measured_at_s: float
    phase_power_W: tuple[float, float, float] | None = None  # active power per phase, where the meter gives it


@dataclass(frozen=True, slots=True)
class SignedMeterData:
    """A signed transaction record as the meter produced it, to be passed on unaltered (German calibration law:
    the signature comes from the certified meter, never from the firmware)."""

    ocmf: str  # OCMF|{payload}|{signature}
    public_key_hex: str  # the meter's key as DER SubjectPublicKeyInfo, upper-case hex (as the transparency software
    #                      and OCPP's MeterPublicKey keys take it)
