"""The dashboard and /metrics on the real charger: the app on simulators in-process with the server the composition
root builds (started and stopped as the daemon's ``_serve`` does), and the daemon itself in a subprocess for the
wiring: it serves when ``[monitoring] enabled``, and nothing listens otherwise."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import socket
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chargepoint import __version__
from chargepoint.composition.charger import build_monitoring
from chargepoint.errors import ConfigError
from chargepoint.web.server import MonitoringServer
from tests.integration.harness import Charger, make_config, running_charger
from tests.integration.test_cli import CONFIG as DAEMON_CONFIG
from tests.integration.test_cli import Daemon, cli

SVG = "{http://www.w3.org/2000/svg}"
PASSWORD = "correct-horse-battery"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclasses.dataclass
class Dashboard:
    charger: Charger
    server: MonitoringServer
    url: str
    http: aiohttp.ClientSession
    auth: str | None = None  # an Authorization header

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str, Mapping[str, str]]:
        async with self.http.get(self.url + path.lstrip("/"), **kwargs) as response:
            return response.status, await response.text(), response.headers

    async def get_as_operator(self, path: str) -> tuple[int, str, Mapping[str, str]]:
        return await self.get(path, headers={} if self.auth is None else {"Authorization": self.auth})

    async def json(self, path: str) -> Any:
        status, body, _ = await self.get_as_operator(path)
        assert status == 200, body
        return json.loads(body)

    async def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        status, body, headers = await self.get_as_operator("/metrics")
        assert status == 200, body
        assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(body) for s in family.samples}


@asynccontextmanager
async def dashboard(tmp_path: Path, **monitoring: Any) -> AsyncIterator[Dashboard]:
    config = make_config(tmp_path, monitoring={"enabled": True, "port": free_port(), **monitoring})
    async with running_charger(config) as charger, aiohttp.ClientSession() as http:
        server = build_monitoring(config, charger.app, charger.store)
        assert server is not None
        assert await server.start()
        try:
            assert server.url is not None
            yield Dashboard(charger, server, server.url, http)
        finally:
            await server.stop()


def status_of(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], connector: str = "1") -> str:
    [current] = [dict(labels)["status"] for (name, labels), value in metrics.items()
                 if name == "chargepoint_connector_status" and dict(labels)["connector"] == connector and value == 1]
    return current


def sample(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, connector: str | None = "1"
           ) -> float:
    return metrics[(name, () if connector is None else (("connector", connector),))]


async def eventually(check: Any, timeout_s: float = 5.0) -> Any:
    """Await ``check()`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result:
            return result
        assert time.monotonic() < deadline, f"not within {timeout_s} s"
        await asyncio.sleep(0.05)


def served_by_the_dashboard(task: asyncio.Task[Any]) -> bool:
    """Whether a task runs aiohttp's or the dashboard's code (the charger's own tasks come and go meanwhile)."""
    return any("aiohttp" in f.f_code.co_filename or "/chargepoint/web/" in f.f_code.co_filename
               for f in task.get_stack())


def normalized(value: Any) -> Any:
    return json.loads(json.dumps(value))


async def test_metrics_follow_the_simulator_from_plug_to_charging(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        c = d.charger
        await c.wait_for(lambda: c.status()["meter_energy_Wh"] is not None, what="a meter reading")
        idle = await d.metrics()
        assert status_of(idle) == "Available"
        assert sample(idle, "chargepoint_connector_session_active") == 0
        assert sample(idle, "chargepoint_connector_offered_current_amperes") == 0
        assert sample(idle, "chargepoint_connector_power_watts") == 0
        assert sample(idle, "chargepoint_connector_active_faults") == 0
        assert sample(idle, "chargepoint_uptime_seconds", None) > 0
        assert sample(idle, "chargepoint_csms_link_up", None) == 0  # standalone: no CSMS
        assert sample(idle, "chargepoint_outbox_messages", None) == 0
        assert sample(idle, "chargepoint_storage_free_bytes", None) > 0
        assert idle[("chargepoint_build_info", (("version", __version__),))] == 1

        await c.charge()

        async def drawing() -> Any:
            m = await d.metrics()
            return m if status_of(m) == "Charging" and sample(m, "chargepoint_connector_power_watts") > 1000 else None

        charging = await eventually(drawing)
        assert sample(charging, "chargepoint_connector_session_active") == 1
        assert sample(charging, "chargepoint_connector_offered_current_amperes") == pytest.approx(32, abs=0.1)
        energy = sample(charging, "chargepoint_connector_meter_energy_watt_hours_total")

        async def more_energy() -> bool:
            return sample(await d.metrics(), "chargepoint_connector_meter_energy_watt_hours_total") > energy

        await eventually(more_energy)

        c.sim().apply("unplug")
        await c.wait_status("Available")
        after = await d.metrics()
        assert status_of(after) == "Available"
        assert sample(after, "chargepoint_connector_session_active") == 0


async def test_api_status_is_what_chargepoint_status_shows(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        c = d.charger
        await c.wait_for(lambda: c.status()["meter_energy_Wh"] is not None, what="a meter reading")
        before = normalized(c.app.status())
        served = await d.json("/api/status")
        assert served in (before, normalized(c.app.status()))  # idle: nothing moves between the two
        await c.charge()
        served = await d.json("/api/status")
        assert set(served) == set(c.app.status())
        [connector] = served["connectors"]
        assert connector["status"] == "Charging"
        assert connector["session"]["id_tag"] == c.status()["session"]["id_tag"]


async def test_page_is_self_contained_and_its_policy_allows_its_own_script_only(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        status, page, headers = await d.get("/")
        assert status == 200
        assert headers["Content-Type"].startswith("text/html")
        assert not re.search(r"""(src|href)\s*=|https?://|@import""", page), "the page loads nothing from elsewhere"
        [script] = re.findall(r"<script>(.*?)</script>", page, re.S)
        [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
        policy = headers["Content-Security-Policy"]

        def digest(source: str) -> str:
            return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"

        assert f"script-src {digest(script)};" in policy
        assert f"style-src {digest(style)};" in policy
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert headers["X-Content-Type-Options"] == "nosniff"
        for path in re.findall(r'"(/(?:api|charts)/[a-z./]+)"', script):
            got, body, _ = await d.get(path)
            assert got == 200, (path, body)


async def test_sessions_report_faults_and_charts(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        c = d.charger
        await c.charge()
        await asyncio.sleep(0.5)
        c.sim().apply("unplug")
        await c.wait_status("Available")
        await c.app.flush_store()

        async def ended() -> Any:
            sessions = (await d.json("/api/sessions"))["sessions"]
            return sessions if sessions and sessions[0]["stopped_at"] is not None else None

        [session] = await eventually(ended)
        assert session["connector_id"] == 1
        assert session["energy_Wh"] > 0
        assert session["payment_method"] == "free"
        assert "id_tag" not in session and "signed_meter_data" not in session

        report = await d.json("/api/report")
        assert [x["id"] for x in report["connectors"]] == [1]
        assert len(report["usage"]["hour_of_week_occupancy"]) == 168
        assert report["connectors"][0]["uptime_percent"] == 100.0
        assert report["usage"]["days"][-1]["date"] == time.strftime("%Y-%m-%d", time.gmtime())

        status, energy, headers = await d.get("/charts/energy.svg")
        assert status == 200 and headers["Content-Type"].startswith("image/svg+xml")
        bars = [r for r in ET.fromstring(energy).iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
        assert len(bars) == 30
        status, occupancy, _ = await d.get("/charts/occupancy.svg")
        cells = [r for r in ET.fromstring(occupancy).iter(f"{SVG}rect") if r.find(f"{SVG}title") is not None]
        assert status == 200 and len(cells) == 168

        assert (await d.json("/api/faults"))["active"] == []
        c.sim().apply("fault", "ground-fault")
        await c.wait_status("Faulted")

        async def raised() -> Any:
            faults = await d.json("/api/faults")
            return faults if faults["active"] and faults["history"] else None

        faults = await eventually(raised)
        assert [(a["connector_id"], a["code"]) for a in faults["active"]] == [(1, "GroundFailure")]
        assert (faults["history"][-1]["code"], faults["history"][-1]["action"]) == ("GroundFailure", "raised")
        metrics = await d.metrics()
        assert status_of(metrics) == "Faulted"
        assert sample(metrics, "chargepoint_connector_active_faults") == 1


async def test_with_a_password_only_the_operator_gets_in(tmp_path: Path) -> None:
    async with dashboard(tmp_path, password=PASSWORD) as d:
        for path in ("/", "/metrics", "/api/status", "/api/report", "/charts/energy.svg"):
            status, _, headers = await d.get(path)
            assert status == 401, path
            assert headers["WWW-Authenticate"].startswith('Basic realm="chargepoint"')
            for wrong in (basic("operator", PASSWORD + "x"), basic("admin", PASSWORD), basic("operator", ""),
                          "Basic !!!", f"Bearer {PASSWORD}"):
                status, _, headers = await d.get(path, headers={"Authorization": wrong})
                assert status == 401, (path, wrong)
                assert "WWW-Authenticate" in headers
            status, _, _ = await d.get(path, headers={"Authorization": basic("operator", PASSWORD)})
            assert status == 200, path
        # With a password, the name it is reached by does not matter (a LAN address, a tunnel).
        status, _, _ = await d.get("/api/status", headers={"Authorization": basic("operator", PASSWORD),
                                                           "Host": "charger.example:8080"})
        assert status == 200
        d.auth = basic("operator", PASSWORD)
        assert status_of(await d.metrics()) == "Available"


async def test_without_a_password_a_foreign_host_name_is_turned_away(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        status, body, _ = await d.get("/api/status", headers={"Host": "attacker.example"})
        assert status == 403 and "localhost" in body
        status, _, _ = await d.get("/api/status", headers={"Host": "localhost:1234"})
        assert status == 200


async def test_a_failing_handler_is_a_500_and_a_log_line_and_the_charger_charges_on(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with dashboard(tmp_path) as d:
        async def broken(limit: int) -> dict[str, Any]:
            raise RuntimeError("the fault log is on fire")

        faulty = MonitoringServer(d.server.settings, dataclasses.replace(d.server.readings, fault_listing=broken),
                                  d.server.report_settings)
        await d.server.stop()
        assert await faulty.start()
        try:
            d.url = faulty.url or ""
            with caplog.at_level(logging.ERROR, logger="chargepoint.web.server"):
                status, body, _ = await d.get("/api/faults")
            assert status == 500 and "fire" not in body  # no internals to the client
            assert any("/api/faults failed" in r.getMessage() and r.exc_info for r in caplog.records)
            status, _, _ = await d.get("/api/status")
            assert status == 200
            await d.charger.charge()  # the safety path never heard of it
        finally:
            await faulty.stop()


async def test_stopping_ends_the_requests_in_flight_and_leaves_no_task_behind(tmp_path: Path) -> None:
    async with dashboard(tmp_path) as d:
        entered = asyncio.Event()

        async def stuck(limit: int) -> list[dict[str, Any]]:
            entered.set()
            await asyncio.Event().wait()
            return []

        await d.server.stop()
        before = asyncio.all_tasks()
        server = MonitoringServer(d.server.settings, dataclasses.replace(d.server.readings, recent_sessions=stuck),
                                  d.server.report_settings)
        assert await server.start()
        d.url = server.url or ""
        request = asyncio.create_task(d.get("/api/sessions"))
        await asyncio.wait_for(entered.wait(), 5)
        t0 = time.monotonic()
        await asyncio.wait_for(server.stop(), 5)
        assert time.monotonic() - t0 < 3
        with contextlib.suppress(aiohttp.ClientError):
            await asyncio.wait_for(request, 5)
        assert not server.addresses
        left = [t for t in asyncio.all_tasks() - before if not t.done() and served_by_the_dashboard(t)]
        assert not left, left
        assert not listening(int((d.url.rsplit(":", 1)[1]).rstrip("/")))


async def test_a_port_in_use_is_logged_and_the_charger_runs_on(tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config(tmp_path, monitoring={"enabled": True, "port": port})
        async with running_charger(config) as charger:
            server = build_monitoring(config, charger.app, charger.store)
            assert server is not None
            with caplog.at_level(logging.ERROR, logger="chargepoint.web.server"):
                assert not await server.start()
            assert any(f"cannot listen on 127.0.0.1:{port}" in r.getMessage() for r in caplog.records)
            assert server.url is None
            await charger.charge()
            await server.stop()


def test_a_non_loopback_bind_without_a_password_is_refused(tmp_path: Path) -> None:
    for monitoring in ({"enabled": True, "bind": "0.0.0.0"}, {"enabled": True, "bind": "192.168.1.20"},
                       {"enabled": True, "bind": "0.0.0.0", "password": "short"}):
        with pytest.raises(ConfigError) as refused:
            make_config(tmp_path, monitoring=monitoring)
        assert any("monitoring.password" in p for p in refused.value.problems), refused.value.problems
    assert make_config(tmp_path, monitoring={"enabled": True, "bind": "0.0.0.0", "password": PASSWORD})
    for loopback in ("127.0.0.1", "localhost", "::1"):
        assert make_config(tmp_path, monitoring={"enabled": True, "bind": loopback})
    config = tmp_path / "open.toml"
    config.write_text(DAEMON_CONFIG.format(dir=tmp_path) + '[monitoring]\nenabled = true\nbind = "0.0.0.0"\n')
    result = cli("config", "validate", "--config", str(config))
    assert result.returncode != 0
    assert "monitoring.password" in result.stderr


async def test_the_daemon_serves_only_when_enabled(tmp_path: Path) -> None:
    """The wiring of ``chargepoint run``: off by default and when disabled; on, it serves, and stops with it."""
    port = free_port()
    off = tmp_path / "off"
    off.mkdir()
    config = off / "config.toml"
    config.write_text(DAEMON_CONFIG.format(dir=off) + f"[monitoring]\nenabled = false\nport = {port}\n")
    daemon = Daemon(config)
    await asyncio.to_thread(daemon.start)
    try:
        assert not listening(port)
        assert "monitoring:" not in daemon.log()
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0

    on = tmp_path / "on"
    on.mkdir()
    config = on / "config.toml"
    config.write_text(DAEMON_CONFIG.format(dir=on) + f"[monitoring]\nenabled = true\nport = {port}\n")
    daemon = Daemon(config)
    await asyncio.to_thread(daemon.start)
    try:
        for _ in range(100):
            if f"on http://127.0.0.1:{port}/" in daemon.log():
                break
            await asyncio.sleep(0.05)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/api/status") as response:
            assert response.status == 200
            served = await response.json()
        status = await asyncio.to_thread(daemon.status)
        assert set(served) == set(status)
        connectors: Any = status["connectors"]
        assert [c["status"] for c in served["connectors"]] == [c["status"] for c in connectors]
    finally:
        assert await asyncio.to_thread(daemon.stop) == 0
    assert not listening(port)
    assert "monitoring: stopped" in daemon.log()
