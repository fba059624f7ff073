"""Property-based fuzzing of the California Pricing parsers: whatever JSON (or not-JSON) a CSMS puts in
DataTransfer.data or a configuration value, the answer is a clean rejection with a reason, never a crash."""

from __future__ import annotations

import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chargepoint.pricing.california import (
    CaliforniaPricingError,
    parse_default_price,
    parse_default_price_text,
    parse_final_cost,
    parse_running_cost,
    parse_transaction_limit,
    parse_user_price,
)

PARSERS = (parse_user_price, parse_running_cost, parse_final_cost, parse_default_price, parse_default_price_text,
           parse_transaction_limit)
FIELDS = ("idToken", "priceText", "priceTextExtra", "transactionId", "timestamp", "meterValue", "cost", "state",
          "chargingPrice", "idlePrice", "nextPeriod", "triggerMeterValue", "qrCodeText", "priceTextOffline",
          "kWhPrice", "hourPrice", "flatFee", "graceMinutes", "atTime", "atEnergykWh", "atPowerkW", "atCPStatus",
          "language", "content", "format", "maxCost", "maxEnergy", "maxTime")
EXAMPLES = int(os.environ.get("CHARGEPOINT_HYPOTHESIS_EXAMPLES", "300"))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["1E+999999", "NaN", "-0", "2026-11-26T12:00:00Z", "Charging", "Idle"]),
)
values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6)),
    max_leaves=20,
)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(parser=st.sampled_from(PARSERS), payload=st.dictionaries(st.sampled_from(FIELDS), values, max_size=10))
def test_any_json_object_is_parsed_or_rejected_with_a_reason(parser: Any, payload: dict[str, Any]) -> None:
    try:
        parser(json.dumps(payload))
    except CaliforniaPricingError as exc:
        assert str(exc), "a rejection must say why"


@settings(max_examples=EXAMPLES, deadline=None)
@given(parser=st.sampled_from(PARSERS), text=st.text(max_size=60))
def test_any_text_is_parsed_or_rejected_with_a_reason(parser: Any, text: str) -> None:
    try:
        parser(text)
    except CaliforniaPricingError as exc:
        assert str(exc)
