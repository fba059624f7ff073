"""Security profiles end to end: real WebSockets and real TLS on 127.0.0.1 (OCTT TC_073, TC_083-TC_087).

What this charger does (REFERENCE.md D.1, 4.2):
- The transport follows the configured ``csms_url``: ``ws://`` is plain; ``wss://`` is TLS >= 1.2 with the server
  certificate verified against ``ca_file`` (or the system store), whatever the profile. So profile 1 over ``wss://``
  is allowed (stricter than the whitepaper's ``ws://``; the URL is fixed by the config file, never by the CSMS).
- HTTP Basic auth (user = charge point id, password = AuthorizationKey) for profiles 1 and 2; a client certificate
  (CN = charge point id) and no Basic auth for profile 3.
- ChangeConfiguration SecurityProfile may only raise the profile, and only to one the configuration supports:
  2 and 3 need a ``wss://`` URL, 3 a client certificate, 1 and 2 an AuthorizationKey; otherwise Rejected.
  An accepted change reconnects at once and is persisted (it wins over the config file after a restart).
- AuthorizationKey is write-only (GetConfiguration lists it without a value, and only when asked for by name),
  16-40 characters, persisted, applied by an immediate reconnect at profiles 1 and 2 (a reconnect resumes the
  registration with a Heartbeat: no BootNotification), and never written to a log record or shown by
  ``chargepoint config show``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from chargepoint.cli.main import cli
from chargepoint.config.loader import parse_config
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError
from simulators.csms import TestCsms, TestPki
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import ocpp_config
from tests.integration.harness import Charger, make_config, running_charger

# At most ~20 characters, so that even websockets' elided frame log (last 24 characters) would show them whole.
KEY = "Initial-Key-0042"
WRONG_KEY = "Wrong-Key-000042"
NEW_KEY = "Rotated-Key-0777"
SHORT_KEY = "too-short-key"  # 13 < 16
LONG_KEY = "L" * 41


def token(key: str, user: str = CP_ID) -> str:
    return base64.b64encode(f"{user}:{key}".encode()).decode("ascii")


def basic(key: str) -> str:
    return "Basic " + token(key)


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Handshake:
    at: float  # time.monotonic()
    status: int  # 101 = the CSMS let the WebSocket upgrade proceed
    authorization: str | None
    tls_version: str | None


class RecordingCsms(TestCsms):
    """The test CSMS, also recording every HTTP upgrade request that got past TLS (and what it answered)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handshakes: list[Handshake] = []

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        response = super()._process_request(connection, request)
        ssl_object = connection.transport.get_extra_info("ssl_object")
        self.handshakes.append(Handshake(
            time.monotonic(),
            101 if response is None else response.status_code,
            request.headers.get("Authorization"),
            None if ssl_object is None else ssl_object.version(),
        ))
        return response


def leaks(caplog: pytest.LogCaptureFixture, *keys: str) -> list[str]:
    """Log records that show a key or its Basic-auth token. The test CSMS's own server-side websockets log
    (``websockets.server``: the request headers it received, the frames it sent) is not the charger's."""
    secrets = [s for key in keys for s in (key, token(key))]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    found = []
    for record in caplog.records:
        if record.name.startswith("websockets.server"):
            continue
        text = formatter.format(record)
        found += [f"{secret!r} in: {text[:300]}" for secret in secrets if secret in text]
    return found


def config_for(tmp_path: Path, csms: TestCsms, **ocpp: Any) -> Config:
    """The charger pointed at ``csms``. The meter is polled slowly: these tests need no readings, and a poll that
    completes just as the charger is stopped can swallow the cancellation and stall the shutdown (see
    ChargerApp._meter_loop: Python 3.11's wait_for inside the Modbus client)."""
    return ocpp_config(tmp_path, csms, ocpp=ocpp, charger={"meter_poll_interval_s": 5.0})


async def until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def registered(charger: Charger, csms: TestCsms, timeout_s: float = 5.0) -> None:
    """Registered, and done with the statuses it sends after BootNotification.

    Waiting for those matters: leaving the charger while it still awaits a StatusNotification reply can stall
    its shutdown for the 30 s CALL timeout (Python 3.11's wait_for may swallow a cancellation that races with
    the reply, and the status loop in OcppClient._send_all_statuses has no cancellation check of its own).
    """
    await charger.wait_for(lambda: charger.app.status()["csms_connected"], timeout_s, "registered")
    boots = [i for i, f in enumerate(csms.frames) if f.direction == "in" and f.action == "BootNotification"]
    await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 1, after=boots[-1], timeout_s=5)
    await csms.call(CP_ID, "GetConfiguration", {"key": ["NumberOfConnectors"]})  # replies are read in order


