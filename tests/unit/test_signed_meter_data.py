"""Signed meter data (OCMF) in the store and in what the charger tells a signing meter, on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chargepoint import __version__
from chargepoint.core.metering import SignedMeterData
from chargepoint.runtime.signed_metering import ChargerIdentity, identification
from chargepoint.store import Store

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
SIGNED = SignedMeterData('OCMF|{"FV":"1.0","RD":[{"TX":"B","RV":1.000},{"TX":"E","RV":2.500}]}|{"SD":"3045AB"}',
                         "3059301306072A8648CE3D0201")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = await Store.open(tmp_path / "chargepoint.db")
    yield opened
    await opened.close()


async def test_a_session_ended_with_signed_data_keeps_it_unaltered_with_the_key(store: Store) -> None:
    session = await store.begin_session(1, "CARD", 1000, T0)
    closed = await store.end_session(session.session_id, 2500, T0 + timedelta(hours=1), "Local", signed=SIGNED)
    assert (closed.signed_meter_data, closed.meter_public_key) == (SIGNED.ocmf, SIGNED.public_key_hex)
    again = await store.session(session.session_id)
    assert again is not None and again.signed_meter_data == SIGNED.ocmf  # byte for byte, as the meter signed it


async def test_a_session_without_a_signing_meter_has_no_signed_data(store: Store) -> None:
    session = await store.begin_session(1, "CARD", 0, T0)
    closed = await store.end_session(session.session_id, 10, T0 + timedelta(minutes=5), "Local")
    assert closed.signed_meter_data is None and closed.meter_public_key is None


async def test_the_ledger_record_of_a_signed_session_carries_the_dataset_and_an_unsigned_one_does_not(
        store: Store) -> None:
    signed = await store.begin_session(1, "A", 0, T0)
    await store.end_session(signed.session_id, 10, T0 + timedelta(minutes=1), "Local", signed=SIGNED)
    plain = await store.begin_session(2, "B", 0, T0)
    await store.end_session(plain.session_id, 10, T0 + timedelta(minutes=1), "Local")
    bodies = {r.body["session_id"]: r.body for r in await store.ledger() if r.kind == "session"}
    assert bodies[signed.session_id]["signed_meter_data"] == SIGNED.ocmf
    assert bodies[signed.session_id]["meter_public_key"] == SIGNED.public_key_hex
    assert "signed_meter_data" not in bodies[plain.session_id]  # records of meters that do not sign are unchanged


async def test_a_recovered_session_gets_the_dataset_its_meter_signed_after_the_outage(store: Store) -> None:
    older = await store.begin_session(1, "A", 0, T0)
    await store.end_session(older.session_id, 5, T0 + timedelta(minutes=1), "Local")
    left_open = await store.begin_session(1, "B", 5, T0 + timedelta(minutes=2))
    other = await store.begin_session(2, "C", 0, T0 + timedelta(minutes=2))
    recovered = await store.recover_open_sessions("PowerLoss", signed={1: SIGNED})
    by_id = {r.session_id: r for r in recovered}
    assert set(by_id) == {left_open.session_id, other.session_id}
    assert by_id[left_open.session_id].signed_meter_data == SIGNED.ocmf
    assert by_id[other.session_id].signed_meter_data is None  # connector 2's meter had nothing open
    closed_before = await store.session(older.session_id)
    assert closed_before is not None and closed_before.signed_meter_data is None


IDENTITY = ChargerIdentity(charge_point_id="CP-7", evse_id="DE*ABC*E7*1", serial_number="SN-42",
                           firmware_version=__version__)


@pytest.mark.parametrize(("method", "identified", "kind", "flags"), [
    ("rfid", True, "ISO14443", ("RFID_PLAIN",)),
    ("remote", True, "CENTRAL", ("OCPP_RS",)),
    ("qr", True, "CENTRAL", ("OCPP_RS",)),
    ("card", True, "CARD_TXN_NR", ()),
])
def test_each_way_of_paying_is_named_in_the_meters_vocabulary(
        method: str, identified: bool, kind: str, flags: tuple[str, ...]) -> None:
    ident = identification(IDENTITY, "04A1B2C3", method)
    assert (ident.identified, ident.identification_type, ident.identification_flags) == (identified, kind, flags)
    assert ident.identification_data == "04A1B2C3"
    assert (ident.charge_point_type, ident.charge_point_id) == ("EVSEID", "DE*ABC*E7*1")
    assert (ident.gateway_id, ident.gateway_serial, ident.gateway_version) == ("chargepoint", "SN-42", __version__)


def test_free_vend_names_no_user() -> None:
    ident = identification(IDENTITY, "FREE", "free")
    assert (ident.identified, ident.identification_type, ident.identification_data) == (False, "NONE", "")


def test_without_an_evse_id_the_charge_point_is_named_by_its_ocpp_identity() -> None:
    identity = ChargerIdentity(charge_point_id="CP-7", evse_id="", serial_number="SN", firmware_version="1")
    ident = identification(identity, "TAG", "rfid")
    assert (ident.charge_point_type, ident.charge_point_id) == ("CBIDC", "CP-7")
