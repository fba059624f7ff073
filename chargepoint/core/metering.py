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
