"""OCPP 1.6 California Pricing (CostAndPrice): parsers, tariff mapping, configuration keys, DataTransfer dispatch.

The valid payloads follow the examples of the OCA application note "OCPP & California Pricing Requirements".
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from chargepoint.ocpp.config_keys import ChangeStatus, OcppConfiguration, ReportedKey
from chargepoint.ocpp.v16.cost_and_price import connector_unplugged_payload, handle_data_transfer
from chargepoint.ocpp.v16.handlers import ChargePointHandlers
from chargepoint.pricing.california import (
    VENDOR_ID,
    VENDOR_LIMITS,
    CaliforniaPricingError,
    ChargingPrice,
    DefaultPrice,
    DefaultPriceText,
    FinalCost,
    IdlePrice,
    NextPeriod,
    PriceText,
    RunningCost,
    TransactionLimit,
    TriggerMeterValue,
    UserPrice,
    default_price_tariff,
    parse_default_price,
    parse_default_price_text,
    parse_final_cost,
    parse_running_cost,
    parse_time_offset,
    parse_transaction_limit,
    parse_user_price,
)
from chargepoint.pricing.tariff import Component, PriceElement, TariffError

D = Decimal

# --------------------------------------------------------------------------------------- note examples

SET_USER_PRICE = {"idToken": "ABC123", "priceText": "$0.12/kWh, no idle fee"}
SET_USER_PRICE_MULTI = {
    "idToken": "ABC123",
    "priceText": "$0.12/kWh, no idle fee",
    "priceTextExtra": [
        {"format": "UTF8", "language": "nl", "content": "€0.12/kWh, geen idle fee"},
        {"format": "UTF8", "language": "de", "content": "€0,12/kWh, keine Leerlaufgebühr"},
    ],
}
RUNNING_COST_CHARGING = (
    '{"transactionId": 1, "timestamp": "2021-03-19T12:00:00Z", "meterValue": 1234000, "cost": 12.34,'
    ' "state": "Charging", "chargingPrice": {"kWhPrice": 0.20, "hourPrice": 1.00, "flatFee": 0.05},'
    ' "idlePrice": {"graceMinutes": 30, "hourPrice": 1.50},'
    ' "nextPeriod": {"atTime": "2021-03-19T13:00:00Z",'
    ' "chargingPrice": {"kWhPrice": 0.25, "hourPrice": 1.20, "flatFee": 0.10},'
    ' "idlePrice": {"graceMinutes": 15, "hourPrice": 2.00}},'
    ' "triggerMeterValue": {"atTime": "2021-03-19T12:30:00Z", "atEnergykWh": 50, "atPowerkW": 0.1,'
    ' "atCPStatus": ["SuspendedEV", "SuspendedEVSE"]},'
    ' "priceText": "$12.34 @ $0.20/kWh, $1.00/h", "qrCodeText": "https://www.cpo.com/sessions/13546"}'
)
FINAL_COST: dict[str, Any] = {
    "transactionId": 1,
    "cost": D("3.31"),
    "priceText": "$2.81 @ $0.12/kWh, $0.50 @ $1/h, TOTAL KWH: 23.4 TIME: 03.50 COST: $3.31. "
    "Visit www.cpo.com/invoices/13546 for an invoice of your session.",
    "qrCodeText": "https://www.cpo.com/invoices/13546",
}
DEFAULT_PRICE: dict[str, Any] = {
    "priceText": "0.15 $/kWh, idle fee after charging: 1 $/hr",
    "priceTextOffline": "The station is offline. Charging is possible for 0.15 $/kWh.",
    "chargingPrice": {"kWhPrice": D("0.15"), "hourPrice": D("0.00"), "flatFee": D("0.00")},
}


def dumps(value: Any) -> str:
    """JSON with Decimals written as numbers, exactly."""

    def encode(item: Any) -> Any:
        if isinstance(item, Decimal):
            return f"@@{item}@@"
        if isinstance(item, dict):
            return {key: encode(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [encode(inner) for inner in item]
        return item

    return json.dumps(encode(value)).replace('"@@', "").replace('@@"', "")


# ------------------------------------------------------------------------------------------ valid input


def test_set_user_price_single_and_multi_language() -> None:
    assert parse_user_price(dumps(SET_USER_PRICE)) == UserPrice("ABC123", "$0.12/kWh, no idle fee", ())
    price = parse_user_price(dumps(SET_USER_PRICE_MULTI))
    assert price.extra == (
        PriceText("nl", "€0.12/kWh, geen idle fee", "UTF8"),
        PriceText("de", "€0,12/kWh, keine Leerlaufgebühr", "UTF8"),
    )
    only_extra = parse_user_price(dumps({"idToken": "X", "priceTextExtra": [{"language": "fr", "content": "t"}]}))
    assert only_extra == UserPrice("X", None, (PriceText("fr", "t", "UTF8"),))


def test_running_cost_with_every_field_of_the_note_example() -> None:
    cost = parse_running_cost(RUNNING_COST_CHARGING)
    assert cost == RunningCost(
        transaction_id=1,
        timestamp=datetime(2021, 3, 19, 12, tzinfo=UTC),
        meter_value_Wh=1_234_000,
        cost=D("12.34"),
        state="Charging",
        charging_price=ChargingPrice(D("0.20"), D("1.00"), D("0.05")),
        idle_price=IdlePrice(30, D("1.50")),
        next_period=NextPeriod(
            datetime(2021, 3, 19, 13, tzinfo=UTC), ChargingPrice(D("0.25"), D("1.20"), D("0.10")), IdlePrice(15, D(2))
        ),
        trigger_meter_value=TriggerMeterValue(
            datetime(2021, 3, 19, 12, 30, tzinfo=UTC), D(50), D("0.1"), ("SuspendedEV", "SuspendedEVSE")
        ),
        price_text="$12.34 @ $0.20/kWh, $1.00/h",
        extra=(),
        qr_code_text="https://www.cpo.com/sessions/13546",
    )


def test_numbers_keep_the_exact_text_of_the_json() -> None:
    cost = parse_running_cost(RUNNING_COST_CHARGING)
    assert str(cost.cost) == "12.34"
    assert cost.charging_price is not None
    assert str(cost.charging_price.kwh_price) == "0.20"  # not 0.2000000000000000111 from a float
    assert str(parse_final_cost('{"transactionId": 7, "cost": 0.1}').cost) == "0.1"
    assert parse_final_cost('{"transactionId": 7, "cost": 3}').cost == D(3)
    assert str(parse_final_cost('{"transactionId": 7, "cost": -0.00}').cost) == "0.00"


def test_running_cost_idle_minimal_and_string_transaction_id() -> None:
    idle = parse_running_cost(RUNNING_COST_CHARGING.replace('"Charging"', '"Idle"'))
    assert idle.state == "Idle"
    minimal = parse_running_cost('{"transactionId": "42", "cost": 1.5, "unknownFutureField": {"x": 1}}')
    assert minimal == RunningCost(42, None, None, D("1.5"), None)
    assert parse_running_cost('{"transactionId": 5, "cost": 0, "timestamp": null}').timestamp is None


def test_timestamps_with_an_offset_are_kept_aware() -> None:
    cost = parse_running_cost('{"transactionId": 1, "cost": 1, "timestamp": "2021-03-19T05:00:00-07:00"}')
    assert cost.timestamp == datetime(2021, 3, 19, 12, tzinfo=UTC)
    assert cost.timestamp is not None and cost.timestamp.utcoffset() == timedelta(hours=-7)


def test_final_cost_of_the_note_example() -> None:
    assert parse_final_cost(dumps(FINAL_COST)) == FinalCost(
        1, D("3.31"), FINAL_COST["priceText"], (), "https://www.cpo.com/invoices/13546"
    )


def test_default_price_and_default_price_text() -> None:
    assert parse_default_price(dumps(DEFAULT_PRICE)) == DefaultPrice(
        DEFAULT_PRICE["priceText"], DEFAULT_PRICE["priceTextOffline"], ChargingPrice(D("0.15"), D("0.00"), D("0.00"))
    )
    assert parse_default_price('{"priceText": "0.15 $/kWh"}') == DefaultPrice("0.15 $/kWh")
    assert parse_default_price_text('{"priceText": "0,15 €/kWh", "priceTextOffline": "Offline: 0,15 €/kWh"}') == \
        DefaultPriceText("0,15 €/kWh", "Offline: 0,15 €/kWh")


def test_transaction_limit() -> None:
    limit = parse_transaction_limit('{"transactionId": 3, "maxCost": 20.00, "maxEnergy": 30000, "maxTime": 7200}')
    assert limit == TransactionLimit(3, D("20.00"), 30_000, 7_200)
    assert parse_transaction_limit('{"transactionId": "3", "maxTime": 60}') == TransactionLimit(3, None, None, 60)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+00:00", timedelta(0)),
        ("-05:00", timedelta(hours=-5)),
        ("+05:30", timedelta(hours=5, minutes=30)),
        ("-14:00", timedelta(hours=-14)),
        ("+14:00", timedelta(hours=14)),
    ],
)
def test_time_offset(text: str, expected: timedelta) -> None:
    assert parse_time_offset(text) == expected


@pytest.mark.parametrize("text", ["05:00", "+5:00", "+0500", "Z", "", "+14:30", "+15:00", "-05:60", " +01:00",
                                  "+01:00:00"])
def test_time_offset_rejects(text: str) -> None:
    with pytest.raises(CaliforniaPricingError, match="time offset"):
        parse_time_offset(text)


# ----------------------------------------------------------------------------------------- rejections

_RC = '{"transactionId": 1, "cost": 1, %s}'


@pytest.mark.parametrize(
    ("parse", "data", "message"),
    [
        # not JSON / not an object
        (parse_running_cost, "not json", "RunningCost: not valid JSON"),
        (parse_running_cost, '{"transactionId": 1, "cost": NaN}', "RunningCost: not valid JSON"),
        (parse_running_cost, "[1, 2]", "RunningCost: expected a JSON object, got [1, 2]"),
        (parse_final_cost, '"FinalCost"', 'FinalCost: expected a JSON object, got "FinalCost"'),
        (parse_user_price, "", "SetUserPrice: not valid JSON"),
        # missing required fields
        (parse_running_cost, '{"cost": 1}', "RunningCost.transactionId: required"),
        (parse_running_cost, '{"transactionId": 1}', "RunningCost.cost: required"),
        (parse_running_cost, '{"transactionId": 1, "cost": null}', "RunningCost.cost: required"),
        (parse_final_cost, '{"transactionId": 1}', "FinalCost.cost: required"),
        (parse_user_price, '{"priceText": "x"}', "SetUserPrice.idToken: required"),
        (parse_user_price, '{"idToken": "ABC"}', "SetUserPrice: needs priceText or priceTextExtra"),
        (parse_user_price, '{"idToken": " ", "priceText": "x"}', "SetUserPrice.idToken: must not be empty"),
        (parse_default_price, '{"priceTextOffline": "x"}', "DefaultPrice.priceText: required"),
        (parse_default_price_text, "{}", "DefaultPriceText.priceText: required"),
        (parse_transaction_limit, '{"maxCost": 1}', "SetTransactionLimit.transactionId: required"),
        (parse_transaction_limit, '{"transactionId": 1}', "SetTransactionLimit: needs at least one of maxCost"),
        (parse_running_cost, _RC % '"nextPeriod": {"chargingPrice": {}}', "RunningCost.nextPeriod.atTime: required"),
        (parse_user_price, '{"idToken": "A", "priceTextExtra": [{"language": "de"}]}',
         "SetUserPrice.priceTextExtra[0].content: required"),
        (parse_user_price, '{"idToken": "A", "priceTextExtra": [{"content": "x"}]}',
         "SetUserPrice.priceTextExtra[0].language: required"),
        # negative costs and prices
        (parse_running_cost, '{"transactionId": 1, "cost": -0.01}',
         "RunningCost.cost: expected a number >= 0, got -0.01"),
        (parse_final_cost, '{"transactionId": 1, "cost": -3}', "FinalCost.cost: expected a number >= 0, got -3"),
        (parse_running_cost, _RC % '"chargingPrice": {"kWhPrice": -0.2}',
         "RunningCost.chargingPrice.kWhPrice: expected a number >= 0, got -0.2"),
        (parse_running_cost, _RC % '"idlePrice": {"hourPrice": -1}',
         "RunningCost.idlePrice.hourPrice: expected a number >= 0, got -1"),
        (parse_default_price, '{"priceText": "x", "chargingPrice": {"flatFee": -1}}',
         "DefaultPrice.chargingPrice.flatFee: expected a number >= 0, got -1"),
        (parse_transaction_limit, '{"transactionId": 1, "maxCost": -5}',
         "SetTransactionLimit.maxCost: expected a number >= 0, got -5"),
        # wrong types
        (parse_running_cost, _RC % '"chargingPrice": {"kWhPrice": "abc"}',
         'RunningCost.chargingPrice.kWhPrice: expected a number >= 0, got "abc"'),
        (parse_running_cost, '{"transactionId": 1, "cost": "12.34"}',
         'RunningCost.cost: expected a number >= 0, got "12.34"'),
        (parse_running_cost, '{"transactionId": 1, "cost": true}',
         "RunningCost.cost: expected a number >= 0, got true"),
        (parse_running_cost, '{"transactionId": "abc", "cost": 1}',
         'RunningCost.transactionId: expected an integer or a numeric string, got "abc"'),
        (parse_running_cost, '{"transactionId": 1.5, "cost": 1}',
         "RunningCost.transactionId: expected an integer or a numeric string, got 1.5"),
        (parse_running_cost, '{"transactionId": true, "cost": 1}', "RunningCost.transactionId: expected an integer"),
        (parse_running_cost, _RC % '"meterValue": 12.5', "RunningCost.meterValue: expected an integer >= 0, got 12.5"),
        (parse_running_cost, _RC % '"meterValue": -1', "RunningCost.meterValue: expected an integer >= 0, got -1"),
        (parse_running_cost, _RC % '"state": "Finished"',
         'RunningCost.state: expected Charging or Idle, got "Finished"'),
        (parse_running_cost, _RC % '"state": 1', "RunningCost.state: expected a string, got 1"),
        (parse_running_cost, _RC % '"chargingPrice": [0.2]', "RunningCost.chargingPrice: expected an object, got"),
        (parse_running_cost, _RC % '"idlePrice": {"graceMinutes": 1.5}',
         "RunningCost.idlePrice.graceMinutes: expected an integer >= 0, got 1.5"),
        (parse_running_cost, _RC % '"priceText": 5', "RunningCost.priceText: expected a string, got 5"),
        (parse_running_cost, _RC % '"qrCodeText": {}', "RunningCost.qrCodeText: expected a string, got {}"),
        (parse_running_cost, _RC % '"priceTextExtra": {"language": "de"}',
         "RunningCost.priceTextExtra: expected an array"),
        (parse_final_cost, '{"transactionId": 1, "cost": 1, "priceTextExtra": ["x"]}',
         'FinalCost.priceTextExtra[0]: expected an object, got "x"'),
        (parse_user_price, '{"idToken": "A", "priceTextExtra": [{"language": "de", "content": "x", "format": "PDF"}]}',
         "SetUserPrice.priceTextExtra[0].format: expected one of ASCII"),
        (parse_user_price, '{"idToken": 123, "priceText": "x"}', "SetUserPrice.idToken: expected a string, got 123"),
        (parse_transaction_limit, '{"transactionId": 1, "maxEnergy": 1.5}',
         "SetTransactionLimit.maxEnergy: expected an integer >= 0, got 1.5"),
        (parse_transaction_limit, '{"transactionId": 1, "maxTime": "60"}',
         'SetTransactionLimit.maxTime: expected an integer >= 0, got "60"'),
        (parse_default_price, '{"priceText": "x", "chargingPrice": {}}',
         "DefaultPrice.chargingPrice: needs at least one of kWhPrice, hourPrice, flatFee"),
        # absurd numbers
        (parse_running_cost, '{"transactionId": 1, "cost": 1E+999999}', "RunningCost.cost: expected a number below"),
        (parse_running_cost, '{"transactionId": 1, "cost": 1E-999999}', "RunningCost.cost: at most 12 decimals"),
        # atCPStatus must be OCPP 1.6 ChargePointStatus values
        (parse_running_cost, _RC % '"triggerMeterValue": {"atCPStatus": ["Idle"]}',
         'RunningCost.triggerMeterValue.atCPStatus[0]: expected an OCPP 1.6 ChargePointStatus'),
        (parse_running_cost, _RC % '"triggerMeterValue": {"atCPStatus": ["Charging", "EVConnected"]}',
         'RunningCost.triggerMeterValue.atCPStatus[1]'),
        (parse_running_cost, _RC % '"triggerMeterValue": {"atCPStatus": "Charging"}',
         "RunningCost.triggerMeterValue.atCPStatus: expected an array"),
        (parse_running_cost, _RC % '"triggerMeterValue": {"atEnergykWh": -1}',
         "RunningCost.triggerMeterValue.atEnergykWh: expected a number >= 0"),
        # timestamps: ISO 8601 with a zone
        (parse_running_cost, _RC % '"timestamp": "2021-03-19T12:00:00"',
         'RunningCost.timestamp: needs a time zone (Z or +HH:MM), got "2021-03-19T12:00:00"'),
        (parse_running_cost, _RC % '"timestamp": "yesterday"',
         'RunningCost.timestamp: expected an ISO 8601 date and time, got "yesterday"'),
        (parse_running_cost, _RC % '"timestamp": 1616155200',
         "RunningCost.timestamp: expected an ISO 8601 date and time, got 1616155200"),
        (parse_running_cost, _RC % '"nextPeriod": {"atTime": "2021-03-19 13:00"}',
         "RunningCost.nextPeriod.atTime: needs a time zone"),
        (parse_running_cost, _RC % '"triggerMeterValue": {"atTime": "12:30"}',
         "RunningCost.triggerMeterValue.atTime: expected an ISO 8601 date and time"),
    ],
)
def test_rejections_name_the_field(parse: Any, data: str, message: str) -> None:
    with pytest.raises(CaliforniaPricingError) as error:
        parse(data)
    assert str(error.value).startswith(message)
    assert isinstance(error.value, TariffError) and isinstance(error.value, ValueError)


def test_a_non_string_data_is_rejected() -> None:
    with pytest.raises(CaliforniaPricingError, match="RunningCost: expected a JSON text, got dict"):
        parse_running_cost({"transactionId": 1, "cost": 1})  # type: ignore[arg-type]


# -------------------------------------------------------------------------------------- tariff mapping


def test_default_price_tariff_maps_each_price_to_its_component() -> None:
    tariff = default_price_tariff(ChargingPrice(D("0.15"), D("1.00"), D("0.50")), "USD")
    assert (tariff.tariff_id, tariff.currency) == ("csms-default", "USD")
    assert tariff.energy == Component((PriceElement(D("0.15")),))
    assert tariff.charging_time == Component((PriceElement(D("1.00")),))
    assert tariff.fixed_fee == Component((PriceElement(D("0.50")),))
    assert tariff.idle_time is None
    assert tariff.tax_rates == () and tariff.energy.tax_rates is None  # final prices: no taxes


def test_default_price_tariff_leaves_absent_prices_out() -> None:
    tariff = default_price_tariff(ChargingPrice(kwh_price=D("0.30")), "EUR", tariff_id="offline")
    assert tariff.tariff_id == "offline"
    assert tariff.energy == Component((PriceElement(D("0.30")),))
    assert (tariff.charging_time, tariff.fixed_fee, tariff.idle_time) == (None, None, None)
    only_fee = default_price_tariff(ChargingPrice(flat_fee=D("2")), "EUR")
    assert only_fee.energy is None and only_fee.fixed_fee == Component((PriceElement(D(2)),))


def test_default_price_tariff_needs_a_price_and_a_currency_code() -> None:
    with pytest.raises(CaliforniaPricingError, match="at least one of kWhPrice"):
        default_price_tariff(ChargingPrice(), "USD")
    with pytest.raises(CaliforniaPricingError, match="ISO 4217"):
        default_price_tariff(ChargingPrice(D(1)), "dollars")


# ------------------------------------------------------------------------------------ configuration keys


def keys() -> OcppConfiguration:
    return OcppConfiguration(1)


def test_cost_and_price_keys_are_reported_with_defaults() -> None:
    known, unknown = keys().report(None)
    table = {k.key: (k.readonly, k.value) for k in known}
    assert unknown == [] and "AuthorizationKey" not in table  # write-only: left out of a full listing
    assert table["CustomDisplayCostAndPrice"] == (True, "false")
    assert table["DefaultPrice"] == (False, "")
    assert table["TimeOffset"] == (False, "+00:00")
    assert table["NextTimeOffsetTransitionDateTime"] == (False, "")
    assert table["TimeOffsetNextTransition"] == (False, "")
    assert table["CustomIdleFeeAfterStop"] == (False, "false")
    assert table["CustomMultiLanguageMessages"] == (True, "true")
    assert table["SupportedLanguages"] == (True, "en,de,fr,nl")
    assert table["Language"] == (False, "en")
    assert table["NumberOfDecimalsForCostValues"] == (True, "2")
    assert [name for name in table if name.startswith("DefaultPriceText,")] == [
        "DefaultPriceText,en", "DefaultPriceText,de", "DefaultPriceText,fr", "DefaultPriceText,nl"
    ]
    assert all(table[f"DefaultPriceText,{lang}"] == (False, "") for lang in ("en", "de", "fr", "nl"))
    assert len(known) <= int(str(table["GetConfigurationMaxKeys"][1]))


def test_custom_display_cost_and_price_is_read_only_and_set_by_the_client() -> None:
    config = OcppConfiguration(1, initial={"CustomDisplayCostAndPrice": "true"})
    assert config.get_bool("CustomDisplayCostAndPrice")
    assert config.change("CustomDisplayCostAndPrice", "false") == (ChangeStatus.Rejected, None)
    assert config.get_bool("CustomDisplayCostAndPrice")


@pytest.mark.parametrize(
    ("key", "value", "stored"),
    [
        ("DefaultPrice", dumps(DEFAULT_PRICE), dumps(DEFAULT_PRICE)),
        ("DefaultPrice", '{"priceText": "0.30 EUR/kWh"}', '{"priceText": "0.30 EUR/kWh"}'),
        ("DefaultPrice", "", ""),  # clears it
        ("DefaultPriceText,de", '{"priceText": "0,30 €/kWh", "priceTextOffline": "Offline: 0,30 €/kWh"}',
         '{"priceText": "0,30 €/kWh", "priceTextOffline": "Offline: 0,30 €/kWh"}'),
        ("DefaultPriceText,nl", '{"priceText": "€0,30/kWh"}', '{"priceText": "€0,30/kWh"}'),
        ("TimeOffset", "-05:00", "-05:00"),
        ("TimeOffset", " +01:00 ", "+01:00"),
        ("NextTimeOffsetTransitionDateTime", "2025-10-26T01:00:00Z", "2025-10-26T01:00:00Z"),
        ("NextTimeOffsetTransitionDateTime", "2025-11-02T02:00:00-07:00", "2025-11-02T02:00:00-07:00"),
        ("NextTimeOffsetTransitionDateTime", "", ""),
        ("TimeOffsetNextTransition", "-08:00", "-08:00"),
        ("TimeOffsetNextTransition", "", ""),
        ("CustomIdleFeeAfterStop", "TRUE", "true"),
        ("Language", "de", "de"),
        ("Language", "nl", "nl"),
    ],
)
def test_change_accepts_good_values(key: str, value: str, stored: str) -> None:
    config = keys()
    assert config.change(key, value) == (ChangeStatus.Accepted, stored)
    assert config[key] == stored
    known, _ = config.report([key])
    assert known[0].value == stored and not known[0].readonly


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("DefaultPrice", "not json", "DefaultPrice: not valid JSON"),
        ("DefaultPrice", '{"priceTextOffline": "x"}', "DefaultPrice.priceText: required"),
        ("DefaultPrice", '{"priceText": "x", "chargingPrice": {"kWhPrice": -1}}', "kWhPrice: expected a number >= 0"),
        ("DefaultPriceText,fr", '{"priceTextOffline": "x"}', "DefaultPriceText.priceText: required"),
        ("DefaultPriceText,fr", "[]", "DefaultPriceText: expected a JSON object"),
        ("TimeOffset", "", "time offset: expected +HH:MM"),
        ("TimeOffset", "+15:00", "at most 14:00"),
        ("TimeOffset", "EST", "time offset"),
        ("NextTimeOffsetTransitionDateTime", "2025-10-26T01:00:00", "needs a time zone"),
        ("NextTimeOffsetTransitionDateTime", "soon", "expected an ISO 8601 date and time"),
        ("TimeOffsetNextTransition", "1", "time offset"),
        ("CustomIdleFeeAfterStop", "yes", "expected true or false"),
        ("Language", "es", "language 'es' is not supported (SupportedLanguages: en,de,fr,nl)"),
        ("Language", "", "is not supported"),
    ],
)
def test_change_rejects_bad_values_and_keeps_the_previous_one(
    key: str, value: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = keys()
    before = config[key]
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.config_keys"):
        assert config.change(key, value) == (ChangeStatus.Rejected, None)
    assert config[key] == before
    assert reason in caplog.text


@pytest.mark.parametrize("key", ["CustomMultiLanguageMessages", "SupportedLanguages", "NumberOfDecimalsForCostValues"])
def test_read_only_cost_keys_are_rejected(key: str) -> None:
    config = keys()
    before = config[key]
    assert config.change(key, "x") == (ChangeStatus.Rejected, None)
    assert config[key] == before


def test_default_price_text_keys_exist_only_for_supported_languages() -> None:
    config = keys()
    assert config.change("DefaultPriceText,es", '{"priceText": "x"}') == (ChangeStatus.NotSupported, None)
    assert config.change("DefaultPriceText", '{"priceText": "x"}') == (ChangeStatus.NotSupported, None)
    known, unknown = config.report(["DefaultPriceText,en", "DefaultPriceText,es", "DefaultPriceText,"])
    assert [k.key for k in known] == ["DefaultPriceText,en"]
    assert unknown == ["DefaultPriceText,es", "DefaultPriceText,"]
    with pytest.raises(KeyError):
        config["DefaultPriceText,es"]


def test_supported_languages_from_the_client_drive_language_and_text_keys() -> None:
    config = OcppConfiguration(1, initial={"SupportedLanguages": "en,es", "Language": "es"})
    assert config["Language"] == "es"
    names = [k.key for k in config.report(None)[0] if k.key.startswith("DefaultPriceText,")]
    assert names == ["DefaultPriceText,en", "DefaultPriceText,es"]
    assert config.change("Language", "de") == (ChangeStatus.Rejected, None)
    assert config.change("DefaultPriceText,es", '{"priceText": "0,30 €/kWh"}')[0] is ChangeStatus.Accepted


def test_persisted_cost_keys_are_revalidated_on_load() -> None:
    config = keys()
    config.load({
        "DefaultPrice": '{"priceText": "0.30 EUR/kWh", "chargingPrice": {"kWhPrice": 0.30}}',
        "DefaultPriceText,de": '{"priceText": "0,30 €/kWh"}',
        "DefaultPriceText,es": '{"priceText": "0,30 €/kWh"}',  # not a supported language: ignored
        "TimeOffset": "+25:00",  # invalid: ignored
        "Language": "fr",
    })
    assert config["DefaultPrice"] == '{"priceText": "0.30 EUR/kWh", "chargingPrice": {"kWhPrice": 0.30}}'
    assert config["DefaultPriceText,de"] == '{"priceText": "0,30 €/kWh"}'
    assert config["TimeOffset"] == "+00:00"
    assert config["Language"] == "fr"


def test_other_keys_are_unchanged() -> None:
    config = keys()
    assert config.change("HeartbeatInterval", "30") == (ChangeStatus.Accepted, "30")
    assert config.change("NoSuchKey", "1") == (ChangeStatus.NotSupported, None)
    assert config.report(["NoSuchKey", "AuthorizationKey"]) == \
        ([ReportedKey("AuthorizationKey", False, None)], ["NoSuchKey"])  # write-only: known, no value
    assert config.get_int("HeartbeatInterval") == 30


# -------------------------------------------------------------------------------- DataTransfer dispatch


@dataclass
class RecordingSink:
    known_transactions: set[int] = field(default_factory=lambda: {1})
    received: list[Any] = field(default_factory=list)

    async def user_price(self, price: UserPrice) -> None:
        self.received.append(price)

    async def running_cost(self, cost: RunningCost) -> bool:
        self.received.append(cost)
        return cost.transaction_id in self.known_transactions

    async def final_cost(self, cost: FinalCost) -> bool:
        self.received.append(cost)
        return cost.transaction_id in self.known_transactions

    async def transaction_limit(self, limit: TransactionLimit) -> bool:
        self.received.append(limit)
        return limit.transaction_id in self.known_transactions


@pytest.mark.parametrize(
    ("vendor_id", "message_id", "data", "enabled", "status", "received"),
    [
        (VENDOR_ID, "SetUserPrice", dumps(SET_USER_PRICE), True, "Accepted", UserPrice),
        (VENDOR_ID, "RunningCost", RUNNING_COST_CHARGING, True, "Accepted", RunningCost),
        (VENDOR_ID, "FinalCost", dumps(FINAL_COST), True, "Accepted", FinalCost),
        (VENDOR_ID, "RunningCost", '{"transactionId": 99, "cost": 1}', True, "Rejected", RunningCost),
        (VENDOR_ID, "FinalCost", '{"transactionId": 99, "cost": 1}', True, "Rejected", FinalCost),
        (VENDOR_ID, "RunningCost", '{"transactionId": 1, "cost": "x"}', True, "Rejected", None),
        (VENDOR_ID, "RunningCost", None, True, "Rejected", None),
        (VENDOR_ID, "RunningCost", RUNNING_COST_CHARGING, False, "Rejected", None),
        (VENDOR_ID, "SetUserPrice", dumps(SET_USER_PRICE), False, "Rejected", None),
        (VENDOR_ID, "ConnectorUnplugged", "{}", True, "UnknownMessageId", None),
        (VENDOR_ID, "SetPrice", "{}", True, "UnknownMessageId", None),
        (VENDOR_ID, None, "{}", True, "UnknownMessageId", None),
        ("com.example", "RunningCost", RUNNING_COST_CHARGING, True, "UnknownVendorId", None),
        (VENDOR_LIMITS, "SetTransactionLimit", '{"transactionId": 1, "maxCost": 10}', False, "Accepted",
         TransactionLimit),
        (VENDOR_LIMITS, "SetTransactionLimit", '{"transactionId": 1, "maxCost": 10}', True, "Accepted",
         TransactionLimit),
        (VENDOR_LIMITS, "SetTransactionLimit", '{"transactionId": 2, "maxTime": 60}', False, "Rejected",
         TransactionLimit),
        (VENDOR_LIMITS, "SetTransactionLimit", '{"transactionId": 1}', False, "Rejected", None),
        (VENDOR_LIMITS, "RunningCost", RUNNING_COST_CHARGING, True, "UnknownMessageId", None),
    ],
)
async def test_handle_data_transfer_statuses(
    vendor_id: str, message_id: str | None, data: str | None, enabled: bool, status: str, received: type | None
) -> None:
    sink = RecordingSink()
    assert await handle_data_transfer(vendor_id, message_id, data, enabled=enabled, sink=sink) == status
    assert [type(item) for item in sink.received] == ([] if received is None else [received])


async def test_handle_data_transfer_without_a_sink_rejects_ours_only() -> None:
    assert await handle_data_transfer(VENDOR_ID, "RunningCost", RUNNING_COST_CHARGING, enabled=True, sink=None) == \
        "Rejected"
    assert await handle_data_transfer(VENDOR_LIMITS, "SetTransactionLimit", '{"transactionId": 1, "maxTime": 1}',
                                      enabled=True, sink=None) == "Rejected"
    assert await handle_data_transfer("com.example", "x", "1", enabled=True, sink=None) == "UnknownVendorId"


async def test_malformed_data_is_logged_with_the_reason(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chargepoint.ocpp.v16.cost_and_price"):
        status = await handle_data_transfer(VENDOR_ID, "RunningCost", '{"transactionId": 1, "cost": -1}',
                                            enabled=True, sink=RecordingSink())
    assert status == "Rejected"
    assert "RunningCost.cost: expected a number >= 0, got -1" in caplog.text


def test_connector_unplugged_payload() -> None:
    at = datetime(2025, 3, 1, 13, 4, 5, 678_900, tzinfo=timezone(timedelta(hours=1)))
    payload = connector_unplugged_payload(17, at)
    assert payload["vendorId"] == "org.openchargealliance.costmsg"
    assert payload["messageId"] == "ConnectorUnplugged"
    assert isinstance(payload["data"], str)
    assert json.loads(payload["data"]) == {"transactionId": 17, "timestamp": "2025-03-01T12:04:05.678Z"}
    with pytest.raises(ValueError):
        connector_unplugged_payload(17, datetime(2025, 3, 1))  # naive on purpose


# ---------------------------------------------------------------- the real handler, through route_message


class _Connection:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def recv(self) -> str:
        raise AssertionError("not used")


@dataclass
class _App:
    pricing: RecordingSink | None
    connectors: dict[int, Any] = field(default_factory=dict)


@dataclass
class _Client:
    app: _App
    keys: OcppConfiguration
    registration_rejected: bool = False


async def route(frame: list[Any], *, enabled: bool, sink: RecordingSink | None) -> list[Any]:
    connection = _Connection()
    client = _Client(_App(sink), OcppConfiguration(1, {"CustomDisplayCostAndPrice": "true" if enabled else "false"}))
    link = ChargePointHandlers("CP-1", connection, 0.05, client, client.app)  # type: ignore[arg-type]
    await link.route_message(json.dumps(frame))
    await asyncio.sleep(0)
    assert len(connection.sent) == 1
    reply = json.loads(connection.sent[0])
    assert isinstance(reply, list)
    return reply


async def test_on_data_transfer_passes_message_id_and_data_to_the_sink() -> None:
    sink = RecordingSink()
    payload = {"vendorId": VENDOR_ID, "messageId": "RunningCost", "data": RUNNING_COST_CHARGING}
    assert await route([2, "u1", "DataTransfer", payload], enabled=True, sink=sink) == \
        [3, "u1", {"status": "Accepted"}]
    assert sink.received == [parse_running_cost(RUNNING_COST_CHARGING)]


async def test_on_data_transfer_follows_custom_display_cost_and_price() -> None:
    sink = RecordingSink()
    payload = {"vendorId": VENDOR_ID, "messageId": "SetUserPrice", "data": dumps(SET_USER_PRICE)}
    assert await route([2, "u2", "DataTransfer", payload], enabled=False, sink=sink) == \
        [3, "u2", {"status": "Rejected"}]
    limit = {"vendorId": "chargepoint", "messageId": "SetTransactionLimit",
             "data": '{"transactionId": 1, "maxEnergy": 5}'}
    assert await route([2, "u3", "DataTransfer", limit], enabled=False, sink=sink) == \
        [3, "u3", {"status": "Accepted"}]
    assert sink.received == [TransactionLimit(1, None, 5, None)]


async def test_on_data_transfer_without_pricing_service_and_unknown_vendor() -> None:
    payload = {"vendorId": VENDOR_ID, "messageId": "RunningCost", "data": RUNNING_COST_CHARGING}
    assert await route([2, "u4", "DataTransfer", payload], enabled=True, sink=None) == \
        [3, "u4", {"status": "Rejected"}]
    assert await route([2, "u5", "DataTransfer", {"vendorId": "com.example"}], enabled=True, sink=None) == \
        [3, "u5", {"status": "UnknownVendorId"}]
