"""OCPP 1.6 "California Pricing" (OCA application note, DataTransfer vendorId ``org.openchargealliance.costmsg``).

Pure: strict parsers for the JSON that the CSMS carries as a *string* in ``DataTransfer.data`` (SetUserPrice,
RunningCost, FinalCost) and in configuration values (``DefaultPrice``, ``DefaultPriceText,<lang>``), plus our
own vendor message ``chargepoint``/``SetTransactionLimit`` (mirrors OCPP 2.1 ``transactionLimit``).

Rules shared by every parser:
- numbers are read from the JSON text as ``Decimal`` (no binary float on the way), money and prices must be
  >= 0; a JSON string holding a number ("0.30") is a wrong type, except ``transactionId`` (int or numeric
  string, as the note allows);
- timestamps are ISO 8601 and must carry a zone (1.6 has no other time-zone information);
- required fields must be present; an optional field that is ``null`` counts as absent; unknown fields are
  ignored so that newer CSMS payloads still parse;
- every error is a ``CaliforniaPricingError`` whose message starts with the path of the offending field,
  e.g. ``RunningCost.chargingPrice.kWhPrice: expected a number >= 0, got "abc"``.

Size: one strict parser per message of one application note, all built on the same field readers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, TypeVar

from chargepoint.pricing.tariff import Component, PriceElement, Tariff, TariffError

VENDOR_ID: Final = "org.openchargealliance.costmsg"
VENDOR_LIMITS: Final = "chargepoint"  # our own DataTransfer vendorId for SetTransactionLimit

MESSAGE_SET_USER_PRICE: Final = "SetUserPrice"
MESSAGE_RUNNING_COST: Final = "RunningCost"
MESSAGE_FINAL_COST: Final = "FinalCost"
MESSAGE_CONNECTOR_UNPLUGGED: Final = "ConnectorUnplugged"  # CS -> CSMS
MESSAGE_SET_TRANSACTION_LIMIT: Final = "SetTransactionLimit"

# OCPP 1.6 ChargePointStatus: the values triggerMeterValue.atCPStatus may name.
CHARGE_POINT_STATUSES: Final = frozenset(
    {"Available", "Preparing", "Charging", "SuspendedEVSE", "SuspendedEV", "Finishing", "Reserved", "Unavailable",
     "Faulted"}
)
RUNNING_COST_STATES: Final = frozenset({"Charging", "Idle"})
# OCPP 2.x MessageFormatEnumType (2.1 adds QRCODE): the formats of a priceTextExtra entry.
MESSAGE_FORMATS: Final = frozenset({"ASCII", "HTML", "URI", "UTF8", "QRCODE"})

# Sanity bounds for numbers: a CSMS cannot make us compute with 1E+999999 or 1E-999999.
_MAX_NUMBER: Final = Decimal(10) ** 9
_MAX_DECIMALS: Final = 12
_MAX_OFFSET: Final = timedelta(hours=14)
_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2})")
_INTEGER_TEXT = re.compile(r"-?\d{1,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")


class CaliforniaPricingError(TariffError):
    """A California Pricing payload or configuration value is malformed; the message names the field."""


# ------------------------------------------------------------------------------------------------ model


@dataclass(frozen=True, slots=True)
class PriceText:
    """One entry of ``priceTextExtra``: a text in another language (wire name of ``text`` is ``content``)."""

    language: str  # RFC 5646
    text: str
    format: str = "UTF8"


@dataclass(frozen=True, slots=True)
class ChargingPrice:
    """``chargingPrice``: final prices (tax included, as California requires), each optional."""

    kwh_price: Decimal | None = None  # per kWh
    hour_price: Decimal | None = None  # per hour of charging time
    flat_fee: Decimal | None = None  # once per session


@dataclass(frozen=True, slots=True)
class IdlePrice:
    """``idlePrice``: the idle fee per hour after ``grace_minutes`` of idle time."""

    grace_minutes: int | None = None
    hour_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class NextPeriod:
    """``nextPeriod``: the prices that apply from ``at_time`` on."""

    at_time: datetime
    charging_price: ChargingPrice | None = None
    idle_price: IdlePrice | None = None


@dataclass(frozen=True, slots=True)
class TriggerMeterValue:
    """``triggerMeterValue``: send an extra MeterValues at a time, an energy, a power or on a status change."""

    at_time: datetime | None = None
    at_energy_kWh: Decimal | None = None
    at_power_kW: Decimal | None = None
    at_cp_status: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UserPrice:
    """SetUserPrice: the price text for the driver identified by ``id_token``."""

    id_token: str
    price_text: str | None = None
    extra: tuple[PriceText, ...] = ()


@dataclass(frozen=True, slots=True)
class RunningCost:
    """RunningCost: the cost so far of a transaction, with the prices in force."""

    transaction_id: int
    timestamp: datetime | None
    meter_value_Wh: int | None
    cost: Decimal
    state: str | None  # Charging | Idle
    charging_price: ChargingPrice | None = None
    idle_price: IdlePrice | None = None
    next_period: NextPeriod | None = None
    trigger_meter_value: TriggerMeterValue | None = None
    price_text: str | None = None
    extra: tuple[PriceText, ...] = ()
    qr_code_text: str | None = None


@dataclass(frozen=True, slots=True)
class FinalCost:
    """FinalCost: the final cost of a stopped transaction."""

    transaction_id: int
    cost: Decimal
    price_text: str | None = None
    extra: tuple[PriceText, ...] = ()
    qr_code_text: str | None = None


@dataclass(frozen=True, slots=True)
class DefaultPrice:
    """Configuration key ``DefaultPrice``; ``charging_price`` prices sessions started offline."""

    price_text: str
    price_text_offline: str | None = None
    charging_price: ChargingPrice | None = None


@dataclass(frozen=True, slots=True)
class DefaultPriceText:
    """Configuration key ``DefaultPriceText,<lang>``: the default price texts in one language."""

    price_text: str
    price_text_offline: str | None = None


@dataclass(frozen=True, slots=True)
class TransactionLimit:
    """Our ``SetTransactionLimit``: stop the transaction at a cost, an energy or a duration (OCPP 2.1 style)."""

    transaction_id: int
    max_cost: Decimal | None = None
    max_energy_Wh: int | None = None
    max_time_s: int | None = None


# ---------------------------------------------------------------------------------------------- parsers


def parse_user_price(data: str) -> UserPrice:
    """``SetUserPrice`` data: ``idToken`` (required) and ``priceText`` and/or ``priceTextExtra``."""
    root = "SetUserPrice"
    obj = _load(data, root)
    id_token = _required(obj, "idToken", root, _non_empty_text)
    price_text = _optional(obj, "priceText", root, _text)
    extra = _optional(obj, "priceTextExtra", root, _price_texts) or ()
    if price_text is None and not extra:
        raise CaliforniaPricingError(f"{root}: needs priceText or priceTextExtra")
    return UserPrice(id_token, price_text, extra)


def parse_running_cost(data: str) -> RunningCost:
    """``RunningCost`` data: ``transactionId`` and ``cost`` are required, the rest is optional."""
    root = "RunningCost"
    obj = _load(data, root)
    state = _optional(obj, "state", root, _text)
    if state is not None and state not in RUNNING_COST_STATES:
        raise CaliforniaPricingError(f"{root}.state: expected Charging or Idle, got {_show(state)}")
    return RunningCost(
        transaction_id=_required(obj, "transactionId", root, _transaction_id),
        timestamp=_optional(obj, "timestamp", root, _timestamp),
        meter_value_Wh=_optional(obj, "meterValue", root, _non_negative_int),
        cost=_required(obj, "cost", root, _amount),
        state=state,
        charging_price=_optional(obj, "chargingPrice", root, _charging_price),
        idle_price=_optional(obj, "idlePrice", root, _idle_price),
        next_period=_optional(obj, "nextPeriod", root, _next_period),
        trigger_meter_value=_optional(obj, "triggerMeterValue", root, _trigger_meter_value),
        price_text=_optional(obj, "priceText", root, _text),
        extra=_optional(obj, "priceTextExtra", root, _price_texts) or (),
        qr_code_text=_optional(obj, "qrCodeText", root, _text),
    )


def parse_final_cost(data: str) -> FinalCost:
    """``FinalCost`` data: ``transactionId`` and ``cost`` are required."""
    root = "FinalCost"
    obj = _load(data, root)
    return FinalCost(
        transaction_id=_required(obj, "transactionId", root, _transaction_id),
        cost=_required(obj, "cost", root, _amount),
        price_text=_optional(obj, "priceText", root, _text),
        extra=_optional(obj, "priceTextExtra", root, _price_texts) or (),
        qr_code_text=_optional(obj, "qrCodeText", root, _text),
    )


def parse_default_price(data: str) -> DefaultPrice:
    """Value of ``DefaultPrice``: ``priceText`` (required), ``priceTextOffline``, ``chargingPrice``.

    A ``chargingPrice`` given here must hold at least one price: it is what offline sessions are billed at.
    """
    root = "DefaultPrice"
    obj = _load(data, root)
    charging_price = _optional(obj, "chargingPrice", root, _charging_price)
    if charging_price is not None and charging_price == ChargingPrice():
        raise CaliforniaPricingError(f"{root}.chargingPrice: needs at least one of kWhPrice, hourPrice, flatFee")
    return DefaultPrice(
        price_text=_required(obj, "priceText", root, _text),
        price_text_offline=_optional(obj, "priceTextOffline", root, _text),
        charging_price=charging_price,
    )


def parse_default_price_text(data: str) -> DefaultPriceText:
    """Value of ``DefaultPriceText,<lang>``: ``{"priceText": ..., "priceTextOffline": ...}``."""
    root = "DefaultPriceText"
    obj = _load(data, root)
    return DefaultPriceText(
        price_text=_required(obj, "priceText", root, _text),
        price_text_offline=_optional(obj, "priceTextOffline", root, _text),
    )


def parse_transaction_limit(data: str) -> TransactionLimit:
    """``SetTransactionLimit`` data: ``transactionId`` and at least one of ``maxCost``, ``maxEnergy`` (Wh),
    ``maxTime`` (s)."""
    root = "SetTransactionLimit"
    obj = _load(data, root)
    limit = TransactionLimit(
        transaction_id=_required(obj, "transactionId", root, _transaction_id),
        max_cost=_optional(obj, "maxCost", root, _amount),
        max_energy_Wh=_optional(obj, "maxEnergy", root, _non_negative_int),
        max_time_s=_optional(obj, "maxTime", root, _non_negative_int),
    )
    if limit.max_cost is None and limit.max_energy_Wh is None and limit.max_time_s is None:
        raise CaliforniaPricingError(f"{root}: needs at least one of maxCost, maxEnergy, maxTime")
    return limit


def parse_time_offset(text: str) -> timedelta:
    """``TimeOffset`` / ``TimeOffsetNextTransition``: ``±HH:MM`` (sign required), at most 14 hours."""
    match = _OFFSET.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise CaliforniaPricingError(f"time offset: expected +HH:MM or -HH:MM, got {_show(text)}")
    sign, hours, minutes = match.groups()
    if int(minutes) > 59:
        raise CaliforniaPricingError(f"time offset: minutes must be 00..59, got {text!r}")
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > _MAX_OFFSET:
        raise CaliforniaPricingError(f"time offset: at most 14:00 from UTC, got {text!r}")
    return -offset if sign == "-" else offset


def parse_datetime(text: str, where: str = "datetime") -> datetime:
    """An ISO 8601 date and time with a zone (``Z`` or ``±HH:MM``); ``where`` prefixes the error."""
    return _timestamp(text, where)


# -------------------------------------------------------------------------------------------- mapping


def default_price_tariff(price: ChargingPrice, currency: str, tariff_id: str = "csms-default") -> Tariff:
    """The tariff for sessions priced by ``DefaultPrice.chargingPrice`` (offline sessions).

    kWhPrice -> energy (per kWh), hourPrice -> charging time (per hour), flatFee -> fixed fee. California
    prices are final prices, so the tariff has no taxes.
    """
    if price.kwh_price is None and price.hour_price is None and price.flat_fee is None:
        raise CaliforniaPricingError("chargingPrice: needs at least one of kWhPrice, hourPrice, flatFee")
    if not _CURRENCY.fullmatch(currency):
        raise CaliforniaPricingError(f"currency: expected an ISO 4217 code such as USD, got {currency!r}")

    def component(amount: Decimal | None) -> Component | None:
        return None if amount is None else Component((PriceElement(amount),))

    return Tariff(
        tariff_id=tariff_id,
        currency=currency,
        energy=component(price.kwh_price),
        charging_time=component(price.hour_price),
        fixed_fee=component(price.flat_fee),
    )


# ------------------------------------------------------------------------------------------- internals

_T = TypeVar("_T")
_Reader = Callable[[Any, str], _T]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _load(data: str, root: str) -> dict[str, Any]:
    if not isinstance(data, str):
        raise CaliforniaPricingError(f"{root}: expected a JSON text, got {type(data).__name__}")
    try:
        value = json.loads(data, parse_float=Decimal, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CaliforniaPricingError(f"{root}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CaliforniaPricingError(f"{root}: expected a JSON object, got {_show(value)}")
    return value


def _required(obj: dict[str, Any], name: str, parent: str, read: _Reader[_T]) -> _T:
    path = f"{parent}.{name}"
    if obj.get(name) is None:
        raise CaliforniaPricingError(f"{path}: required")
    return read(obj[name], path)


def _optional(obj: dict[str, Any], name: str, parent: str, read: _Reader[_T]) -> _T | None:
    value = obj.get(name)
    return None if value is None else read(value, f"{parent}.{name}")


def _show(value: Any) -> str:
    """The offending value as it looked on the wire, shortened."""
    if isinstance(value, Decimal):
        text = str(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CaliforniaPricingError(f"{path}: expected an object, got {_show(value)}")
    return value


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise CaliforniaPricingError(f"{path}: expected a string, got {_show(value)}")
    return value


def _non_empty_text(value: Any, path: str) -> str:
    text = _text(value, path)
    if not text.strip():
        raise CaliforniaPricingError(f"{path}: must not be empty")
    return text


def _number(value: Any, path: str) -> Decimal:
    """A JSON number >= 0, exactly as written."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise CaliforniaPricingError(f"{path}: expected a number >= 0, got {_show(value)}")
    number = Decimal(value)
    if number < 0:
        raise CaliforniaPricingError(f"{path}: expected a number >= 0, got {_show(value)}")
    if number >= _MAX_NUMBER:
        raise CaliforniaPricingError(f"{path}: expected a number below 1000000000, got {_show(value)}")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -_MAX_DECIMALS:
        raise CaliforniaPricingError(f"{path}: at most {_MAX_DECIMALS} decimals, got {_show(value)}")
    return number.copy_abs()  # -0 and -0.00 become 0 and 0.00


