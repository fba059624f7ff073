"""A simulated electric vehicle: what it shows on the pilot and what current it draws.

The EV is the other half of every charging rule (IEC 61851-1 annex A), so it follows the offered
current the way a car does: never above the duty cycle's current or its own limit, and down to a
lower offer within ``follow_s`` (the time an EVSE must grant before calling it over-drawing).
"""

from __future__ import annotations

import enum


class EvState(enum.StrEnum):
    """The EV-side pilot states (E and F are line/EVSE conditions, not EV choices)."""

    A = "A"  # not connected
    B = "B"  # connected, not requesting
    C = "C"  # requesting energy
    D = "D"  # requesting energy, ventilation needed


# Positive pilot plateau seen by the EVSE for each EV state (REFERENCE.md A.1).
PILOT_HIGH_V: dict[EvState, float] = {EvState.A: 12.0, EvState.B: 9.0, EvState.C: 6.0, EvState.D: 3.0}


def offered_current_A(duty_percent: float) -> float:
    """Current an EV may draw for a PWM duty cycle (IEC 61851-1 table A.8); 0 means "do not charge"."""
    if 10.0 <= duty_percent <= 85.0:
        return duty_percent * 0.6
    if 85.0 < duty_percent <= 96.0:
        return (duty_percent - 64.0) * 2.5
    if 8.0 <= duty_percent < 10.0:
        return 6.0
    return 0.0


class SimulatedEv:
    """EV state, battery and drawn current; stepped by its connector, never by a clock of its own.

    Keeping time outside lets the connector integrate energy exactly between any two changes.
    """

    def __init__(
        self,
        *,
        max_current_A: float,
        phases: int,
        follow_s: float,
        battery_Wh: int,
        soc_percent: float,
    ) -> None:
        if phases not in (1, 3):
            raise ValueError(f"ev_phases must be 1 or 3, got {phases}")
        if max_current_A <= 0:
            raise ValueError(f"ev_max_current_A must be positive, got {max_current_A}")
        if follow_s < 0:
            raise ValueError(f"ev_follow_s must not be negative, got {follow_s}")
        if battery_Wh <= 0:
            raise ValueError(f"ev_battery_Wh must be positive, got {battery_Wh}")
        if not 0.0 <= soc_percent <= 100.0:
            raise ValueError(f"ev_soc_percent must be within 0..100, got {soc_percent}")
        self.max_current_A = max_current_A
        self.phases = phases
        self.follow_s = follow_s
        self.battery_Wh = battery_Wh
        self.soc_percent = soc_percent
        self.plugged = False
        self.requesting = False
        self.ventilation = False
        self.drawn_A = 0.0

    @property
    def state(self) -> EvState:
        if not self.plugged:
            return EvState.A
        if not self.requesting:
            return EvState.B
        return EvState.D if self.ventilation else EvState.C

    @property
    def battery_full(self) -> bool:
        return self.soc_percent >= 100.0

    def plug(self) -> None:
        self.plugged = True
        self.requesting = False
        self.ventilation = False

    def unplug(self) -> None:
        self.plugged = False
        self.requesting = False
        self.ventilation = False
        self.drawn_A = 0.0

    def request(self, *, ventilation: bool) -> None:
        self.requesting = True
        self.ventilation = ventilation

    def pause(self) -> None:
        self.requesting = False
        self.ventilation = False

    def advance(self, elapsed_s: float, target_A: float, voltage_V: float, time_scale: float) -> float:
        """Ramp the drawn current towards ``target_A`` over ``elapsed_s`` real seconds.

        Returns the energy in Wh that flowed (scaled by ``time_scale``); a linear ramp is integrated
        exactly, so the meter agrees with power x time however the steps fall.
        """
        energy_Wh = 0.0
        remaining_s = max(0.0, elapsed_s)
        rate_A_per_s = self.max_current_A / self.follow_s if self.follow_s > 0 else float("inf")
        if rate_A_per_s == float("inf"):
            self.drawn_A = target_A
        while remaining_s > 0.0:
            start_A = self.drawn_A
            gap_A = target_A - start_A
            if gap_A == 0.0:
                step_s = remaining_s
                end_A = start_A
            else:
                reach_s = abs(gap_A) / rate_A_per_s
                if reach_s <= remaining_s:
                    step_s = reach_s
                    end_A = target_A
                else:
                    step_s = remaining_s
                    end_A = start_A + rate_A_per_s * step_s * (1.0 if gap_A > 0 else -1.0)
            energy_Wh += self.phases * voltage_V * (start_A + end_A) / 2.0 * step_s * time_scale / 3600.0
            self.drawn_A = end_A
            remaining_s -= step_s
        if energy_Wh > 0.0:
            self.soc_percent = min(100.0, self.soc_percent + energy_Wh / self.battery_Wh * 100.0)
        return energy_Wh
