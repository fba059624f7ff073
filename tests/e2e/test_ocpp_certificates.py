"""Certificate management of the OCPP 1.6 security extension on the wire (OCA TC_074-TC_078): real TLS on
127.0.0.1, the test CSMS, and a test CA that signs the charger's certificate requests with ``cryptography``.

Hash data is checked against an independent implementation: the CertID of an OCSP request built by
``cryptography`` (RFC 6960 defines issuerNameHash and issuerKeyHash as OCPP does).
"""

from __future__ import annotations

import asyncio
import logging
import stat
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from chargepoint.config.schema import Config
from simulators.csms import TestCsms, TestPki
from simulators.file_server import TestFileServer
from tests.e2e.conftest import CP_ID
from tests.e2e.ocpp_harness import keeping_recent_log, ocpp_config
from tests.integration.harness import Charger, running_charger

KEY = "Initial-Key-0042"
CPO = "Test CPO Ltd"
CP_DIR = Path("certs") / "ChargePointCertificate"


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass(frozen=True)
class Handshake:
    status: int
    client_certificate: bytes | None  # DER of the certificate the charger presented


class RecordingCsms(TestCsms):
    """The test CSMS, also recording the client certificate each connection presented."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.handshakes: list[Handshake] = []

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        response = super()._process_request(connection, request)
        ssl_object = connection.transport.get_extra_info("ssl_object")
        der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
        self.handshakes.append(Handshake(101 if response is None else response.status_code, der))
        return response


@pytest.fixture
def recent_log() -> Iterator[None]:
    with keeping_recent_log(logging.DEBUG):
        yield


def config_for(tmp_path: Path, csms: TestCsms, **ocpp: Any) -> Config:
    return ocpp_config(tmp_path, csms, ocpp=ocpp, charger={"meter_poll_interval_s": 5.0})


def profile2(pki: TestPki, ca: Path | None = None) -> dict[str, Any]:
    return {"security_profile": 2, "authorization_key": KEY, "ca_file": str(ca or pki.ca_cert)}


def profile3(pki: TestPki) -> dict[str, Any]:
    return {"security_profile": 3, "ca_file": str(pki.ca_cert), "client_cert_file": str(pki.client_cert),
            "client_key_file": str(pki.client_key)}


async def until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


async def registered(charger: Charger, csms: TestCsms, timeout_s: float = 5.0) -> None:
    """Registered, and done with the statuses it sends after registering (see test_ocpp_security.registered)."""
    await charger.wait_for(lambda: charger.app.status()["csms_connected"], timeout_s, "registered")
    await csms.wait_for_call("StatusNotification", lambda p: p["connectorId"] == 1, timeout_s=5)
    await csms.call(CP_ID, "GetConfiguration", {"key": ["NumberOfConnectors"]})


# ---------------------------------------------------------------------------------------------- the test CA


def ca_of(pki: TestPki) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return cert, key


def sign(pki: TestPki, subject: x509.Name, public_key: Any, *, days: tuple[int, int] = (-1, 30),
         ca: bool = False) -> x509.Certificate:
    """A certificate for ``public_key`` issued by the test CA, valid from ``days[0]`` to ``days[1]`` from now."""
    issuer, issuer_key = ca_of(pki)
    now = datetime.now(UTC)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer.subject).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now + timedelta(days=days[0])).not_valid_after(now + timedelta(days=days[1]))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
                                        critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def self_signed_root(common_name: str, *, days: tuple[int, int] = (-1, 365), ca: bool = True) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now + timedelta(days=days[0])).not_valid_after(now + timedelta(days=days[1]))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def pem(*certificates: x509.Certificate) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certificates)


def expected_hash_data(certificate: x509.Certificate, algorithm: hashes.HashAlgorithm | None = None
                       ) -> dict[str, str]:
    """OCPP CertificateHashData of a root, from an OCSP CertID that cryptography builds (issuer = itself)."""
    algorithm = algorithm or hashes.SHA256()
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, certificate, algorithm).build()
    return {"hashAlgorithm": algorithm.name.upper(), "issuerNameHash": request.issuer_name_hash.hex(),
            "issuerKeyHash": request.issuer_key_hash.hex(), "serialNumber": format(request.serial_number, "x")}


async def signing_request(csms: TestCsms, charger: Charger) -> x509.CertificateSigningRequest:
    """ExtendedTriggerMessage SignChargePointCertificate; the CSR of the SignCertificate that follows."""
    mark = len(csms.frames)
    reply = await csms.call(CP_ID, "ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"})
    assert reply == {"status": "Accepted"}
    frame = await csms.wait_for_call("SignCertificate", after=mark, timeout_s=5)
    assert frame.payload is not None
    return x509.load_pem_x509_csr(frame.payload["csr"].encode())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def security_events(csms: TestCsms, kind: str) -> list[str]:
    return [str(f.payload["techInfo"]) for f in csms.calls("SecurityEventNotification")
            if f.payload is not None and f.payload["type"] == kind]


def key_material(path: Path) -> list[str]:
    """The base64 lines of a PEM private key: what must never leave the key file."""
    return [line for line in path.read_text().splitlines() if line and not line.startswith("-----")]


# ---------------------------------------------------------------------------------------------- TC_074


async def test_tc074_a_new_key_pair_signed_by_the_csms_becomes_the_profile_3_client_certificate(
    tmp_path: Path, pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    server = pki.server_context(require_client_cert=True)
    async with RecordingCsms(ssl_context=server, require_client_cert=True) as csms:
        config = config_for(tmp_path, csms, **profile3(pki))
        configured = x509.load_pem_x509_certificate(pki.client_cert.read_bytes()).public_bytes(
            serialization.Encoding.DER)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert csms.handshakes[0].client_certificate == configured
            assert (await csms.call(CP_ID, "ChangeConfiguration", {"key": "CpoName", "value": CPO}))["status"] == \
                "Accepted"

            csr = await signing_request(csms, charger)
            assert csr.is_signature_valid
            assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == CP_ID
            assert csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == CPO
            pending = tmp_path / CP_DIR / "pending-key.pem"
            assert mode(pending) == 0o600 and mode(tmp_path / "certs") == 0o700
            pending_key = serialization.load_pem_private_key(pending.read_bytes(), password=None)
            spki = serialization.PublicFormat.SubjectPublicKeyInfo
            assert pending_key.public_key().public_bytes(serialization.Encoding.DER, spki) == \
                csr.public_key().public_bytes(serialization.Encoding.DER, spki)  # the CSR is for the charger's key
            secret_lines = key_material(pending)

            leaf = sign(pki, csr.subject, csr.public_key())
            chain = pem(leaf, ca_of(pki)[0])
            mark = len(csms.handshakes)
            assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": chain}) == {"status": "Accepted"}
            # At profile 3 the charger reconnects at once, presenting the new certificate.
            await until(lambda: any(h.status == 101 for h in csms.handshakes[mark:]), 5, "a reconnect")
            [reconnect] = csms.handshakes[mark:]
            assert reconnect.client_certificate == leaf.public_bytes(serialization.Encoding.DER)
            await registered(charger, csms)
            installed = tmp_path / CP_DIR
            assert mode(installed / "key.pem") == 0o600 and mode(installed / "cert.pem") == 0o644
            assert key_material(installed / "key.pem") == secret_lines
            assert not pending.exists()
            assert not (installed / "previous-key.pem").exists()  # the new one worked: nothing to go back to
            assert security_events(csms, "InvalidChargePointCertificate") == []

        # After a restart the installed certificate still wins over the config file's.
        restart = len(csms.handshakes)
        async with running_charger(config) as charger:
            await registered(charger, csms)
            assert csms.handshakes[restart].client_certificate == leaf.public_bytes(serialization.Encoding.DER)

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in debug_logs.records:
        text = formatter.format(record)
        assert not any(line in text for line in secret_lines), f"private key material logged: {text[:200]}"
        assert "PRIVATE KEY" not in text


async def test_a_new_certificate_the_csms_refuses_is_replaced_by_the_previous_one(
    tmp_path: Path, pki: TestPki
) -> None:
    """The CSMS signed a certificate its own TLS front end refuses (CN of another charger): the charger goes back
    to the certificate that worked, and says so."""
    server = pki.server_context(require_client_cert=True)
    async with (RecordingCsms(ssl_context=server, require_client_cert=True) as csms,
                running_charger(config_for(tmp_path, csms, **profile3(pki))) as charger):
            await registered(charger, csms)
            csr = await signing_request(csms, charger)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "CP-SOMEONE-ELSE")])
            leaf = sign(pki, subject, csr.public_key())
            mark = len(csms.handshakes)
            assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": pem(leaf)}) == \
                {"status": "Accepted"}
            await until(lambda: any(h.status == 101 for h in csms.handshakes[mark:]), 8, "a reconnect that works")
            attempts = csms.handshakes[mark:]
            assert attempts[0].status == 403
            assert attempts[0].client_certificate == leaf.public_bytes(serialization.Encoding.DER)
            assert attempts[-1].client_certificate == x509.load_pem_x509_certificate(
                pki.client_cert.read_bytes()).public_bytes(serialization.Encoding.DER)
            await registered(charger, csms)
            await csms.wait_for_call("SecurityEventNotification",
                                     lambda p: p["type"] == "ReconfigurationOfSecurityParameters"
                                     and "charge point certificate" in p["techInfo"], timeout_s=5)
            assert not (tmp_path / CP_DIR / "cert.pem").exists()  # no certificate of ours: the config file's


# ---------------------------------------------------------------------------------------------- TC_077


async def test_tc077_a_chain_that_does_not_check_out_is_rejected_with_a_security_event(
    tmp_path: Path, csms: TestCsms, pki: TestPki, other_pki: TestPki
) -> None:
    # Profile 0: the chain must still lead to the CA of the CSMS connection (ca_file) or an installed root.
    async with running_charger(config_for(tmp_path, csms, ca_file=str(pki.ca_cert))) as charger:
        await registered(charger, csms)
        ours = await signing_request(csms, charger)
        ours_subject, ours_key = ours.subject, ours.public_key()
        stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
        cases = {
            "not PEM": ("MIIB-not-a-certificate", "not a PEM certificate"),
            "another key": (pem(sign(pki, ours_subject, stranger)), "not for the key of our signing request"),
            "expired": (pem(sign(pki, ours_subject, ours_key, days=(-30, -1))), "expired"),
            "not yet valid": (pem(sign(pki, ours_subject, ours_key, days=(2, 30))), "not valid before"),
            "unknown CA": (pem(sign(other_pki, ours_subject, ours_key)), "does not lead to a trusted root"),
            "broken chain": (pem(sign(pki, ours_subject, ours_key), self_signed_root("Unrelated")),
                             "not signed by the next one"),
        }
        for name, (chain, reason) in cases.items():
            reply = await csms.call(CP_ID, "CertificateSigned", {"certificateChain": chain})
            assert reply == {"status": "Rejected"}, name
            event = await csms.wait_for_call(
                "SecurityEventNotification",
                lambda p, r=reason: p["type"] == "InvalidChargePointCertificate" and r in p["techInfo"], timeout_s=5)
            assert event.payload is not None, name
        assert len(security_events(csms, "InvalidChargePointCertificate")) == len(cases)

        # Longer than CertificateSignedMaxChainSize (read-only; the 1.6 schema already caps the field at 10000
        # characters, so this model's smaller limit is set here as a smaller charger would have it).
        good = pem(sign(pki, ours_subject, ours_key), ca_of(pki)[0])
        assert charger.ocpp is not None
        charger.ocpp.keys.set_internal("CertificateSignedMaxChainSize", str(len(good) - 1))
        assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": good}) == {"status": "Rejected"}
        await csms.wait_for_call("SecurityEventNotification", lambda p: "CertificateSignedMaxChainSize" in
                                 p["techInfo"], timeout_s=5)
        charger.ocpp.keys.set_internal("CertificateSignedMaxChainSize", "10000")
        assert not (tmp_path / CP_DIR / "cert.pem").exists()

        # The pending key is still pending: the right chain is accepted (at profile 0 it is kept for later), and a
        # second one finds no request pending.
        mark = len(csms.frames)
        assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": good}) == {"status": "Accepted"}
        assert (tmp_path / CP_DIR / "cert.pem").read_text() == good
        assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": good}) == {"status": "Rejected"}
        await csms.wait_for_call("SecurityEventNotification", lambda p: "no certificate signing request is pending"
                                 in p["techInfo"], after=mark, timeout_s=5)
        assert csms.connected(CP_ID) and len(csms.calls("BootNotification")) == 1  # no reconnect at profile 0


async def test_the_csr_names_the_serial_number_when_the_config_file_sets_one(tmp_path: Path, csms: TestCsms) -> None:
    config = ocpp_config(tmp_path, csms, identity={"serial_number": "SN-0042"}, charger={"meter_poll_interval_s": 5.0})
    async with running_charger(config) as charger:
        await registered(charger, csms)
        csr = await signing_request(csms, charger)
        assert csr.subject.rfc4514_string() == "CN=SN-0042"  # CpoName is empty: no O


async def test_extended_trigger_message_sends_what_it_asked_for(tmp_path: Path, csms: TestCsms) -> None:
    async with running_charger(config_for(tmp_path, csms)) as charger:
        await registered(charger, csms)
        for requested, action in [("Heartbeat", "Heartbeat"), ("StatusNotification", "StatusNotification"),
                                  ("FirmwareStatusNotification", "SignedFirmwareStatusNotification"),
                                  ("LogStatusNotification", "LogStatusNotification")]:
            mark = len(csms.frames)
            reply = await csms.call(CP_ID, "ExtendedTriggerMessage", {"requestedMessage": requested})
            assert reply == {"status": "Accepted"}, requested
            frame = await csms.wait_for_call(action, after=mark, timeout_s=5)
            if action in ("SignedFirmwareStatusNotification", "LogStatusNotification"):
                assert frame.payload == {"status": "Idle"}  # nothing under way: no requestId
        reply = await csms.call(CP_ID, "ExtendedTriggerMessage", {"requestedMessage": "StatusNotification",
                                                                  "connectorId": 7})
        assert reply == {"status": "Rejected"}


# ---------------------------------------------------------------------------------------------- TC_075, TC_076


async def test_tc075_install_both_kinds_and_get_their_ids_with_correct_hash_data(
    tmp_path: Path, csms: TestCsms, pki: TestPki
) -> None:
    csms_root, manufacturer_root = self_signed_root("CSMS Root"), self_signed_root("Manufacturer Root")
    async with running_charger(config_for(tmp_path, csms)) as charger:
        await registered(charger, csms)
        for kind in ("CentralSystemRootCertificate", "ManufacturerRootCertificate"):
            assert await csms.call(CP_ID, "GetInstalledCertificateIds", {"certificateType": kind}) == \
                {"status": "NotFound"}

        async def install(kind: str, certificate: str) -> str:
            reply = await csms.call(CP_ID, "InstallCertificate", {"certificateType": kind, "certificate": certificate})
            return str(reply["status"])

        assert await install("CentralSystemRootCertificate", pem(csms_root)) == "Accepted"  # TC_075_1
        assert await install("ManufacturerRootCertificate", pem(manufacturer_root)) == "Accepted"  # TC_075_2
        for kind, root in (("CentralSystemRootCertificate", csms_root),
                           ("ManufacturerRootCertificate", manufacturer_root)):
            reply = await csms.call(CP_ID, "GetInstalledCertificateIds", {"certificateType": kind})
            assert reply == {"status": "Accepted", "certificateHashData": [expected_hash_data(root)]}, kind
        [stored] = (tmp_path / "certs" / "CentralSystemRootCertificate").glob("*.pem")
        assert mode(stored) == 0o644

        refused = {
            "duplicate": pem(csms_root),
            "not PEM": "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
            "not a CA": pki.client_cert.read_text(),
            "expired": pem(self_signed_root("Old Root", days=(-30, -1))),
            "not self-signed": pem(sign(pki, x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Sub CA")]),
                                        ec.generate_private_key(ec.SECP256R1()).public_key(), ca=True)),
            "two certificates": pem(self_signed_root("A"), self_signed_root("B")),
        }
        for name, certificate in refused.items():
            assert await install("CentralSystemRootCertificate", certificate) == "Rejected", name

        # CertificateStoreMaxLength (10) counts both kinds: 8 more fit, the 11th is refused.
        reply = await csms.call(CP_ID, "GetConfiguration", {"key": ["CertificateStoreMaxLength",
                                                                    "CertificateSignedMaxChainSize",
                                                                    "AdditionalRootCertificateCheck"]})
        assert {k["key"]: (k["value"], k["readonly"]) for k in reply["configurationKey"]} == {
            "CertificateStoreMaxLength": ("10", True), "CertificateSignedMaxChainSize": ("10000", True),
            "AdditionalRootCertificateCheck": ("false", True)}
        for index in range(8):
            assert await install("ManufacturerRootCertificate", pem(self_signed_root(f"Root {index}"))) == "Accepted"
        assert await install("CentralSystemRootCertificate", pem(self_signed_root("One too many"))) == "Rejected"
        reply = await csms.call(CP_ID, "GetInstalledCertificateIds", {"certificateType": "ManufacturerRootCertificate"})
        assert len(reply["certificateHashData"]) == 9


async def test_tc076_delete_by_hash_data_and_the_last_csms_root_stays_at_profile_2(
    tmp_path: Path, pki: TestPki, other_pki: TestPki
) -> None:
    csms_ca = ca_of(pki)[0]
    spare = self_signed_root("Spare CSMS Root")
    async with RecordingCsms(ssl_context=pki.server_context(), passwords={CP_ID: KEY}) as csms:
        async with running_charger(config_for(tmp_path, csms, **profile2(pki))) as charger:
            await registered(charger, csms)
            for root in (csms_ca, spare):
                reply = await csms.call(CP_ID, "InstallCertificate", {"certificateType": "CentralSystemRootCertificate",
                                                                      "certificate": pem(root)})
                assert reply == {"status": "Accepted"}

        # The installed root is trusted for the CSMS connection: with a config CA that did not issue the CSMS's
        # certificate the charger still connects.
        restart = len(csms.handshakes)
        async with running_charger(config_for(tmp_path, csms, **profile2(pki, other_pki.ca_cert))) as charger:
            await registered(charger, csms)
            assert csms.handshakes[restart].status == 101

            async def delete(hash_data: dict[str, str]) -> str:
                reply = await csms.call(CP_ID, "DeleteCertificate", {"certificateHashData": hash_data})
                return str(reply["status"])

            wrong_serial = expected_hash_data(spare) | {"serialNumber": "1234"}
            assert await delete(wrong_serial) == "NotFound"
            # SHA384 and uppercase hex name the same certificate (TC_076).
            spare_ids = {k: v.upper() if k != "hashAlgorithm" else v
                         for k, v in expected_hash_data(spare, hashes.SHA384()).items()}
            assert await delete(spare_ids) == "Accepted"
            assert await delete(spare_ids) == "NotFound"
            reply = await csms.call(CP_ID, "GetInstalledCertificateIds",
                                    {"certificateType": "CentralSystemRootCertificate"})
            assert reply["certificateHashData"] == [expected_hash_data(csms_ca)]
            # The last CSMS root at profile 2: Failed, kept (documented choice).
            assert await delete(expected_hash_data(csms_ca)) == "Failed"
            reply = await csms.call(CP_ID, "GetInstalledCertificateIds",
                                    {"certificateType": "CentralSystemRootCertificate"})
            assert reply["status"] == "Accepted"


# ---------------------------------------------------------------------------------------------- TC_078


async def test_tc078_an_untrusted_csms_certificate_is_reported_once_the_link_is_back(
    tmp_path: Path, pki: TestPki, other_pki: TestPki, debug_logs: pytest.LogCaptureFixture
) -> None:
    async with RecordingCsms(ssl_context=pki.server_context(), passwords={CP_ID: KEY}) as impostor:
        port = impostor.port
        config = config_for(tmp_path, impostor, **profile2(pki, other_pki.ca_cert))
        async with running_charger(config) as charger:
            await until(lambda: sum(r.getMessage().startswith("CSMS link down: TLS: certificate verify failed")
                                    for r in debug_logs.records) >= 2, 8, "two refused handshakes")
            await impostor.stop()
            async with RecordingCsms(port=port, ssl_context=other_pki.server_context(),
                                     passwords={CP_ID: KEY}) as csms:
                await registered(charger, csms, timeout_s=10)
                frame = await csms.wait_for_call("SecurityEventNotification",
                                                 lambda p: p["type"] == "InvalidCentralSystemCertificate",
                                                 timeout_s=5)
                assert frame.payload is not None and "certificate verify failed" in frame.payload["techInfo"]
                await asyncio.sleep(0.3)
                # Once per run of failed connections, not once per attempt.
                assert len(security_events(csms, "InvalidCentralSystemCertificate")) == 1


# ---------------------------------------------------------------------------------------------- no key leaves


async def test_the_private_key_is_in_no_diagnostics_bundle(
    tmp_path: Path, csms: TestCsms, pki: TestPki, recent_log: None
) -> None:
    with TestFileServer(tmp_path / "served", tmp_path / "received") as files:
        async with running_charger(config_for(tmp_path, csms, ca_file=str(pki.ca_cert))) as charger:
            await registered(charger, csms)
            csr = await signing_request(csms, charger)
            chain = pem(sign(pki, csr.subject, csr.public_key()))
            assert await csms.call(CP_ID, "CertificateSigned", {"certificateChain": chain}) == {"status": "Accepted"}
            secret_lines = key_material(tmp_path / CP_DIR / "key.pem")
            reply = await csms.call(CP_ID, "GetDiagnostics", {"location": f"{files.url}/in/"})
            await csms.wait_for_call("DiagnosticsStatusNotification", lambda p: p["status"] == "Uploaded",
                                     timeout_s=10)
        with tarfile.open(files.upload_dir / reply["fileName"]) as tar:
            for member in tar.getmembers():
                data = tar.extractfile(member)
                assert data is not None
                text = data.read().decode()
                assert "PRIVATE KEY" not in text, member.name
                assert not any(line in text for line in secret_lines), member.name
                if member.name == "ocpp-frames.txt":
                    assert "SignCertificate" in text  # the bundle did see the certificate exchange