_amount = _number  # money and prices: same rule


def _non_negative_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CaliforniaPricingError(f"{path}: expected an integer >= 0, got {_show(value)}")
    return value


def _transaction_id(value: Any, path: str) -> int:
    """The note allows the transaction id as a number or as a string holding one."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        return int(value.strip())
    raise CaliforniaPricingError(f"{path}: expected an integer or a numeric string, got {_show(value)}")


def _timestamp(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise CaliforniaPricingError(f"{path}: expected an ISO 8601 date and time, got {_show(value)}")
    try:
        at = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CaliforniaPricingError(f"{path}: expected an ISO 8601 date and time, got {_show(value)}") from None
    if at.tzinfo is None or at.utcoffset() is None:
        raise CaliforniaPricingError(f"{path}: needs a time zone (Z or +HH:MM), got {_show(value)}")
    return at


def _price_texts(value: Any, path: str) -> tuple[PriceText, ...]:
    if not isinstance(value, list):
        raise CaliforniaPricingError(f"{path}: expected an array, got {_show(value)}")
    texts: list[PriceText] = []
    for index, item in enumerate(value):
        where = f"{path}[{index}]"
        entry = _object(item, where)
        text_format = _optional(entry, "format", where, _text) or "UTF8"
        if text_format not in MESSAGE_FORMATS:
            known = ", ".join(sorted(MESSAGE_FORMATS))
            raise CaliforniaPricingError(f"{where}.format: expected one of {known}, got {_show(text_format)}")
        texts.append(
            PriceText(
                language=_required(entry, "language", where, _non_empty_text),
                text=_required(entry, "content", where, _text),
                format=text_format,
            )
        )
    return tuple(texts)


def _charging_price(value: Any, path: str) -> ChargingPrice:
    obj = _object(value, path)
    return ChargingPrice(
        kwh_price=_optional(obj, "kWhPrice", path, _amount),
        hour_price=_optional(obj, "hourPrice", path, _amount),
        flat_fee=_optional(obj, "flatFee", path, _amount),
    )


def _idle_price(value: Any, path: str) -> IdlePrice:
    obj = _object(value, path)
    return IdlePrice(
        grace_minutes=_optional(obj, "graceMinutes", path, _non_negative_int),
        hour_price=_optional(obj, "hourPrice", path, _amount),
    )


def _next_period(value: Any, path: str) -> NextPeriod:
    obj = _object(value, path)
    return NextPeriod(
        at_time=_required(obj, "atTime", path, _timestamp),
        charging_price=_optional(obj, "chargingPrice", path, _charging_price),
        idle_price=_optional(obj, "idlePrice", path, _idle_price),
    )


def _cp_statuses(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise CaliforniaPricingError(f"{path}: expected an array, got {_show(value)}")
    statuses: list[str] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or item not in CHARGE_POINT_STATUSES:
            raise CaliforniaPricingError(
                f"{path}[{index}]: expected an OCPP 1.6 ChargePointStatus "
                f"({', '.join(sorted(CHARGE_POINT_STATUSES))}), got {_show(item)}"
            )
        statuses.append(item)
    return tuple(statuses)


def _trigger_meter_value(value: Any, path: str) -> TriggerMeterValue:
    obj = _object(value, path)
    return TriggerMeterValue(
        at_time=_optional(obj, "atTime", path, _timestamp),
        at_energy_kWh=_optional(obj, "atEnergykWh", path, _number),
        at_power_kW=_optional(obj, "atPowerkW", path, _number),
        at_cp_status=_optional(obj, "atCPStatus", path, _cp_statuses) or (),
    )


__all__ = [
    "CHARGE_POINT_STATUSES",
    "MESSAGE_CONNECTOR_UNPLUGGED",
    "MESSAGE_FINAL_COST",
    "MESSAGE_RUNNING_COST",
    "MESSAGE_SET_TRANSACTION_LIMIT",
    "MESSAGE_SET_USER_PRICE",
    "VENDOR_ID",
    "VENDOR_LIMITS",
    "CaliforniaPricingError",
    "ChargingPrice",
    "DefaultPrice",
    "DefaultPriceText",
    "FinalCost",
    "IdlePrice",
    "NextPeriod",
    "PriceText",
    "RunningCost",
    "TransactionLimit",
    "TriggerMeterValue",
    "UserPrice",
    "default_price_tariff",
    "parse_datetime",
    "parse_default_price",
    "parse_default_price_text",
    "parse_final_cost",
    "parse_running_cost",
    "parse_time_offset",
    "parse_transaction_limit",
    "parse_user_price",
]
