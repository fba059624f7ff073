"""Reconnect back-off and the words a failed connection is logged with (issue 13 points 2 and 10)."""

from __future__ import annotations

import random
import socket
import ssl
from pathlib import Path

import pytest
from websockets.datastructures import Headers
from websockets.exceptions import InvalidMessage, InvalidStatus
from websockets.http11 import Response

from chargepoint.ocpp.transport import STABLE_LINK_S, Backoff, TransportSettings, describe_connect_failure


def test_back_off_doubles_to_its_cap_and_jitters_within_it() -> None:
    backoff = Backoff(minimum_s=1.0, maximum_s=16.0, rng=random.Random(7))
    maxima = []
    for _ in range(7):
        delay_s = backoff.next_s()
        assert backoff.minimum_s <= delay_s <= backoff.last_max_s
        maxima.append(backoff.last_max_s)
    assert maxima == [2.0, 3.0, 5.0, 9.0, 17.0, 17.0, 17.0]


def test_only_a_connection_that_lasted_resets_the_back_off() -> None:
    backoff = Backoff(rng=random.Random(1))
    for _ in range(4):
        backoff.next_s()
    backoff.link_was_up(0.2)  # accepted and closed at once: still growing
    backoff.next_s()
    assert backoff.last_max_s == 17.0
    backoff.link_was_up(STABLE_LINK_S)
    backoff.next_s()
    assert backoff.last_max_s == 2.0


WSS = TransportSettings(csms_url="wss://csms.example.net:8443/ocpp", charge_point_id="CP-1",
                        ca_file=Path("/etc/chargepoint/csms-ca.pem"))
WS = TransportSettings(csms_url="ws://10.0.0.5:9000/ocpp", charge_point_id="CP-1")


def verify_error(message: str) -> ssl.SSLCertVerificationError:
    error = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: {message}")
    error.verify_message = message
    error.reason = "CERTIFICATE_VERIFY_FAILED"
    return error


def ssl_error(cls: type[ssl.SSLError], reason: str) -> ssl.SSLError:
    error = cls(1, f"[SSL: {reason}] {reason.lower()}")
    error.reason = reason
    return error


def wrapped(cause: BaseException) -> BaseException:
    """As websockets raises some failures: its own exception, the useful one as the cause."""
    outer = InvalidMessage("did not receive a valid HTTP response")
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(("error", "settings", "expected"), [
    (verify_error("unable to get local issuer certificate"), WSS,
     "TLS: certificate verify failed (unable to get local issuer certificate): the CSMS certificate must chain "
     "to the CA in /etc/chargepoint/csms-ca.pem"),
    (verify_error("certificate has expired"), WS.__class__(csms_url="wss://x/ocpp", charge_point_id="C"),
     "TLS: certificate verify failed (certificate has expired): the CSMS certificate must chain to the system's "
     "CA store"),
    (verify_error("Hostname mismatch, certificate is not valid for 'csms.example.net'."), WSS,
     "TLS: the CSMS certificate is not for csms.example.net"),
    (ssl_error(ssl.SSLError, "TLSV1_ALERT_PROTOCOL_VERSION"), WSS, "TLS: no protocol version in common"),
    (ssl_error(ssl.SSLError, "UNSUPPORTED_PROTOCOL"), WSS, "TLS 1.2 or newer is needed"),
    (wrapped(ssl_error(ssl.SSLError, "TLSV13_ALERT_CERTIFICATE_REQUIRED")), WSS,
     "TLS: the CSMS refused our client certificate"),
    (wrapped(ssl_error(ssl.SSLError, "SSLV3_ALERT_BAD_CERTIFICATE")), WSS,
     "TLS: the CSMS refused our client certificate"),
    (ssl_error(ssl.SSLEOFError, "UNEXPECTED_EOF_WHILE_READING"), WSS,
     "TLS: the CSMS closed the connection during the handshake"),
    (InvalidStatus(Response(503, "Service Unavailable", Headers())), WS,
     "the CSMS answered HTTP 503 to the WebSocket upgrade"),
    (ConnectionRefusedError(111, "Connection refused"), WS, "connection refused by 10.0.0.5:9000"),
    (socket.gaierror(-2, "Name or service not known"), WSS,
     "cannot resolve csms.example.net (Name or service not known)"),
    (TimeoutError(), WSS, "no answer from csms.example.net:8443 within 10 s"),
    (wrapped(ConnectionResetError(104, "Connection reset by peer")), WSS,
     "csms.example.net:8443 closed the connection during the TLS handshake"),
    (OSError(113, "No route to host"), WS, "10.0.0.5:9000: No route to host"),
])
def test_a_failed_connection_says_why(error: BaseException, settings: TransportSettings, expected: str) -> None:
    assert expected in describe_connect_failure(error, settings)


def test_a_failure_without_words_is_named_by_its_type() -> None:
    assert describe_connect_failure(RuntimeError(), WS) == "RuntimeError"
