"""The real Iskra WM3M4C driver against the simulated meter over Modbus TCP on loopback: measurements, the signed
transaction (verified by pyocmf, an implementation of OCMF that is not ours), and the meter's failures."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from pyocmf import OCMF

from hal.drivers.iskra_wm3m4c import IskraWm3m4cMeter
from hal.errors import HalTimeout, MeterError
from hal.protocols import EnergyMeter, OcmfIdentification, SigningMeter
from simulators.iskra_meter import IskraMeterServer
from simulators.meter_server import MeterServer, MeterValues

pytestmark = pytest.mark.timeout(20)

TIMEOUT_S = 0.3
IDENTIFICATION = OcmfIdentification(
    identified=True, identification_type="ISO14443", identification_data="04A1B2C3",
    identification_flags=("RFID_PLAIN",), charge_point_type="EVSEID", charge_point_id="DE*CPX*E1234*1",
    gateway_id="chargepoint", gateway_serial="CP-0001", gateway_version="0.9.0",
)


@dataclass
class Line:
    """What the simulated meter measures, changed by the tests."""

    values: MeterValues = field(default_factory=lambda: MeterValues(
        voltage_V=(230.1, 231.0, 229.45), current_A=(16.02, -3.5, 0.0), energy_Wh_import=12_345.0,
        energy_Wh_import_per_phase=(0.0, 0.0, 0.0), online=True))

    def measure(self) -> MeterValues:
        return self.values

    def set(self, **changes: object) -> None:
        self.values = replace(self.values, **changes)  # type: ignore[arg-type]


@dataclass
class Bench:
    line: Line
    server: IskraMeterServer
    meter: IskraWm3m4cMeter


async def bench_for(line: Line, **server_options: object) -> AsyncIterator[Bench]:
    server = IskraMeterServer(line.measure, **server_options)  # type: ignore[arg-type]
    await server.start()
    host, port, device_id = server.endpoint
    meter = IskraWm3m4cMeter.tcp(host, port, device_id=device_id, timeout_s=TIMEOUT_S, signing_timeout_s=2.0)
    try:
        yield Bench(line, server, meter)
    finally:
        await meter.aclose()
        await server.stop()


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    async for b in bench_for(Line()):
        yield b


def parsed(ocmf: str) -> OCMF:
    return OCMF.from_string(ocmf, strict=True)  # strict: a deviation from the OCMF spec fails the test


async def test_the_driver_implements_the_signing_meter_port(bench: Bench) -> None:
    assert isinstance(bench.meter, SigningMeter)
    assert isinstance(bench.meter, EnergyMeter)


async def test_readings_decode_t5_voltages_and_t6_currents_and_power_including_a_negative_current(
    bench: Bench,
) -> None:
    reading = await bench.meter.read()
    assert reading.voltage_V == (230.1, 231.0, 229.45)
    assert reading.current_A == (16.02, -3.5, 0.0)
    assert reading.power_W == pytest.approx(230.1 * 16.02 - 231.0 * 3.5)
    assert reading.energy_Wh_import == 12_345
    assert abs(reading.measured_at_s - time.monotonic()) < 1.0


async def test_a_power_beyond_24_bits_of_mantissa_comes_with_a_positive_exponent() -> None:
    line = Line()
    line.set(voltage_V=(230.0, 230.0, 230.0), current_A=(20_000.0, 20_000.0, 20_000.0))
    async for bench in bench_for(line):
        reading = await bench.meter.read()
        assert reading.power_W == 13_800_000.0  # 1_380_000 * 10**1 on the wire
        assert reading.current_A == (20_000.0, 20_000.0, 20_000.0)


@pytest.mark.parametrize(("energy_exponent", "expected_Wh"), [(-2, 12_346), (-1, 12_346), (0, 12_345), (1, 12_340),
                                                             (3, 12_000)])
async def test_the_import_counter_is_scaled_by_its_exponent_register(energy_exponent: int, expected_Wh: int) -> None:
    line = Line()
    line.set(energy_Wh_import=12_345.67)
    async for bench in bench_for(line, energy_exponent=energy_exponent):
        assert (await bench.meter.read()).energy_Wh_import == expected_Wh


async def test_a_counter_beyond_16_bits_keeps_its_high_word() -> None:
    line = Line()
    line.set(energy_Wh_import=98_765_432.0)
    async for bench in bench_for(line):
        assert (await bench.meter.read()).energy_Wh_import == 98_765_432


async def test_a_negative_import_counter_is_refused_naming_the_meter(bench: Bench) -> None:
    bench.line.set(energy_Wh_import=-5.0)
    with pytest.raises(MeterError, match=r"Iskra WM3M4C tcp://127\.0\.0\.1:\d+/33: impossible import energy -5"):
        await bench.meter.read()


async def test_serial_number_and_public_key_are_read_from_the_registers_once() -> None:
    async for bench in bench_for(Line(), serial="61234567"):
        assert await bench.meter.serial_number() == "61234567"
        assert await bench.meter.public_key_hex() == bench.server.public_key_der_hex()
        requests = bench.server.requests
        assert await bench.meter.serial_number() == "61234567"
        assert await bench.meter.public_key_hex() == bench.server.public_key_der_hex()
        assert bench.server.requests == requests  # cached


async def test_a_meter_without_a_serial_number_is_a_meter_error() -> None:
    async for bench in bench_for(Line(), serial=""):
        with pytest.raises(MeterError, match="no readable serial number"):
            await bench.meter.serial_number()


async def test_a_meter_of_another_model_answers_with_an_exception_response_named_by_its_code() -> None:
    # An SDM630 configured at the Iskra's id has no registers at 105..: Modbus's "illegal data address" (2).
    sdm630 = MeterServer(Line().measure, device_id=33)
    await sdm630.start()
    meter = IskraWm3m4cMeter.tcp(sdm630.host, sdm630.port, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises(MeterError, match=r"exception response \(code 2\)"):
            await meter.read()
        with pytest.raises(MeterError, match=r"exception response \(code 2\)"):
            await meter.transaction_open()
    finally:
        await meter.aclose()
        await sdm630.stop()


async def test_begin_and_end_give_a_dataset_that_verifies_with_the_key_the_driver_read(bench: Bench) -> None:
    bench.line.set(energy_Wh_import=1_000.0)
    at_begin = await bench.meter.read()
    await bench.meter.begin_transaction(IDENTIFICATION)
    assert await bench.meter.transaction_open()
    bench.line.set(energy_Wh_import=3_500.4)
    at_end = await bench.meter.read()
    data = await bench.meter.end_transaction()

    assert not await bench.meter.transaction_open()
    assert data.public_key_hex == bench.server.public_key_der_hex()
    assert data.ocmf.startswith('OCMF|{"FV":"1.0",')
    assert re.search(r'\}\|\{"SA":"ECDSA-secp256r1-SHA256","SD":"(30[0-9A-F]{134,142})"\}$', data.ocmf)  # DER
    ocmf = parsed(data.ocmf)
    assert ocmf.verify_signature(data.public_key_hex) is True
    assert ocmf.check_eichrecht(errors_only=True) == []
    begin, end = ocmf.payload.RD
    assert (begin.TX, end.TX) == ("B", "E")
    assert begin.RV is not None and begin.RV * 1000 == at_begin.energy_Wh_import == 1_000
    assert end.RV is not None and end.RV * 1000 == at_end.energy_Wh_import == 3_500
    assert str(end.RV) == "3.500"
    payload = ocmf.payload
    assert (payload.ID, payload.IT, payload.CI, payload.CT) == ("04A1B2C3", "ISO14443", "DE*CPX*E1234*1", "EVSEID")
    assert (payload.IS, payload.IF) == (True, ["RFID_PLAIN"])
    assert (payload.GI, payload.GS, payload.GV) == ("chargepoint", "CP-0001", "0.9.0")
    assert (payload.MS, payload.PG, payload.TT) == ("60000001", "T1", None)


async def test_the_signed_payload_is_the_meters_byte_for_byte(bench: Bench) -> None:
    await bench.meter.begin_transaction(replace(IDENTIFICATION, tariff_text="0.39 EUR/kWh"))
    data = await bench.meter.end_transaction()
    assert data.ocmf.split("|")[1].encode() == bench.server.payload
    assert parsed(data.ocmf).payload.TT == "0.39 EUR/kWh"


@pytest.fixture
def local_zone(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The process's local time zone set to ``request.param`` for the test."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


# St. John's: a negative offset with half an hour (int16 minutes on the wire, -0330 or -0230 in TM).
@pytest.mark.parametrize("local_zone", ["UTC", "Asia/Kolkata", "America/St_Johns"], indirect=True)
async def test_the_meters_clock_is_set_and_synchronised_at_the_begin(bench: Bench, local_zone: str) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)
    assert bench.server.time_status == 2
    data = await bench.meter.end_transaction()
    begin, end = parsed(data.ocmf).payload.RD
    for reading in (begin, end):
        assert reading.time_status == "S"
        assert abs((reading.timestamp - datetime.now(UTC)).total_seconds()) < 5
    assert reading.timestamp.utcoffset() == datetime.now().astimezone().utcoffset()


async def test_a_tampered_reading_or_another_key_fails_verification(bench: Bench) -> None:
    bench.line.set(energy_Wh_import=2_000.0)
    await bench.meter.begin_transaction(IDENTIFICATION)
    bench.line.set(energy_Wh_import=9_000.0)
    data = await bench.meter.end_transaction()
    assert '"RV":9.000' in data.ocmf
    tampered = data.ocmf.replace('"RV":9.000', '"RV":8.000')
    assert parsed(tampered).verify_signature(data.public_key_hex) is False
    other_meter = IskraMeterServer(Line().measure)
    assert parsed(data.ocmf).verify_signature(other_meter.public_key_der_hex()) is False


async def test_an_end_without_a_begin_is_a_meter_error_and_sends_no_command(bench: Bench) -> None:
    with pytest.raises(MeterError, match="no transaction open"):
        await bench.meter.end_transaction()
    assert bench.server.status == 1  # no 'r' reached the meter (it would have answered 131)
    assert bench.server.transactions == 0


async def test_a_begin_while_the_meter_holds_a_transaction_ends_that_one_first(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)
    bench.line.set(energy_Wh_import=20_000.0)
    second = replace(IDENTIFICATION, identification_data="04FFEE11")
    with caplog.at_level(logging.WARNING, logger="hal.drivers.iskra_wm3m4c"):
        await bench.meter.begin_transaction(second)
    assert "held a transaction open (state 1)" in caplog.text
    assert bench.server.transactions == 1  # the first was ended
    data = await bench.meter.end_transaction()
    payload = parsed(data.ocmf).payload
    assert (payload.PG, payload.ID) == ("T2", "04FFEE11")
    assert str(payload.RD[0].RV) == "20.000"


async def test_after_a_power_failure_the_end_still_verifies_with_the_begins_identification(bench: Bench) -> None:
    bench.line.set(energy_Wh_import=5_000.0)
    await bench.meter.begin_transaction(IDENTIFICATION)
    bench.line.set(energy_Wh_import=6_000.0)
    bench.server.power_failure()
    assert bench.server.state == 2
    assert await bench.meter.transaction_open()
    data = await bench.meter.end_transaction()
    ocmf = parsed(data.ocmf)
    assert ocmf.verify_signature(data.public_key_hex) is True
    assert (ocmf.payload.ID, ocmf.payload.CI) == ("04A1B2C3", "DE*CPX*E1234*1")
    assert [reading.RV for reading in ocmf.payload.RD] == [Decimal("5.000"), Decimal("6.000")]
    assert ocmf.payload.RD[1].time_status == "S"  # the driver set the lost clock again
    assert bench.server.state == 0


async def test_after_a_power_failure_and_a_firmware_restart_the_end_carries_minimal_metadata(bench: Bench) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)
    bench.server.power_failure()
    host, port, device_id = bench.server.endpoint
    restarted = IskraWm3m4cMeter.tcp(host, port, device_id=device_id, timeout_s=TIMEOUT_S)
    try:
        data = await restarted.end_transaction()
    finally:
        await restarted.aclose()
    ocmf = parsed(data.ocmf)
    assert ocmf.verify_signature(data.public_key_hex) is True
    assert (ocmf.payload.IS, ocmf.payload.IT, ocmf.payload.ID, ocmf.payload.CI) == (False, "NONE", None, None)


async def test_metadata_the_meter_cannot_fit_is_refused_by_the_meter_naming_its_status(bench: Bench) -> None:
    # Under the driver's 1024 bytes, but the meter's own fields and two readings no longer fit its payload area.
    crowded = replace(IDENTIFICATION, identification_type="CENTRAL", identification_data="X" * 800)
    with pytest.raises(MeterError, match=r"refused to sign the begin: invalid message size \(status 253\)"):
        await bench.meter.begin_transaction(crowded)
    assert bench.server.state == 0


async def test_metadata_longer_than_one_write_goes_in_chunks_of_at_most_120_registers(bench: Bench) -> None:
    long_id = replace(IDENTIFICATION, identification_type="CENTRAL", identification_data="Y" * 500)  # > 240 bytes
    await bench.meter.begin_transaction(long_id)
    data = await bench.meter.end_transaction()
    assert parsed(data.ocmf).payload.ID == "Y" * 500


async def test_a_meter_that_signs_too_slowly_is_a_hal_timeout() -> None:
    async for bench in bench_for(Line(), signing_s=5.0):
        slow = IskraWm3m4cMeter.tcp(*bench.server.endpoint[:2], timeout_s=TIMEOUT_S, signing_timeout_s=0.2)
        try:
            started_s = time.monotonic()
            with pytest.raises(HalTimeout, match=r"begin was not signed within 0\.2 s \(signature in progress\)"):
                await slow.begin_transaction(IDENTIFICATION)
            assert time.monotonic() - started_s < 0.2 + 0.4
        finally:
            await slow.aclose()


@pytest.mark.parametrize("identification", [
    replace(IDENTIFICATION, charge_point_id="DE*CPX|E1"),
    replace(IDENTIFICATION, tariff_text="a|b"),
], ids=["pipe in CI", "pipe in TT"])
async def test_metadata_with_a_pipe_is_refused_before_anything_reaches_the_meter(
    bench: Bench, identification: OcmfIdentification
) -> None:
    with pytest.raises(MeterError, match=r"must not contain '\|'"):
        await bench.meter.begin_transaction(identification)
    assert bench.server.requests == 0


def with_id_of(length: int) -> OcmfIdentification:
    return replace(IDENTIFICATION, identification_type="CENTRAL", identification_data="Z" * length)


async def test_metadata_over_1024_bytes_is_refused_before_anything_reaches_the_meter(bench: Bench) -> None:
    await bench.meter.begin_transaction(IDENTIFICATION)  # even an open transaction is left alone
    requests = bench.server.requests
    with pytest.raises(MeterError, match=r"OCMF metadata of (\d+) bytes, the meter takes at most 1024") as raised:
        await bench.meter.begin_transaction(with_id_of(2000))
    others_bytes = int(re.findall(r"of (\d+) bytes", str(raised.value))[0]) - 2000
    with pytest.raises(MeterError, match="of 1025 bytes"):
        await bench.meter.begin_transaction(with_id_of(1025 - others_bytes))
    assert bench.server.requests == requests
    assert bench.server.state == 1
    # 1024 bytes go to the meter (which, in this case, finds no room for its own fields).
    with pytest.raises(MeterError, match=r"status 253"):
        await bench.meter.begin_transaction(with_id_of(1024 - others_bytes))
    assert bench.server.requests > requests


async def test_a_silent_meter_times_out_reading_and_signing(bench: Bench) -> None:
    bench.line.set(online=False)
    for attempt in (bench.meter.read(), bench.meter.begin_transaction(IDENTIFICATION)):
        started_s = time.monotonic()
        with pytest.raises(HalTimeout, match=r"no answer within 0\.3 s"):
            await attempt
        assert time.monotonic() - started_s < TIMEOUT_S + 0.2
    bench.line.set(online=True)
    assert (await bench.meter.read()).energy_Wh_import == 12_345


async def test_a_closed_driver_refuses_to_talk(bench: Bench) -> None:
    await bench.meter.aclose()
    with pytest.raises(MeterError, match="closed"):
        await bench.meter.read()
    with pytest.raises(MeterError, match="closed"):
        await bench.meter.transaction_open()


async def test_another_device_id_gets_no_reading(bench: Bench) -> None:
    host, port, _ = bench.server.endpoint
    other = IskraWm3m4cMeter.tcp(host, port, device_id=1, timeout_s=TIMEOUT_S)
    try:
        with pytest.raises((MeterError, HalTimeout)):
            await other.read()
    finally:
        await other.aclose()


def test_settings_are_checked_when_the_driver_is_built() -> None:
    assert IskraWm3m4cMeter.tcp("127.0.0.1", 502)._device_id == 33  # Iskra's factory id
    assert IskraWm3m4cMeter.rtu("/dev/ttyUSB0")._device_id == 33
    for bad in ({"device_id": 0}, {"device_id": 248}, {"timeout_s": 0.0}, {"signing_timeout_s": 0.0}):
        with pytest.raises(ValueError):
            IskraWm3m4cMeter.tcp("127.0.0.1", 502, **bad)
    with pytest.raises(ValueError, match="parity"):
        IskraWm3m4cMeter.rtu("/dev/ttyUSB0", parity="X")
