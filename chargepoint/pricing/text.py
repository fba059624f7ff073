"""What the screen says about money: the price before a session, the running cost, the receipt. Pure.

Prices are shown including tax (EU consumers see gross prices): a component's net price plus its taxes, where
stack 0 taxes the net price and stack n taxes the net price plus the taxes of the stacks below it. Unit prices
keep up to four decimals (0.3945 EUR/kWh stays 0.3945; never fewer than the money's decimals), amounts have
the money's decimals; both are rounded with the money's rounding mode. English writes "12.35", German, French
and Dutch "12,35". Currencies are shown by their ISO code. Every function returns display lines, top to bottom.

Size: the same few screens worded in four languages; every function is short.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Final

from chargepoint.pricing.tariff import (
    Component,
    ComponentKind,
    Conditions,
    MoneyFormat,
    PriceElement,
    Tariff,
    TaxRate,
)

if TYPE_CHECKING:
    from chargepoint.pricing.cost import CostBreakdown

SUPPORTED_LANGUAGES: Final = ("en", "de", "fr", "nl")

# Unit prices (per kWh, per hour) keep up to this many decimals.
UNIT_PRICE_DECIMALS: Final = 4


@dataclass(frozen=True, slots=True)
class _Words:
    """Everything a language needs; no defaults, so a language that lacks a word does not type-check."""

    decimal_separator: str
    weekdays: tuple[str, str, str, str, str, str, str]  # ISO order, Monday first
    energy: str
    charging_time: str
    idle_time: str
    fixed_fee: str
    min_cost: str
    max_cost: str
    free: str
    prices_incl: str  # followed by the taxes: "Prices incl. VAT 19 %"
    no_tax: str
    after: str  # "after 30 min"
    first: str  # "first 60 min"
    from_: str  # "from 10 kWh" (a minimum, inclusive)
    below: str  # "below 20 kWh" (a maximum, exclusive)
    charging: str  # "after 2 h charging": a charging-time condition on another component
    idle: str  # "after 30 min idle": an idle-time condition on another component
    valid_from: str  # "from 2025-01-01"
    valid_until: str  # "until 2025-03-31" (last valid day, inclusive)
    date_format: str  # strftime
    cost: str  # the running cost
    duration: str
    tax_incl: str  # receipt: "incl. VAT 1.23 EUR"
    tax_generic: str  # the tax's name when the breakdown names none
    total: str
    total_operator: str  # the CSMS's figure
    idle_before_energy: str  # after the idle prices: the wait before the first energy is idle time too
    idle_after_energy: str  # after the idle prices: no idle time before the first energy
    tax_per_line: str  # receipt: each line taxed and rounded on its own
    tax_on_total: str  # receipt: each tax computed once on the total net


_WORDS: Final[dict[str, _Words]] = {
    "en": _Words(
        decimal_separator=".",
        weekdays=("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
        energy="Energy",
        charging_time="Charging time",
        idle_time="Idle",
        fixed_fee="Session fee",
        min_cost="Minimum",
        max_cost="Maximum",
        free="Free of charge",
        prices_incl="Prices incl.",
        no_tax="No tax",
        after="after",
        first="first",
        from_="from",
        below="below",
        charging="charging",
        idle="idle",
        valid_from="from",
        valid_until="until",
        date_format="%Y-%m-%d",
        cost="Cost",
        duration="Duration",
        tax_incl="incl.",
        tax_generic="tax",
        total="Total",
        total_operator="Total (operator)",
        idle_before_energy="Idle fee also while waiting to charge",
        idle_after_energy="No idle fee before charging starts",
        tax_per_line="Tax per line",
        tax_on_total="Tax on the total",
    ),
    "de": _Words(
        decimal_separator=",",
        weekdays=("Mo", "Di", "Mi", "Do", "Fr", "Sa", "So"),
        energy="Energie",
        charging_time="Ladezeit",
        idle_time="Blockiergebühr",
        fixed_fee="Grundgebühr",
        min_cost="Mindestpreis",
        max_cost="Höchstpreis",
        free="Kostenlos",
        prices_incl="Preise inkl.",
        no_tax="Ohne Steuern",
        after="nach",
        first="erste",
        from_="ab",
        below="unter",
        charging="Laden",
        idle="Standzeit",
        valid_from="ab",
        valid_until="bis",
        date_format="%d.%m.%Y",
        cost="Kosten",
        duration="Dauer",
        tax_incl="inkl.",
        tax_generic="Steuern",
        total="Gesamt",
        total_operator="Gesamt (Betreiber)",
        idle_before_energy="Blockiergebühr auch vor Ladebeginn",
        idle_after_energy="Keine Blockiergebühr vor Ladebeginn",
        tax_per_line="Steuer je Position",
        tax_on_total="Steuer auf den Gesamtbetrag",
    ),
    "fr": _Words(
        decimal_separator=",",
        weekdays=("lun", "mar", "mer", "jeu", "ven", "sam", "dim"),
        energy="Énergie",
        charging_time="Temps de charge",
        idle_time="Frais d'occupation",
        fixed_fee="Frais de session",
        min_cost="Prix minimum",
        max_cost="Prix maximum",
        free="Gratuit",
        prices_incl="Prix TTC, dont",
        no_tax="Sans taxe",
        after="après",
        first="premières",
        from_="dès",
        below="moins de",
        charging="de charge",
        idle="d'occupation",
        valid_from="dès le",
        valid_until="jusqu'au",
        date_format="%d/%m/%Y",
        cost="Coût",
        duration="Durée",
        tax_incl="dont",
        tax_generic="taxes",
        total="Total",
        total_operator="Total (opérateur)",
        idle_before_energy="Frais d'occupation aussi avant la charge",
        idle_after_energy="Pas de frais d'occupation avant la charge",
        tax_per_line="Taxe par ligne",
        tax_on_total="Taxe sur le total",
    ),
    "nl": _Words(
        decimal_separator=",",
        weekdays=("ma", "di", "wo", "do", "vr", "za", "zo"),
        energy="Energie",
        charging_time="Laadtijd",
        idle_time="Stilstand",
        fixed_fee="Starttarief",
        min_cost="Minimumprijs",
        max_cost="Maximumprijs",
        free="Gratis",
        prices_incl="Prijzen incl.",
        no_tax="Geen belasting",
        after="na",
        first="eerste",
        from_="vanaf",
        below="onder",
        charging="laden",
        idle="stilstand",
        valid_from="vanaf",
        valid_until="t/m",
        date_format="%d-%m-%Y",
        cost="Kosten",
        duration="Duur",
        tax_incl="incl.",
        tax_generic="belasting",
        total="Totaal",
        total_operator="Totaal (exploitant)",
        idle_before_energy="Stilstandkosten ook vóór het laden",
        idle_after_energy="Geen stilstandkosten vóór het laden",
        tax_per_line="Belasting per regel",
        tax_on_total="Belasting over het totaal",
    ),
}


# ----------------------------------------------------------------------------- languages and lines


def _primary_subtag(tag: str) -> str:
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def pick_language(preferred: str | None, default: str) -> str:
    """The supported language for an RFC 5646 tag ("de-DE" -> "de", "FR" -> "fr").

    An unknown or missing ``preferred`` gives ``default`` (itself reduced the same way, and "en" if the
    charger does not speak it either).
    """
    for tag in (preferred, default):
        if tag is not None and _primary_subtag(tag) in SUPPORTED_LANGUAGES:
            return _primary_subtag(tag)
    return "en"


def _words(language: str) -> _Words:
    return _WORDS[pick_language(language, "en")]


def text_lines(text: str) -> tuple[str, ...]:
    """A free text (a CSMS price text may hold newlines, CR LF or lone CR) as display lines.

    Tabs become spaces, trailing blanks go, and so do empty lines at the start and the end; empty lines in
    between stay (the sender spaced the text on purpose).
    """
    lines = [line.replace("\t", " ").rstrip() for line in text.splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return tuple(lines)


# ----------------------------------------------------------------------------- numbers


def _plain(value: Decimal, words: _Words) -> str:
    text = format(value, "f")
    if text.startswith("-") and value == 0:
        text = text[1:]  # no "-0.00" on a screen
    return text.replace(".", words.decimal_separator)


def _amount(value: Decimal, money: MoneyFormat, words: _Words) -> str:
    """A money amount with the money's decimals."""
    return _plain(money.round(value), words)


