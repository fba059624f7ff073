"""The Iskra WM3M4C driver when the meter misbehaves or the input is unusual: settings refused naming the setting,
text outside ASCII in the metadata, a begin after a power failure, and a meter that hands out an incomplete or
unreadable signed dataset (the simulator made to misbehave as a faulty meter would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from pyocmf import OCMF

from hal.drivers.iskra_wm3m4c import IskraWm3m4cMeter, status_name
from hal.errors import MeterError
from tests.integration.test_iskra_wm3m4c import IDENTIFICATION, Bench, Line, bench_for

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async for b in bench_for(Line()):
        yield b


@pytest.mark.parametrize(("setting", "message"), [
    ({"device_id": 248}, "Modbus device id must be 1..247, got 248"),
    ({"device_id": 0}, "Modbus device id must be 1..247, got 0"),
    ({"timeout_s": 0.0}, "timeout_s must be positive, got 0.0"),
    ({"signing_timeout_s": -1.0}, "signing_timeout_s must be positive, got -1.0"),
])
def test_a_bad_setting_is_refused_naming_it_and_its_value(setting: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as refused:
        IskraWm3m4cMeter.tcp("127.0.0.1", 502, **setting)
    assert str(refused.value) == message


def test_the_highest_modbus_id_is_accepted() -> None:
    assert IskraWm3m4cMeter.tcp("127.0.0.1", 502, device_id=247)._device_id == 247


def test_statuses_are_named_and_an_unknown_one_says_so() -> None:
    assert status_name(15) != "unknown status"
    assert status_name(99) == "unknown status"


async def test_text_outside_ascii_reaches_the_signed_dataset_escaped(bench: Bench) -> None:
    """A price with a euro sign: the metadata the meter takes is ASCII (JSON escapes), and the dataset says it."""
    await bench.meter.begin_transaction(replace(IDENTIFICATION, tariff_text="0,35 €/kWh, Parkgebühr 0,05 €/min"))
    signed = await bench.meter.end_transaction()
    assert signed.ocmf.isascii()
    parsed = OCMF.from_string(signed.ocmf)
    assert parsed.verify_signature(signed.public_key_hex)
    assert parsed.payload.TT == "0,35 €/kWh, Parkgebühr 0,05 €/min"


async def test_a_begin_after_a_power_failure_ends_the_held_transaction_then_begins_anew(bench: Bench) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)
    bench.server.power_failure()  # the meter keeps the transaction, forgets its clock and metadata
    await bench.meter.begin_transaction(replace(IDENTIFICATION, identification_data="04FFFFFF"))
    signed = await bench.meter.end_transaction()
    parsed = OCMF.from_string(signed.ocmf)
    assert parsed.verify_signature(signed.public_key_hex)
    assert parsed.payload.ID == "04FFFFFF"  # the new session's, not the one the outage interrupted


def _misbehave(bench: Bench, **change: bytes) -> None:
    """Make the simulated meter publish ``payload`` and/or ``signature`` instead of what it signed."""
    server: Any = bench.server
    original = server._start_signing

    def start_signing(payload: bytes, signature: bytes, *, ends: bool) -> None:
        original(change.get("payload", payload) if ends else payload,
                 change.get("signature", signature) if ends else signature, ends=ends)

    server._start_signing = start_signing


@pytest.mark.parametrize(("change", "message"), [
    ({"payload": b""}, "no complete signed dataset (values of 0 bytes, signature of"),
    ({"signature": b""}, "signature of 0 bytes)"),
    ({"payload": b"\xff\xfe{}"}, "signed values are not text"),
])
async def test_an_incomplete_or_unreadable_dataset_is_a_meter_error_naming_the_meter(
        bench: Bench, change: dict[str, bytes], message: str) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)
    _misbehave(bench, **change)
    with pytest.raises(MeterError) as refused:
        await bench.meter.end_transaction()
    assert str(refused.value).startswith("Iskra WM3M4C tcp://127.0.0.1:") and message in str(refused.value)
