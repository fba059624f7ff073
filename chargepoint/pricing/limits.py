"""Session limits: maximum cost, energy or duration, from a price package, a prepaid balance or the CSMS.

The tightest of each kind wins. ``reached`` is checked at every meter sample, so a session overshoots a limit by
at most what one meter interval delivers (``meter_poll_interval_s`` at the session's power, priced) plus the few
milliseconds the stop takes; tests/integration/test_pricing_runtime.py measures that bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

_N = TypeVar("_N", Decimal, int, float)

# Stop reasons, named as OCPP 2.1 names the trigger (TriggerReasonEnum); OCPP 1.6 sends them as "Other".
COST_LIMIT = "CostLimitReached"
ENERGY_LIMIT = "EnergyLimitReached"
TIME_LIMIT = "TimeLimitReached"
LIMIT_REASONS = frozenset({COST_LIMIT, ENERGY_LIMIT, TIME_LIMIT})


def _tighter(a: _N | None, b: _N | None) -> _N | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_cost: Decimal | None = None  # including tax
    max_energy_Wh: int | None = None
    max_duration_s: float | None = None
    sources: tuple[str, ...] = ()  # where they came from: package name, "prepaid", "csms"

    @property
    def any(self) -> bool:
        return self.max_cost is not None or self.max_energy_Wh is not None or self.max_duration_s is not None

    def tighten(self, other: SessionLimits) -> SessionLimits:
        return SessionLimits(
            _tighter(self.max_cost, other.max_cost),
            _tighter(self.max_energy_Wh, other.max_energy_Wh),
            _tighter(self.max_duration_s, other.max_duration_s),
            self.sources + tuple(s for s in other.sources if s not in self.sources),
        )

    def reached(self, cost: Decimal | None, energy_Wh: int, duration_s: float) -> str | None:
        """The reason to stop now, or None. Cost limits need a priced session (``cost`` not None)."""
        if self.max_energy_Wh is not None and energy_Wh >= self.max_energy_Wh:
            return ENERGY_LIMIT
        if self.max_cost is not None and cost is not None and cost >= self.max_cost:
            return COST_LIMIT
        if self.max_duration_s is not None and duration_s >= self.max_duration_s:
            return TIME_LIMIT
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "max_cost": None if self.max_cost is None else str(self.max_cost),
            "max_energy_Wh": self.max_energy_Wh,
            "max_duration_s": self.max_duration_s,
            "sources": list(self.sources),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionLimits:
        return cls(
            None if data.get("max_cost") is None else Decimal(data["max_cost"]),
            data.get("max_energy_Wh"),
            data.get("max_duration_s"),
            tuple(data.get("sources", ())),
        )