def _unit_price(value: Decimal, money: MoneyFormat, words: _Words) -> str:
    """A price per unit: up to four decimals, trailing zeros dropped down to the money's decimals."""
    decimals = max(money.decimals, UNIT_PRICE_DECIMALS)
    text = format(MoneyFormat(decimals, money.rounding).round(value), "f")
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(money.decimals, "0")
    return _plain(Decimal(f"{whole}.{fraction}" if fraction else whole), words)


def _number(value: Decimal, words: _Words) -> str:
    """A quantity as written by hand: no trailing zeros, no exponent ("10", "7.4", "19", "5.5")."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        normalized = normalized.quantize(Decimal(1))
    return _plain(normalized, words)


def _kWh(energy_Wh: int, words: _Words, decimals: int | None = None) -> str:
    value = Decimal(energy_Wh) / 1000
    if decimals is None:
        return _number(value, words)
    return _plain(value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP), words)


def _kW(power_W: float, words: _Words) -> str:
    return _number(Decimal(repr(power_W)) / 1000, words)


def _hours_minutes(seconds: float) -> str:
    """Elapsed time as h:mm ("1:05"), whole minutes, cut down (a started minute is not shown yet)."""
    minutes = int(max(seconds, 0.0)) // 60
    return f"{minutes // 60}:{minutes % 60:02d}"


def _elapsed(seconds: float) -> str:
    """Elapsed time with its unit: seconds under a minute ("40 s"), else "h:mm h" ("1:05 h")."""
    if seconds < 60:
        return f"{int(max(seconds, 0.0))} s"
    return f"{_hours_minutes(seconds)} h"


def _span(seconds: int) -> tuple[str, str]:
    """A condition's time as (number, unit): whole hours in h, whole minutes in min, else seconds."""
    if seconds and seconds % 3600 == 0:
        return str(seconds // 3600), "h"
    if seconds % 60 == 0:
        return str(seconds // 60), "min"
    return str(seconds), "s"


def _percent(value: Decimal, words: _Words) -> str:
    return f"{_number(value, words)} %"


# ----------------------------------------------------------------------------- taxes


def gross(net: Decimal, taxes: tuple[TaxRate, ...]) -> Decimal:
    """``net`` plus its taxes, unrounded: stack 0 taxes ``net``, stack n taxes ``net`` plus the lower stacks' taxes."""
    total_tax = Decimal(0)
    for stack in sorted({tax.stack for tax in taxes}):
        base = net + total_tax
        total_tax += sum((base * tax.percent / 100 for tax in taxes if tax.stack == stack), Decimal(0))
    return net + total_tax


# ----------------------------------------------------------------------------- price before a session


def _weekdays(days: frozenset[int], words: _Words) -> str:
    """ISO weekdays as runs: {6, 7} -> "Sat-Sun", {1, 2, 3, 4, 5} -> "Mon-Fri", {5, 6, 7, 1} -> "Fri-Mon"."""
    ordered = sorted(day for day in days if 1 <= day <= 7)
    if len(ordered) > 1 and 1 in ordered and 7 in ordered:
        # Start after the first gap so that a run over the weekend stays one run.
        gap = next(i for i in range(1, len(ordered)) if ordered[i] != ordered[i - 1] + 1)
        ordered = ordered[gap:] + ordered[:gap]
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] % 7 + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        first, last = words.weekdays[run[0] - 1], words.weekdays[run[-1] - 1]
        parts.append(first if len(run) == 1 else f"{first}-{last}")
    return ",".join(parts)


def _clock(moment: time) -> str:
    return f"{moment:%H:%M:%S}" if moment.second else f"{moment:%H:%M}"


def _range(low: str | None, high: str | None, unit: str, words: _Words) -> str:
    if low is not None and high is not None:
        return f"{low}-{high} {unit}"
    if low is not None:
        return f"{words.from_} {low} {unit}"
    return f"{words.below} {high} {unit}"


def _time_range(low_s: int | None, high_s: int | None, suffix: str, words: _Words) -> str | None:
    if low_s is None and high_s is None:
        return None
    tail = f" {suffix}" if suffix else ""
    if low_s is not None and high_s is not None:
        (low, low_unit), (high, high_unit) = _span(low_s), _span(high_s)
        if low_unit == high_unit:
            return f"{low}-{high} {high_unit}{tail}"
        return f"{low} {low_unit}-{high} {high_unit}{tail}"
    if low_s is not None:
        number, unit = _span(low_s)
        return f"{words.after} {number} {unit}{tail}"
    assert high_s is not None
    number, unit = _span(high_s)
    return f"{words.first} {number} {unit}{tail}"


def _every_day(days: frozenset[int] | None) -> bool:
    return days is None or days >= _ALL_WEEKDAYS


_ALL_WEEKDAYS: Final = frozenset(range(1, 8))


def _always(conditions: Conditions) -> bool:
    return replace(conditions, days_of_week=None) == Conditions() and _every_day(conditions.days_of_week)


def _conditions(conditions: Conditions, kind: ComponentKind, words: _Words) -> list[str]:
    """The conditions of a price element, compact, in the order a reader looks for them."""
    c = conditions
    parts: list[str] = []
    if c.days_of_week is not None and not _every_day(c.days_of_week):
        parts.append(_weekdays(c.days_of_week, words))
    if c.start_time_of_day is not None or c.end_time_of_day is not None:
        start = _clock(c.start_time_of_day) if c.start_time_of_day is not None else "00:00"
        end = _clock(c.end_time_of_day) if c.end_time_of_day is not None else "24:00"
        parts.append(f"{start}-{end}")
    if c.valid_from_date is not None:
        parts.append(f"{words.valid_from} {c.valid_from_date:{words.date_format}}")
    if c.valid_to_date is not None:
        last_day: date = c.valid_to_date - timedelta(days=1)  # the condition's end is exclusive
        parts.append(f"{words.valid_until} {last_day:{words.date_format}}")
    if c.min_energy_Wh is not None or c.max_energy_Wh is not None:
        low = _kWh(c.min_energy_Wh, words) if c.min_energy_Wh is not None else None
        high = _kWh(c.max_energy_Wh, words) if c.max_energy_Wh is not None else None
        parts.append(_range(low, high, "kWh", words))
    if c.min_power_W is not None or c.max_power_W is not None:
        low = _kW(c.min_power_W, words) if c.min_power_W is not None else None
        high = _kW(c.max_power_W, words) if c.max_power_W is not None else None
        parts.append(_range(low, high, "kW", words))
    charging = "" if kind is ComponentKind.charging_time else words.charging
    idle = "" if kind is ComponentKind.idle_time else words.idle
    for low_s, high_s, suffix in (
        (c.min_duration_s, c.max_duration_s, ""),
        (c.min_charging_time_s, c.max_charging_time_s, charging),
        (c.min_idle_time_s, c.max_idle_time_s, idle),
    ):
        text = _time_range(low_s, high_s, suffix, words)
        if text is not None:
            parts.append(text)
    return parts


def _shown_elements(prices: tuple[PriceElement, ...]) -> list[PriceElement]:
    """The elements that can ever apply, the unconditional fallback first, then the others in their order.

    First match wins, so elements after an unconditional one never apply; an element on no weekday neither.
    """
    reachable: list[PriceElement] = []
    fallback: PriceElement | None = None
    for element in prices:
        if _always(element.conditions):
            fallback = element
            break
        if element.conditions.days_of_week is not None and not element.conditions.days_of_week:
            continue
        reachable.append(element)
    return ([fallback] if fallback is not None else []) + reachable


_UNITS: Final = {
    ComponentKind.energy: "/kWh",
    ComponentKind.charging_time: "/h",
    ComponentKind.idle_time: "/h",
    ComponentKind.fixed_fee: "",
}


def _component_lines(
    tariff: Tariff, kind: ComponentKind, component: Component, money: MoneyFormat, words: _Words
) -> list[str]:
    label: str = getattr(words, kind.value)
    taxes = tariff.taxes_of(kind)
    lines = []
    for element in _shown_elements(component.prices):
        price = gross(element.price, taxes)
        shown = _amount(price, money, words) if kind is ComponentKind.fixed_fee else _unit_price(price, money, words)
        parts = [label, *_conditions(element.conditions, kind, words), f"{shown} {tariff.currency}{_UNITS[kind]}"]
        if kind is ComponentKind.idle_time and tariff.idle_grace_s > 0:
            number, unit = _span(tariff.idle_grace_s)
            parts.append(f"{words.after} {number} {unit}")
        lines.append(" ".join(parts))
    return lines


def _description(tariff: Tariff, language: str) -> str | None:
    for tag, text in tariff.description:
        if _primary_subtag(tag) == language:
            return text
    return None


def _tax_line(taxes: list[TaxRate], words: _Words) -> str:
    if not taxes:
        return words.no_tax
    listed = ", ".join(f"{tax.name} {_percent(tax.percent, words)}" for tax in taxes)
    return f"{words.prices_incl} {listed}"


def price_lines(tariff: Tariff, money: MoneyFormat, language: str) -> tuple[str, ...]:
    """The tariff before a session, prices including tax, one line per price that can apply.

    The tariff's description in ``language`` comes first when it has one. Within a component the price that
    applies when no condition holds comes first, then the conditional ones ("Energy 22:00-06:00 0.29 EUR/kWh").
    The last line names the taxes included ("Prices incl. VAT 19 %", or "No tax").
    """
    language = pick_language(language, "en")
    words = _WORDS[language]
    lines: list[str] = []
    description = _description(tariff, language)
    if description is not None:
        lines.extend(text_lines(description))
    taxes: list[TaxRate] = []

    def include_taxes(rates: tuple[TaxRate, ...]) -> None:
        for rate in rates:
            if all((t.name, t.percent) != (rate.name, rate.percent) for t in taxes):
                taxes.append(rate)

    priced = False
    for kind in ComponentKind:
        component = tariff.component(kind)
        if component is None:
            continue
        component_lines = _component_lines(tariff, kind, component, money, words)
        if component_lines:
            priced = True
            lines.extend(component_lines)
            if kind is ComponentKind.idle_time:
                lines.append(words.idle_before_energy if tariff.idle_before_energy else words.idle_after_energy)
            include_taxes(tariff.taxes_of(kind))
    for label, limit in ((words.min_cost, tariff.min_cost), (words.max_cost, tariff.max_cost)):
        if limit is not None:
            priced = True
            lines.append(f"{label} {_amount(gross(limit, tariff.tax_rates), money, words)} {tariff.currency}")
            include_taxes(tariff.tax_rates)
    if not priced:
        lines.append(words.free)
        return tuple(lines)
    lines.append(_tax_line(taxes, words))
    return tuple(lines)


# ----------------------------------------------------------------------------- during and after a session

# CostLine.kind values that have a label of their own (a kind added later is shown by its name).
_COST_KINDS: Final = frozenset({"energy", "charging_time", "idle_time", "fixed_fee", "min_cost", "max_cost"})


def running_lines(
    b: CostBreakdown, money: MoneyFormat, language: str, *, csms_cost: Decimal | None = None,
    csms_text: str | None = None,
) -> tuple[str, ...]:
    """While charging: energy and elapsed time, then the cost so far including tax.

    ``("12.35 kWh  1:05 h", "Cost 4.57 EUR")``. With the operator's running cost (California Pricing
    RunningCost) that figure is shown instead of the charger's, followed by the operator's price text.
    """
    words = _words(language)
    cost = b.total_incl_tax if csms_cost is None else csms_cost
    lines = (
        f"{_kWh(b.energy_Wh, words, decimals=2)} kWh  {_elapsed(b.duration_s)}",
        f"{words.cost} {_amount(cost, money, words)} {b.currency}",
    )
    return lines if csms_text is None else lines + text_lines(csms_text)


def receipt_lines(
    b: CostBreakdown, money: MoneyFormat, language: str, *, csms_cost: Decimal | None = None
) -> tuple[str, ...]:
    """After a session: energy, duration, each cost line including tax, the tax in it and how it was computed
    (per line or on the total), the total.

    With ``csms_cost`` (the operator's final figure) a last line "Total (operator) X EUR" follows: the
    amount due is always the last line, and the operator's figure wins over the charger's.
    """
    words = _words(language)
    currency = b.currency
    lines = [
        f"{words.energy} {_kWh(b.energy_Wh, words, decimals=2)} kWh",
        f"{words.duration} {_elapsed(b.duration_s)}",
    ]
    tax_names: list[str] = []
    for line in b.lines:
        label: str = getattr(words, line.kind) if line.kind in _COST_KINDS else line.kind
        lines.append(f"{label} {_amount(line.incl_tax, money, words)} {currency}")
        for name, _ in line.taxes:
            if name not in tax_names:
                tax_names.append(name)
    if tax_names or b.total_tax != 0:
        names = " + ".join(tax_names) or words.tax_generic
        lines.append(f"{words.tax_incl} {names} {_amount(b.total_tax, money, words)} {currency}")
        lines.append(words.tax_on_total if b.tax_method == "on_total" else words.tax_per_line)
    else:
        lines.append(words.no_tax)
    lines.append(f"{words.total} {_amount(b.total_incl_tax, money, words)} {currency}")
    if csms_cost is not None:
        lines.append(f"{words.total_operator} {_amount(csms_cost, money, words)} {currency}")
    return tuple(lines)


__all__ = [
    "SUPPORTED_LANGUAGES",
    "gross",
    "pick_language",
    "price_lines",
    "receipt_lines",
    "running_lines",
    "text_lines",
]


# Short messages for the display, by key; the limit keys are the stop reasons of chargepoint.pricing.limits.
_MESSAGES: dict[str, dict[str, str]] = {
    "en": {
        "card_rejected": "Card not accepted",
        "scan_to_pay": "Scan the code to pay",
        "prepaid_empty": "Prepaid balance used up",
        "prepaid_too_low": "Balance too low for the session fee",
        "card_accepted": "Card accepted",
        "CostLimitReached": "Budget reached, charging stopped",
        "EnergyLimitReached": "Energy limit reached, charging stopped",
        "TimeLimitReached": "Time limit reached, charging stopped",
    },
    "de": {
        "card_rejected": "Karte nicht akzeptiert",
        "scan_to_pay": "Zum Bezahlen Code scannen",
        "prepaid_empty": "Guthaben aufgebraucht",
        "prepaid_too_low": "Guthaben reicht nicht für die Grundgebühr",
        "card_accepted": "Karte akzeptiert",
        "CostLimitReached": "Budget erreicht, Laden beendet",
        "EnergyLimitReached": "Energiegrenze erreicht, Laden beendet",
        "TimeLimitReached": "Zeitgrenze erreicht, Laden beendet",
    },
    "fr": {
        "card_rejected": "Carte refusée",
        "scan_to_pay": "Scannez le code pour payer",
        "prepaid_empty": "Crédit prépayé épuisé",
        "prepaid_too_low": "Crédit insuffisant pour les frais de session",
        "card_accepted": "Carte acceptée",
        "CostLimitReached": "Budget atteint, charge arrêtée",
        "EnergyLimitReached": "Limite d'énergie atteinte, charge arrêtée",
        "TimeLimitReached": "Durée maximale atteinte, charge arrêtée",
    },
    "nl": {
        "card_rejected": "Kaart niet geaccepteerd",
        "scan_to_pay": "Scan de code om te betalen",
        "prepaid_empty": "Tegoed opgebruikt",
        "prepaid_too_low": "Tegoed te laag voor het starttarief",
        "card_accepted": "Kaart geaccepteerd",
        "CostLimitReached": "Budget bereikt, laden gestopt",
        "EnergyLimitReached": "Energielimiet bereikt, laden gestopt",
        "TimeLimitReached": "Tijdslimiet bereikt, laden gestopt",
    },
}


def message_text(key: str, language: str) -> str:
    """A short display message (``card_rejected``, ``card_accepted``, ``prepaid_empty``, ``prepaid_too_low`` or a
    limit stop reason) in ``language``;
    an unknown key is shown as it is."""
    return _MESSAGES[pick_language(language, "en")].get(key, key)
