"""Tariffs to and from JSON-able dicts, exactly: what is stored with each session is what priced it.

Decimals are strings (``"0.30"`` stays ``"0.30"``), times of day ``"HH:MM"`` (``"HH:MM:SS[.ffffff]"`` when they
have seconds), dates ISO 8601, days of week a sorted list of ISO numbers (1 = Monday). Unset optional fields are
left out. :func:`tariff_from_json` checks the structure only (unknown keys, types) and raises
:class:`TariffError` with the path of the bad field; whether the tariff makes sense is
:func:`chargepoint.pricing.validation.validate_tariff`'s business.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Mapping
from datetime import date, time
from decimal import Decimal
from typing import Any, TypeVar

from chargepoint.pricing.tariff import (
    Component,
    ComponentKind,
    Conditions,
    PriceElement,
    Tariff,
    TariffError,
    TaxMethod,
    TaxRate,
)

_T = TypeVar("_T")

_INT_CONDITIONS = (
    "min_energy_Wh", "max_energy_Wh", "min_duration_s", "max_duration_s", "min_charging_time_s",
    "max_charging_time_s", "min_idle_time_s", "max_idle_time_s",
)
_FLOAT_CONDITIONS = ("min_power_W", "max_power_W")
_CONDITION_KEYS = frozenset(
    ("start_time_of_day", "end_time_of_day", "days_of_week", "valid_from_date", "valid_to_date",
     *_INT_CONDITIONS, *_FLOAT_CONDITIONS)
)
_NAMES: dict[type, str] = {str: "a string", int: "an integer", list: "a list", bool: "true or false"}
_TARIFF_KEYS = frozenset(
    ("tariff_id", "currency", *(k.value for k in ComponentKind), "idle_grace_s", "min_cost", "max_cost",
     "tax_rates", "description", "charge_without_energy", "idle_before_energy", "tax_method")
)


# ------------------------------------------------------------------------------------------------ to JSON


def tariff_to_json(t: Tariff) -> dict[str, Any]:
    data: dict[str, Any] = {"tariff_id": t.tariff_id, "currency": t.currency}
    for kind in ComponentKind:
        component = t.component(kind)
        if component is not None:
            data[kind.value] = _component_to_json(component)
    data["idle_grace_s"] = t.idle_grace_s
    if t.min_cost is not None:
        data["min_cost"] = str(t.min_cost)
    if t.max_cost is not None:
        data["max_cost"] = str(t.max_cost)
    data["tax_rates"] = [_tax_to_json(r) for r in t.tax_rates]
    data["description"] = [{"language": language, "text": text} for language, text in t.description]
    data["charge_without_energy"] = t.charge_without_energy
    data["idle_before_energy"] = t.idle_before_energy
    data["tax_method"] = str(t.tax_method)
    return data


def _tax_to_json(rate: TaxRate) -> dict[str, Any]:
    return {"name": rate.name, "percent": str(rate.percent), "stack": rate.stack}


def _component_to_json(component: Component) -> dict[str, Any]:
    prices = []
    for element in component.prices:
        item: dict[str, Any] = {"price": str(element.price)}
        conditions = _conditions_to_json(element.conditions)
        if conditions:
            item["conditions"] = conditions
        prices.append(item)
    data: dict[str, Any] = {"prices": prices}
    if component.tax_rates is not None:
        data["tax_rates"] = [_tax_to_json(r) for r in component.tax_rates]
    return data


def _time_text(t: time) -> str:
    return t.isoformat(timespec="minutes") if t.second == 0 and t.microsecond == 0 else t.isoformat()


def _conditions_to_json(c: Conditions) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if c.start_time_of_day is not None:
        data["start_time_of_day"] = _time_text(c.start_time_of_day)
    if c.end_time_of_day is not None:
        data["end_time_of_day"] = _time_text(c.end_time_of_day)
    if c.days_of_week is not None:
        data["days_of_week"] = sorted(c.days_of_week)
    if c.valid_from_date is not None:
        data["valid_from_date"] = c.valid_from_date.isoformat()
    if c.valid_to_date is not None:
        data["valid_to_date"] = c.valid_to_date.isoformat()
    for name in (*_INT_CONDITIONS, *_FLOAT_CONDITIONS):
        value = getattr(c, name)
        if value is not None:
            data[name] = value
    return data


# ---------------------------------------------------------------------------------------------- from JSON


def tariff_from_json(d: Mapping[str, Any]) -> Tariff:
    """The tariff :func:`tariff_to_json` made; :class:`TariffError` naming the path of a malformed field."""
    root = _object(d, "tariff", _TARIFF_KEYS)
    components: dict[str, Component | None] = {}
    for kind in ComponentKind:
        value = root.get(kind.value)
        components[kind.value] = None if value is None else _component(value, kind.value)
    description = []
    for i, item in enumerate(_optional(root, "description", list, "tariff") or []):
        place = f"description[{i}]"
        obj = _object(item, place, frozenset(("language", "text")))
        description.append((_required(obj, "language", str, place), _required(obj, "text", str, place)))
    return Tariff(
        tariff_id=_required(root, "tariff_id", str, "tariff"),
        currency=_required(root, "currency", str, "tariff"),
        energy=components["energy"],
        charging_time=components["charging_time"],
        idle_time=components["idle_time"],
        fixed_fee=components["fixed_fee"],
        idle_grace_s=_optional(root, "idle_grace_s", int, "tariff") or 0,
        min_cost=_optional_decimal(root, "min_cost", "min_cost"),
        max_cost=_optional_decimal(root, "max_cost", "max_cost"),
        tax_rates=_taxes(root.get("tax_rates") or [], "tax_rates"),
        description=tuple(description),
        # Left out of snapshots taken before these settings existed: their defaults apply.
        charge_without_energy=_optional(root, "charge_without_energy", bool, "tariff") or False,
        idle_before_energy=_flag(root, "idle_before_energy", True),
        tax_method=_tax_method(root.get("tax_method")),
    )


def _flag(obj: Mapping[str, Any], key: str, default: bool) -> bool:
    value = _optional(obj, key, bool, "tariff")
    return default if value is None else value


def _tax_method(value: Any) -> TaxMethod:
    if value is None:
        return TaxMethod.per_line
    try:
        return TaxMethod(_check(value, str, "tax_method"))
    except ValueError:
        raise TariffError(f"tax_method: expected one of {', '.join(TaxMethod)}, got {value!r}") from None


def _where(prefix: str, key: str) -> str:
    return key if prefix == "tariff" else f"{prefix}.{key}"


def _object(value: Any, where: str, keys: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TariffError(f"{where}: expected an object, got {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in keys)
    if unknown:
        raise TariffError(f"{where}: unknown key {unknown[0]!r}")
    return value


def _check(value: Any, kind: type[_T], where: str) -> _T:
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise TariffError(f"{where}: expected {_NAMES.get(kind, kind.__name__)}, got {type(value).__name__}")
    return value


def _required(obj: Mapping[str, Any], key: str, kind: type[_T], prefix: str) -> _T:
    where = _where(prefix, key)
    if key not in obj or obj[key] is None:
        raise TariffError(f"{where}: missing")
    return _check(obj[key], kind, where)


def _optional(obj: Mapping[str, Any], key: str, kind: type[_T], prefix: str) -> _T | None:
    value = obj.get(key)
    return None if value is None else _check(value, kind, _where(prefix, key))


def _decimal(value: Any, where: str) -> Decimal:
    if value is None:
        raise TariffError(f"{where}: missing")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TariffError(f"{where}: expected a decimal string such as \"0.30\", got {type(value).__name__}")
    try:
        amount = Decimal(value)
    except decimal.InvalidOperation:
        raise TariffError(f"{where}: not a decimal number: {value!r}") from None
    if not amount.is_finite():
        raise TariffError(f"{where}: not a finite number: {value!r}")
    return amount


def _optional_decimal(obj: Mapping[str, Any], key: str, where: str) -> Decimal | None:
    value = obj.get(key)
    return None if value is None else _decimal(value, where)


def _taxes(value: Any, where: str) -> tuple[TaxRate, ...]:
    rates = []
    for i, item in enumerate(_check(value, list, where)):
        place = f"{where}[{i}]"
        obj = _object(item, place, frozenset(("name", "percent", "stack")))
        rates.append(TaxRate(
            name=_required(obj, "name", str, place),
            percent=_decimal(obj.get("percent"), f"{place}.percent"),
            stack=_optional(obj, "stack", int, place) or 0,
        ))
    return tuple(rates)


def _component(value: Any, where: str) -> Component:
    obj = _object(value, where, frozenset(("prices", "tax_rates")))
    prices = []
    for i, item in enumerate(_required(obj, "prices", list, where)):
        place = f"{where}.prices[{i}]"
        element = _object(item, place, frozenset(("price", "conditions")))
        conditions = element.get("conditions")
        prices.append(PriceElement(
            price=_decimal(element.get("price"), f"{place}.price"),
            conditions=Conditions() if conditions is None else _conditions(conditions, f"{place}.conditions"),
        ))
    tax_rates = obj.get("tax_rates")
    return Component(tuple(prices), None if tax_rates is None else _taxes(tax_rates, f"{where}.tax_rates"))


def _parsed(value: Any, where: str, parse: Callable[[str], _T], what: str) -> _T:
    text = _check(value, str, where)
    try:
        return parse(text)
    except ValueError:
        raise TariffError(f"{where}: not {what}: {text!r}") from None


def _time(value: Any, where: str) -> time:
    parsed = _parsed(value, where, time.fromisoformat, "a time of day \"HH:MM\"")
    if parsed.tzinfo is not None:
        raise TariffError(f"{where}: a local time of day has no offset: {value!r}")
    return parsed


def _conditions(value: Any, where: str) -> Conditions:
    obj = _object(value, where, _CONDITION_KEYS)
    fields: dict[str, Any] = {}
    for key in ("start_time_of_day", "end_time_of_day"):
        if obj.get(key) is not None:
            fields[key] = _time(obj[key], f"{where}.{key}")
    for key in ("valid_from_date", "valid_to_date"):
        if obj.get(key) is not None:
            fields[key] = _parsed(obj[key], f"{where}.{key}", date.fromisoformat, "an ISO date \"YYYY-MM-DD\"")
    days = obj.get("days_of_week")
    if days is not None:
        place = f"{where}.days_of_week"
        fields["days_of_week"] = frozenset(
            _check(day, int, f"{place}[{i}]") for i, day in enumerate(_check(days, list, place))
        )
    for key in _INT_CONDITIONS:
        if obj.get(key) is not None:
            fields[key] = _check(obj[key], int, f"{where}.{key}")
    for key in _FLOAT_CONDITIONS:
        number = obj.get(key)
        if number is not None:
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise TariffError(f"{where}.{key}: expected a number, got {type(number).__name__}")
            fields[key] = float(number)
    return Conditions(**fields)