async def change(csms: TestCsms, key: str, value: str) -> str:
    reply = await csms.call(CP_ID, "ChangeConfiguration", {"key": key, "value": value})
    return str(reply["status"])


async def security_profile(csms: TestCsms) -> str:
    reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["SecurityProfile"]})
    return str(reply["configurationKey"][0]["value"])


def client_records(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """The charger's OCPP client log records (WARNING and up) whose message contains ``text``."""
    return [r for r in caplog.records if r.name.startswith("chargepoint.ocpp.v16.") and r.levelno >= logging.WARNING
            and text.lower() in r.getMessage().lower()]


# ---------------------------------------------------------------------------------------------- TC_085 profile 1


async def test_tc085_basic_auth_with_the_authorization_key_is_accepted(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(passwords={CP_ID: KEY}) as csms:
        config = config_for(tmp_path, csms, security_profile=1, authorization_key=KEY)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert csms.url.startswith("ws://")
            assert [(h.status, h.authorization, h.tls_version) for h in csms.handshakes] == [(101, basic(KEY), None)]
    # The logs were captured at DEBUG (websockets logged the request headers), yet show neither key nor token.
    assert any(r.name == "websockets.client" and "Authorization" in r.getMessage() for r in debug_logs.records)
    assert leaks(debug_logs, KEY) == []


async def test_tc085_wrong_key_is_refused_and_retried_with_back_off(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(passwords={CP_ID: KEY}) as csms:
        config = config_for(tmp_path, csms, security_profile=1, authorization_key=WRONG_KEY)
        async with running_charger(config) as charger:
            await until(lambda: len(csms.handshakes) >= 2, 6, "a second connection attempt")
            first, second = csms.handshakes[:2]
            assert (first.status, second.status) == (401, 401)
            assert first.authorization == second.authorization == basic(WRONG_KEY)
            assert second.at - first.at >= 0.9  # back-off (at least ~1 s), not a hot loop
            assert not charger.app.status()["csms_connected"]
            assert not csms.connected(CP_ID)
            assert client_records(debug_logs, "401")
            # Still alive and retrying: once the CSMS accepts that key, the next attempt gets in.
            csms.passwords = {CP_ID: WRONG_KEY}
            await registered(charger, csms, timeout_s=8)
    assert leaks(debug_logs, KEY, WRONG_KEY) == []


def test_tc085_config_show_redacts_the_authorization_key(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[storage]\ndir = "{tmp_path}"\n\n'
        f'[ocpp]\ncsms_url = "ws://127.0.0.1:9000/ocpp"\ncharge_point_id = "{CP_ID}"\n'
        f'security_profile = 1\nauthorization_key = "{KEY}"\n'
    )
    result = CliRunner().invoke(cli, ["config", "show", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert '"authorization_key": "********"' in result.output
    assert KEY not in result.output and token(KEY) not in result.output


# ---------------------------------------------------------------------------------------------- TC_073


async def test_tc073_authorization_key_change_reconnects_persists_and_is_write_only(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(passwords={CP_ID: KEY}) as csms:
        config = config_for(tmp_path, csms, security_profile=1, authorization_key=KEY)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert await change(csms, "AuthorizationKey", SHORT_KEY) == "Rejected"
            assert await change(csms, "AuthorizationKey", LONG_KEY) == "Rejected"
            await asyncio.sleep(0.3)
            assert len(csms.handshakes) == 1  # a rejected key changes nothing: no reconnect

            # The CSMS switches to the new password as it sends it (the open link stays up).
            csms.passwords = {CP_ID: NEW_KEY}
            mark = len(csms.frames)
            assert await change(csms, "AuthorizationKey", NEW_KEY) == "Accepted"
            answered = time.monotonic()
            await csms.wait_for_call("Heartbeat", after=mark, timeout_s=5)  # a Heartbeat resumes the registration
            assert len(csms.calls("BootNotification")) == 1  # a reconnect is no reboot
            await registered(charger, csms)
            reconnects = csms.handshakes[1:]
            assert [(h.status, h.authorization) for h in reconnects] == [(101, basic(NEW_KEY))]
            # Applied at once, not after the reconnect back-off (>= 1 s).
            assert reconnects[0].at - answered < 0.9, reconnects[0].at - answered
            assert await charger.store.get_kv("ocpp.key.AuthorizationKey") == NEW_KEY

            # Write-only: asked for by name it is a known key, listed without its value; never listed unasked.
            reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["AuthorizationKey", "SecurityProfile"]})
            assert "unknownKey" not in reply
            assert reply["configurationKey"][0] == {"key": "AuthorizationKey", "readonly": False}
            assert [k["key"] for k in reply["configurationKey"]] == ["AuthorizationKey", "SecurityProfile"]
            everything = await csms.call(CP_ID, "GetConfiguration", {})
            assert "AuthorizationKey" not in {k["key"] for k in everything["configurationKey"]}
            assert NEW_KEY not in str(everything) and KEY not in str(everything)

        # Restart on the same storage: the config file still says KEY, the OCPP-set key wins.
        restart = len(csms.handshakes)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert [(h.status, h.authorization) for h in csms.handshakes[restart:]] == [(101, basic(NEW_KEY))]

    # The ChangeConfiguration frames were logged (redacted), and no key or token appears anywhere.
    assert any(r.name == "ocpp" and "AuthorizationKey" in r.getMessage() for r in debug_logs.records)
    assert leaks(debug_logs, KEY, NEW_KEY, SHORT_KEY, LONG_KEY) == []


# ---------------------------------------------------------------------------------------------- TC_086 profile 2


def profile2(pki: TestPki, key: str = KEY) -> dict[str, Any]:
    return {"security_profile": 2, "authorization_key": key, "ca_file": str(pki.ca_cert)}


async def test_tc086_tls_with_a_verified_server_certificate_and_basic_auth(
    tmp_path: Path, pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(ssl_context=pki.server_context(), passwords={CP_ID: KEY}) as csms:
        assert csms.url.startswith("wss://")
        async with running_charger(config_for(tmp_path, csms, **profile2(pki))) as charger:
            await registered(charger, csms)
            [handshake] = csms.handshakes
            assert handshake.status == 101 and handshake.authorization == basic(KEY)
            assert handshake.tls_version in ("TLSv1.2", "TLSv1.3")
    assert leaks(debug_logs, KEY) == []


async def test_tc086_server_certificate_from_another_ca_is_refused(
    tmp_path: Path, pki: TestPki, other_pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(ssl_context=pki.server_context(), passwords={CP_ID: KEY}) as csms:
        config = config_for(tmp_path, csms, **profile2(other_pki))
        async with running_charger(config) as charger:
            # Refused during the TLS handshake, logged, and retried with back-off.
            await until(lambda: len(client_records(debug_logs, "certificate verify failed")) >= 2, 6,
                        "two refused TLS handshakes")
            failures = client_records(debug_logs, "certificate verify failed")
            assert failures[1].created - failures[0].created >= 0.9
            # Issue 13.10: the reason, and what the certificate must chain to.
            assert f"must chain to the CA in {other_pki.ca_cert}" in failures[0].getMessage()
            assert csms.handshakes == []  # no HTTP request (so no Basic-auth password) ever reached the server
            assert not csms.connected(CP_ID)
            assert not charger.app.status()["csms_connected"]
    assert leaks(debug_logs, KEY) == []


def tls11_only_server_context(pki: TestPki) -> ssl.SSLContext:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at the default level
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.load_cert_chain(pki.server_cert, pki.server_key)
    return context


async def tls_version_a_permissive_client_gets(pki: TestPki, port: int) -> str | None:
    """The TLS version a client that accepts anything down to TLS 1.0 negotiates with the server, or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.load_verify_locations(cafile=pki.ca_cert)
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=context), 5)
    except (OSError, TimeoutError):
        return None
    version = writer.get_extra_info("ssl_object").version()
    writer.close()
    return str(version)


async def test_tc086_a_server_limited_to_tls_1_1_is_refused(
    tmp_path: Path, pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    try:
        context = tls11_only_server_context(pki)
    except (ssl.SSLError, ValueError) as exc:
        pytest.skip(f"this OpenSSL cannot make a TLS 1.1 server: {exc}")
    async with RecordingCsms(ssl_context=context, passwords={CP_ID: KEY}) as csms:
        if await tls_version_a_permissive_client_gets(pki, csms.port) != "TLSv1.1":
            pytest.skip("this OpenSSL cannot serve TLS 1.1")
        async with running_charger(config_for(tmp_path, csms, **profile2(pki))) as charger:
            await until(lambda: len(client_records(debug_logs, "CSMS link down")) >= 1, 5, "a refused handshake")
            await asyncio.sleep(0.2)
            assert csms.handshakes == []
            [down, *_] = client_records(debug_logs, "CSMS link down")
            # OpenSSL's server hangs up without an alert here; with one, the reason is named (unit-tested).
            assert "during the TLS handshake (does it take TLS 1.2 or newer" in down.getMessage(), down.getMessage()
            assert not csms.connected(CP_ID)
            assert not charger.app.status()["csms_connected"]


# ---------------------------------------------------------------------------------------------- TC_087 profile 3


def profile3(pki: TestPki, cert: tuple[Path, Path] | None = None) -> dict[str, Any]:
    cert_file, key_file = cert or (pki.client_cert, pki.client_key)
    return {"security_profile": 3, "ca_file": str(pki.ca_cert),
            "client_cert_file": str(cert_file), "client_key_file": str(key_file)}


async def test_tc087_mutual_tls_with_the_charge_point_certificate(tmp_path: Path, pki: TestPki) -> None:
    server = pki.server_context(require_client_cert=True)
    async with RecordingCsms(ssl_context=server, require_client_cert=True) as csms:
        # A key left over from profile 2 must not be sent any more.
        config = config_for(tmp_path, csms, **profile3(pki), authorization_key=KEY)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            [handshake] = csms.handshakes
            assert handshake.status == 101  # the CSMS checked: client certificate CN == charge point id
            assert handshake.authorization is None  # profile 3: the certificate is the credential
            assert handshake.tls_version in ("TLSv1.2", "TLSv1.3")


async def test_tc087_a_certificate_for_another_charge_point_is_refused(tmp_path: Path, pki: TestPki) -> None:
    server = pki.server_context(require_client_cert=True)
    async with RecordingCsms(ssl_context=server, require_client_cert=True) as csms:
        config = config_for(tmp_path, csms, **profile3(pki, pki.issue_client_certificate("CP-SOMEONE-ELSE")))
        async with running_charger(config) as charger:
            await until(lambda: len(csms.handshakes) >= 1, 5, "a handshake")
            assert csms.handshakes[0].status == 403
            await asyncio.sleep(0.2)
            assert not charger.app.status()["csms_connected"]


async def test_a_client_certificate_from_another_ca_is_refused_in_the_handshake_and_logged_so(
    tmp_path: Path, pki: TestPki, other_pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    """Issue 13.10: the log points at the client certificate, not just "CSMS link down: "."""
    server = pki.server_context(require_client_cert=True)
    async with RecordingCsms(ssl_context=server, require_client_cert=True) as csms:
        config = config_for(tmp_path, csms, security_profile=3, ca_file=str(pki.ca_cert),
                            client_cert_file=str(other_pki.client_cert), client_key_file=str(other_pki.client_key))
        async with running_charger(config) as charger:
            await until(lambda: len(client_records(debug_logs, "CSMS link down")) >= 1, 5, "a refused handshake")
            assert csms.handshakes == []
            assert not charger.app.status()["csms_connected"]
    message = client_records(debug_logs, "CSMS link down")[0].getMessage()
    # Python's TLS server hangs up without an alert (a server that sends one gets it named: unit-tested).
    assert "during the TLS handshake" in message and "client certificate" in message, message


async def test_a_closed_port_is_logged_as_refused(tmp_path: Path, debug_logs: pytest.LogCaptureFixture) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = make_config(tmp_path, ocpp={"csms_url": f"ws://127.0.0.1:{port}", "charge_point_id": CP_ID})
    async with running_charger(config):
        await until(lambda: len(client_records(debug_logs, "CSMS link down")) >= 1, 5, "a refused connection")
    message = client_records(debug_logs, "CSMS link down")[0].getMessage()
    assert message == f"CSMS link down: connection refused by 127.0.0.1:{port}"


def ocpp_section(**values: Any) -> dict[str, Any]:
    return {"csms_url": "wss://csms.example:443/ocpp", "charge_point_id": CP_ID, **values}


@pytest.mark.parametrize("missing", ["client_cert_file", "client_key_file"])
def test_tc087_profile_3_without_a_client_certificate_is_an_invalid_config(tmp_path: Path, missing: str) -> None:
    section = ocpp_section(security_profile=3, client_cert_file="client.pem", client_key_file="client.key")
    del section[missing]
    with pytest.raises(ConfigError) as error:
        parse_config({"ocpp": section}, tmp_path / "config.toml")
    assert any("security_profile 3 needs client_cert_file and client_key_file" in p for p in error.value.problems)


@pytest.mark.parametrize(("section", "reason"), [
    (ocpp_section(csms_url="ws://csms.example/ocpp", security_profile=2, authorization_key=KEY), "wss://"),
    (ocpp_section(security_profile=1), "need authorization_key"),
    (ocpp_section(csms_url="ws://csms.example/ocpp", security_profile=3, client_cert_file="c.pem",
                  client_key_file="c.key"), "wss://"),
])
def test_profiles_the_config_cannot_support_are_config_errors(
    tmp_path: Path, section: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config({"ocpp": section}, tmp_path / "config.toml")
    assert any(reason in p for p in error.value.problems), error.value.problems


def test_a_config_error_does_not_echo_the_authorization_key(tmp_path: Path) -> None:
    section = ocpp_section(csms_url="ws://csms.example/ocpp", security_profile=2, authorization_key=KEY)
    with pytest.raises(ConfigError) as error:
        parse_config({"ocpp": section}, tmp_path / "config.toml")
    assert KEY not in str(error.value) and not any(KEY in p for p in error.value.problems)


# ---------------------------------------------------------------------------------------------- TC_083 / TC_084


async def test_tc083_upgrade_1_to_2_over_wss_reconnects_and_persists_tc084_no_downgrade(
    tmp_path: Path, pki: TestPki
) -> None:
    async with RecordingCsms(ssl_context=pki.server_context(), passwords={CP_ID: KEY}) as csms:
        # Profile 1 over wss:// (this charger always verifies a wss:// server, whatever the profile).
        config = config_for(tmp_path, csms, **{**profile2(pki), "security_profile": 1})
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert await security_profile(csms) == "1"
            assert await change(csms, "SecurityProfile", "3") == "Rejected"  # no client certificate configured
            assert await security_profile(csms) == "1"
            mark = len(csms.frames)
            assert await change(csms, "SecurityProfile", "2") == "Accepted"
            await csms.wait_for_call("Heartbeat", after=mark, timeout_s=5)  # a Heartbeat resumes the registration
            assert len(csms.calls("BootNotification")) == 1  # a reconnect is no reboot
            await registered(charger, csms)
            assert [(h.status, h.authorization) for h in csms.handshakes] == [(101, basic(KEY))] * 2
            assert await security_profile(csms) == "2"
            # TC_084: never back down.
            assert await change(csms, "SecurityProfile", "1") == "Rejected"
            assert await change(csms, "SecurityProfile", "0") == "Rejected"
            assert await security_profile(csms) == "2"
            assert len(csms.handshakes) == 2

        async with running_charger(config) as charger:  # the config file still says 1
            await registered(charger, csms)
            assert await security_profile(csms) == "2"
            assert await change(csms, "SecurityProfile", "1") == "Rejected"


async def test_tc083_upgrade_0_to_1_and_upgrades_the_config_cannot_support_are_rejected(
    tmp_path: Path, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms() as csms:  # ws://, no Basic auth yet
        config = config_for(tmp_path, csms, security_profile=0, authorization_key=KEY)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert csms.handshakes[0].authorization is None  # profile 0 sends no credentials
            assert await change(csms, "SecurityProfile", "2") == "Rejected"  # needs wss://
            assert await change(csms, "SecurityProfile", "3") == "Rejected"  # needs wss:// and a client cert
            assert await change(csms, "SecurityProfile", "4") == "Rejected"  # no such profile
            assert len(csms.handshakes) == 1
            csms.passwords = {CP_ID: KEY}
            mark = len(csms.frames)
            assert await change(csms, "SecurityProfile", "1") == "Accepted"
            await csms.wait_for_call("Heartbeat", after=mark, timeout_s=5)  # a Heartbeat resumes the registration
            assert len(csms.calls("BootNotification")) == 1  # a reconnect is no reboot
            await registered(charger, csms)
            assert [(h.status, h.authorization) for h in csms.handshakes[1:]] == [(101, basic(KEY))]
            assert await change(csms, "SecurityProfile", "0") == "Rejected"  # TC_084
            assert await security_profile(csms) == "1"
    assert leaks(debug_logs, KEY) == []

