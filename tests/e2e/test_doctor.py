"""``chargepoint doctor``'s checks against real servers: the CSMS check names the step that fails (DNS, TCP, TLS,
Basic auth) on a real test CSMS over real sockets and leaves a connected daemon's link alone; disk, database, outbox
and latched faults on a real database file. The whole command against a real daemon: tests/integration."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from chargepoint.cli.doctor import check_csms, check_storage
from chargepoint.config.loader import parse_config
from chargepoint.config.schema import Config
from simulators.csms import TestCsms, TestPki, make_test_pki
from tests.e2e.conftest import CP_ID

KEY = "Initial-Key-0042"


def config(tmp_path: Path, url: str, **ocpp: Any) -> Config:
    return parse_config({"storage": {"dir": str(tmp_path)},
                         "ocpp": {"csms_url": url, "charge_point_id": CP_ID, **ocpp}}, tmp_path / "config.toml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_each_step_that_fails_is_named(tmp_path: Path, pki: TestPki) -> None:
    dns = await check_csms(config(tmp_path, "ws://no-such-csms.invalid/ocpp"), daemon_connected=False)
    assert dns.status == "fail" and dns.detail.startswith("DNS: cannot resolve no-such-csms.invalid")
    tcp = await check_csms(config(tmp_path, f"ws://127.0.0.1:{free_port()}/ocpp"), daemon_connected=False)
    assert tcp.status == "fail" and tcp.detail.startswith("TCP:") and "refused" in tcp.detail

    other = make_test_pki(tmp_path / "other-ca", CP_ID)  # a CA that did not issue the CSMS's certificate
    async with TestCsms(ssl_context=pki.server_context()) as csms:
        untrusted = await check_csms(config(tmp_path, csms.url, ca_file=str(other.ca_cert)), daemon_connected=False)
        assert untrusted.status == "fail" and untrusted.detail.startswith("TLS: certificate verify failed")
        trusted = await check_csms(config(tmp_path, csms.url, ca_file=str(pki.ca_cert)), daemon_connected=False)
        assert trusted.status == "ok" and "TLS and the WebSocket upgrade succeed" in trusted.detail

    async with TestCsms(passwords={CP_ID: KEY}) as csms:
        wrong = await check_csms(config(tmp_path, csms.url, security_profile=1,
                                        authorization_key="Wrong-Key-000042"), daemon_connected=False)
        assert wrong.status == "fail" and "Basic auth: the CSMS refused our credentials (HTTP 401)" in wrong.detail
        right = await check_csms(config(tmp_path, csms.url, security_profile=1, authorization_key=KEY),
                                 daemon_connected=False)
        assert right.status == "ok"


async def test_a_connected_daemons_link_is_left_alone(tmp_path: Path) -> None:
    async with TestCsms() as csms:
        upgrades = 0
        original = csms._process_request

        def counting(connection: Any, request: Any) -> Any:
            nonlocal upgrades
            upgrades += 1
            return original(connection, request)

        csms._process_request = counting  # type: ignore[method-assign]
        checked = await check_csms(config(tmp_path, csms.url), daemon_connected=True)
        assert checked.status == "ok" and "the daemon is connected" in checked.detail
        await asyncio.sleep(0.1)
        assert upgrades == 0


def test_disk_database_outbox_and_faults_are_checked(tmp_path: Path) -> None:
    import sqlite3

    from chargepoint.store import Store

    async def make() -> None:
        store = await Store.open(tmp_path / "chargepoint.db")
        await store.close()

    asyncio.run(make())
    conn = sqlite3.connect(tmp_path / "chargepoint.db")
    with conn:
        conn.executemany("INSERT INTO outbox (action, payload, created_at) VALUES ('MeterValues', '{}', ?)",
                         [("2026-01-01T00:00:00+00:00",)] * 3)
        conn.execute("INSERT INTO latched_faults (connector_id, code, since) VALUES (1, 'ContactorWelded', "
                     "'2026-12-01T10:00:00+00:00')")
    conn.close()
    checks = {c.name: c for c in check_storage(parse_config({"storage": {"dir": str(tmp_path),
                                                                          "min_free_bytes": 2**62}}, tmp_path / "c"))}
    assert checks["disk"].status == "fail" and "below storage.min_free_bytes" in checks["disk"].detail
    assert checks["database"].status == "ok"
    assert checks["outbox"].status == "warn" and "3 messages wait" in checks["outbox"].detail
    assert checks["faults"].status == "fail" and "connector 1 ContactorWelded" in checks["faults"].detail
    assert "chargepoint fault clear" in checks["faults"].hint
