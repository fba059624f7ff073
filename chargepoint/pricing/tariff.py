"""The charger's own tariff model, shaped after OCPP 2.1 ``TariffType`` so 2.1 tariffs map onto it later.

All prices are excluding tax; tax rates turn them into the including-tax figures. Time prices are held
per hour (a per-minute price times 60 is exact in ``Decimal``; a per-hour price divided by 60 is not).
"""

from __future__ import annotations

import decimal
import enum
from dataclasses import dataclass, field
from datetime import date, time
from decimal import Decimal

from chargepoint.core.errors import ChargePointError


class TariffError(ChargePointError, ValueError):
    """A tariff is inconsistent or malformed; the message says what and where, for the log, the CLI or a reply."""


class Rounding(enum.StrEnum):
    """How money is rounded to the configured number of decimals."""

    half_up = "half_up"
    half_even = "half_even"
    up = "up"  # away from zero
    down = "down"  # towards zero

    @property
    def decimal_mode(self) -> str:
        return {
            Rounding.half_up: decimal.ROUND_HALF_UP,
            Rounding.half_even: decimal.ROUND_HALF_EVEN,
            Rounding.up: decimal.ROUND_UP,
            Rounding.down: decimal.ROUND_DOWN,
        }[self]


@dataclass(frozen=True, slots=True)
class MoneyFormat:
    """Decimals and rounding of every money amount the charger shows, stores or sends."""

    decimals: int = 2
    rounding: Rounding = Rounding.half_up

    def round(self, amount: Decimal) -> Decimal:
        return amount.quantize(Decimal(1).scaleb(-self.decimals), rounding=self.rounding.decimal_mode)


@dataclass(frozen=True, slots=True)
class TaxRate:
    """A tax on a component. ``stack`` 0 taxes the net amount; stack n also taxes the taxes of stacks < n
    (OCPP 2.1 ``TaxRateType.stack``)."""

    name: str
    percent: Decimal
    stack: int = 0


@dataclass(frozen=True, slots=True)
class Conditions:
    """When a price element applies. Every condition that is set must hold; none set means always.

    Time-of-day windows are in the charger's time zone, start inclusive, end exclusive; an end earlier
    than the start wraps past midnight (22:00-06:00). ``days_of_week`` uses ISO numbers (1 = Monday) of
    the local day at that moment. Dates: from inclusive, to exclusive. Thresholds compare the session's
    running totals at that moment: energy since session start, average power over the meter interval,
    time since session start (duration), time spent charging, time spent idle. Minimums are inclusive,
    maximums exclusive.
    """

    start_time_of_day: time | None = None
    end_time_of_day: time | None = None
    days_of_week: frozenset[int] | None = None
    valid_from_date: date | None = None
    valid_to_date: date | None = None
    min_energy_Wh: int | None = None
    max_energy_Wh: int | None = None
    min_power_W: float | None = None
    max_power_W: float | None = None
    min_duration_s: int | None = None
    max_duration_s: int | None = None
    min_charging_time_s: int | None = None
    max_charging_time_s: int | None = None
    min_idle_time_s: int | None = None
    max_idle_time_s: int | None = None

    @property
    def time_only(self) -> bool:
        """Only time-of-day and day-of-week conditions (what the coverage check counts as a fallback)."""
        return (
            self.valid_from_date is None
            and self.valid_to_date is None
            and all(
                getattr(self, name) is None
                for name in (
                    "min_energy_Wh", "max_energy_Wh", "min_power_W", "max_power_W", "min_duration_s",
                    "max_duration_s", "min_charging_time_s", "max_charging_time_s", "min_idle_time_s",
                    "max_idle_time_s",
                )
            )
        )


@dataclass(frozen=True, slots=True)
class PriceElement:
    """One price of a component and when it applies. The first element whose conditions hold wins."""

    price: Decimal
    conditions: Conditions = field(default_factory=Conditions)


@dataclass(frozen=True, slots=True)
class Component:
    """A priced dimension: energy (per kWh), charging time or idle time (per hour), fixed fee (per session).

    ``tax_rates`` None means the tariff's rates apply.
    """

    prices: tuple[PriceElement, ...]
    tax_rates: tuple[TaxRate, ...] | None = None


class TaxMethod(enum.StrEnum):
    """How taxes are computed from the rounded net amounts.

    ``per_line``: each cost line is taxed and rounded on its own, and the total tax is the sum of the lines'
    taxes (a total can then be a rounding unit above the tax on the total net). ``on_total``: each tax is
    computed once on the sum of the net amounts it applies to and rounded once, then shared out over the lines
    (running-sum rounding), so the lines still add up to the total.
    """

    per_line = "per_line"
    on_total = "on_total"


# Time zones of the EU member states (and their outlying regions). EU VAT invoices state the tax per rate on the
# taxable amount of the invoice (Directive 2006/112/EC, Art. 226 (8) and (10); Germany, UStG 14 (4) 8), so there
# the tax is computed on the total by default.
_EU_TIME_ZONES: frozenset[str] = frozenset(
    f"Europe/{city}" for city in (
        "Amsterdam", "Athens", "Berlin", "Bratislava", "Brussels", "Bucharest", "Budapest", "Busingen",
        "Copenhagen", "Dublin", "Helsinki", "Lisbon", "Ljubljana", "Luxembourg", "Madrid", "Malta", "Mariehamn",
        "Nicosia", "Paris", "Prague", "Riga", "Rome", "Sofia", "Stockholm", "Tallinn", "Vienna", "Vilnius",
        "Warsaw", "Zagreb",
    )
) | frozenset(("Asia/Nicosia", "Asia/Famagusta", "Atlantic/Canary", "Atlantic/Madeira", "Atlantic/Azores",
               "Africa/Ceuta"))


def default_tax_method(time_zone: str) -> TaxMethod:
    """The tax method where the charger stands: on the total in the EU, per line elsewhere."""
    return TaxMethod.on_total if time_zone in _EU_TIME_ZONES else TaxMethod.per_line


class ComponentKind(enum.StrEnum):
    energy = "energy"
    charging_time = "charging_time"
    idle_time = "idle_time"
    fixed_fee = "fixed_fee"


@dataclass(frozen=True, slots=True)
class Tariff:
    tariff_id: str
    currency: str  # ISO 4217
    energy: Component | None = None  # per kWh
    charging_time: Component | None = None  # per hour while charging
    idle_time: Component | None = None  # per hour while plugged in and not charging, after the grace
    fixed_fee: Component | None = None  # once per session; conditions: time of day, day of week, dates only
    idle_grace_s: int = 0  # idle time (summed over the session) that is free
    min_cost: Decimal | None = None  # excluding tax
    max_cost: Decimal | None = None  # excluding tax
    tax_rates: tuple[TaxRate, ...] = ()
    description: tuple[tuple[str, str], ...] = ()  # (RFC 5646 language, text), first is the default
    # A session that delivered no energy pays neither the fixed fee nor the minimum cost unless this is set.
    charge_without_energy: bool = False
    # Whether idle time before the session's first energy (the EV waits, e.g. for its own timer) is idle time.
    idle_before_energy: bool = True
    tax_method: TaxMethod = TaxMethod.per_line

    def component(self, kind: ComponentKind) -> Component | None:
        return getattr(self, kind.value)  # type: ignore[no-any-return]

    def taxes_of(self, kind: ComponentKind) -> tuple[TaxRate, ...]:
        component = self.component(kind)
        if component is not None and component.tax_rates is not None:
            return component.tax_rates
        return self.tax_rates
