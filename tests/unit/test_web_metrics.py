"""``/metrics`` rendering and the dashboard's access checks (chargepoint/web/metrics.py, chargepoint/web/server.py),
without a server: the text parses as Prometheus' own parser reads it, and the checks hold for odd input."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from chargepoint.web.metrics import Snapshot, render
from chargepoint.web.server import credentials_match, host_allowed


def connector(connector_id: int, status: str, **fields: Any) -> dict[str, Any]:
    return {"id": connector_id, "status": status, "offered_current_A": 0.0, "power_W": None, "meter_energy_Wh": None,
            "faults": [], "session": None, **fields}


def samples(snapshot: Snapshot) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = render(snapshot).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


STATUS = {
    "csms_connected": True,
    "connectors": [
        connector(1, "Charging", offered_current_A=31.98, power_W=22_070.5, meter_energy_Wh=1_234_567,
                  faults=[], session={"energy_Wh": 500}),
        connector(2, "Faulted", faults=["GroundFailure", "ContactorWelded"]),
    ],
    "storage": {"free_bytes": 5_000_000_000},
}


def test_every_figure_is_exported_with_its_unit_and_labels() -> None:
    got = samples(Snapshot(STATUS, 3600.5, 3, "1.2.3"))
    c1, c2 = (("connector", "1"),), (("connector", "2"),)
    assert got[("chargepoint_connector_offered_current_amperes", c1)] == pytest.approx(31.98)
    assert got[("chargepoint_connector_power_watts", c1)] == pytest.approx(22_070.5)
    assert got[("chargepoint_connector_meter_energy_watt_hours_total", c1)] == 1_234_567
    assert got[("chargepoint_connector_session_active", c1)] == 1
    assert got[("chargepoint_connector_session_active", c2)] == 0
    assert got[("chargepoint_connector_active_faults", c1)] == 0
    assert got[("chargepoint_connector_active_faults", c2)] == 2
    assert got[("chargepoint_uptime_seconds", ())] == pytest.approx(3600.5)
    assert got[("chargepoint_csms_link_up", ())] == 1
    assert got[("chargepoint_outbox_messages", ())] == 3
    assert got[("chargepoint_storage_free_bytes", ())] == 5_000_000_000
    assert got[("chargepoint_build_info", (("version", "1.2.3"),))] == 1


def test_the_status_is_one_hot_over_the_ocpp_statuses() -> None:
    got = samples(Snapshot(STATUS, 1.0, 0, "1"))
    statuses = {dict(labels)["status"]: value for (name, labels), value in got.items()
                if name == "chargepoint_connector_status" and dict(labels)["connector"] == "1"}
    assert statuses["Charging"] == 1
    assert sum(statuses.values()) == 1
    assert set(statuses) == {"Available", "Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing",
                             "Reserved", "Unavailable", "Faulted"}


def test_a_status_outside_the_vocabulary_still_shows_as_current() -> None:
    got = samples(Snapshot({"connectors": [connector(1, "Rebooting")]}, 1.0, 0, "1"))
    assert got[("chargepoint_connector_status", (("connector", "1"), ("status", "Rebooting")))] == 1
    assert got[("chargepoint_connector_status", (("connector", "1"), ("status", "Available")))] == 0


def test_what_is_not_known_is_left_out_rather_than_made_up() -> None:
    status = {"csms_connected": False, "connectors": [connector(1, "Available")], "storage": {"free_bytes": None}}
    got = samples(Snapshot(status, 1.0, None, "1"))
    names = {name for name, _ in got}
    assert "chargepoint_connector_power_watts" not in names  # no meter reading yet
    assert "chargepoint_connector_meter_energy_watt_hours_total" not in names
    assert "chargepoint_outbox_messages" not in names  # the store did not answer in time
    assert "chargepoint_storage_free_bytes" not in names
    assert got[("chargepoint_csms_link_up", ())] == 0


def test_only_the_chargers_own_metrics_none_of_the_process_wide_registry() -> None:
    text = render(Snapshot(STATUS, 1.0, 0, "1")).decode()
    names = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    assert names and all(name.startswith("chargepoint_") for name in names)


def test_a_label_value_is_escaped_in_the_text_format() -> None:
    got = samples(Snapshot({"connectors": []}, 1.0, 0, 'v1 "beta"\nnext'))
    assert got[("chargepoint_build_info", (("version", 'v1 "beta"\nnext'),))] == 1


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("header", "ok"), [
    (basic("operator", "s3cret-pass"), True),
    (basic("operator", "s3cret-pasS"), False),
    (basic("operator", "s3cret-pass "), False),
    (basic("Operator", "s3cret-pass"), False),
    (basic("admin", "s3cret-pass"), False),
    (basic("operator", ""), False),
    (None, False),
    ("", False),
    ("Bearer s3cret-pass", False),
    ("Basic not-base64!!", False),
    ("Basic " + base64.b64encode(b"no-colon").decode(), False),
])
def test_basic_auth_wants_the_operator_and_the_password(header: str | None, ok: bool) -> None:
    assert credentials_match(header, "s3cret-pass") is ok


def test_a_password_beyond_ascii_works_as_browsers_send_it() -> None:
    assert credentials_match(basic("operator", "Grüße-für-alle"), "Grüße-für-alle")


@pytest.mark.parametrize(("host", "ok"), [
    ("localhost:8080", True),
    ("LOCALHOST", True),
    ("127.0.0.1:8080", True),
    ("127.0.1.1", True),
    ("[::1]:8080", True),
    ("[::1]", True),
    ("charger.local:8080", False),
    ("evil.example", False),
    ("127.0.0.1.evil.example:8080", False),  # a name an attacker's DNS may point at 127.0.0.1
    ("0.0.0.0:8080", False),
    ("", False),
])
def test_without_a_password_only_loopback_names_may_be_asked_for(host: str, ok: bool) -> None:
    assert host_allowed(host, "127.0.0.1") is ok


def test_the_bind_address_itself_is_a_fine_host() -> None:
    assert host_allowed("127.0.0.2:9000", "127.0.0.2")
    assert host_allowed("[::1]:9000", "::1")
