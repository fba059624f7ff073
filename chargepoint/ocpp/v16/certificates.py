"""Certificate management of the OCPP 1.6 security extension (whitepaper edition 3; OCA TC_074-TC_078).

- InstallCertificate: a current, self-signed CA certificate (PEM) not installed yet, while the store has room
  (``CertificateStoreMaxLength``, both kinds together) is Accepted; anything else Rejected; a write error Failed.
- DeleteCertificate: by hash data (SHA256/384/512). NotFound if nothing matches. The last CentralSystemRootCertificate
  is not deleted at security profile 2 or 3 (Failed): the installed CSMS roots are trust anchors of the TLS link, and
  the CSMS must install the replacement first rather than leave the charger unable to verify it.
- GetInstalledCertificateIds: the hash data (SHA256) of each certificate of the kind, or NotFound.
- SignCertificate: on ExtendedTriggerMessage SignChargePointCertificate the charger makes a new EC P-256 key pair
  (the private key never leaves it, stored 0600) and sends a PKCS#10 request: CN = the charge point's serial number
  (``[identity] serial_number`` when the config file sets it, else the charge point id, which is what a CSMS checks
  at profile 3 when the two differ), O = ``CpoName``.
- CertificateSigned: the chain (PEM, leaf first) must be at most ``CertificateSignedMaxChainSize`` bytes, its leaf
  must carry the pending key, every certificate must be current, each must be signed by the next and the last by an
  installed CentralSystemRootCertificate or the CA of the CSMS connection (``[ocpp] ca_file``). Accepted: it is the
  charge point certificate from now on; at profile 3 the charger reconnects with it at once, and goes back to the
  previous certificate if that connection fails. Rejected: security event InvalidChargePointCertificate, the reason
  in techInfo.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from chargepoint.ocpp.certificates import (
    CertificateRefused,
    CertificateStore,
    RootKind,
    hash_data,
    load_chain,
    trust_anchors,
    verify_chain,
)
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.connection import CsmsConnection

log = logging.getLogger(__name__)


class Certificates:
    def __init__(self, store: CertificateStore, keys: OcppConfiguration, connection: CsmsConnection,
                 common_name: str, ca_file: Path | None, now: Callable[[], datetime],
                 security_event: Callable[[str, str], None]) -> None:
        self.store = store
        self.keys = keys
        self.connection = connection
        self.common_name = common_name
        self.ca_file = ca_file
        self._now = now
        self._security_event = security_event
        self._reconnect_due = False

    # ----------------------------------------------------------------- root certificates

    async def install(self, certificate_type: str, certificate: str) -> str:
        try:
            kind = RootKind(certificate_type)
            self.store.max_roots = self.keys.get_int("CertificateStoreMaxLength")
            await asyncio.to_thread(self.store.install_root, kind, certificate, self._now())
        except CertificateRefused as exc:
            log.warning("InstallCertificate %s rejected: %s", certificate_type, exc)
            return "Rejected"
        except ValueError:
            return "Rejected"
        except OSError as exc:
            log.error("InstallCertificate %s failed: %s", certificate_type, exc)
            return "Failed"
        return "Accepted"

    def installed_ids(self, certificate_type: str) -> list[dict[str, str]]:
        try:
            kind = RootKind(certificate_type)
        except ValueError:
            return []
        return [hash_data(certificate).to_wire() for certificate in self.store.roots(kind)]

    async def delete(self, wire: dict[str, str]) -> str:
        found = self.store.find_root(wire)
        if found is None:
            return "NotFound"
        kind, certificate = found
        if (kind is RootKind.CentralSystemRootCertificate and self.connection.security_profile >= 2
                and len(self.store.roots(kind)) == 1):
            log.warning("DeleteCertificate refused: the last CentralSystemRootCertificate stays at security "
                        "profile %d (install its replacement first)", self.connection.security_profile)
            return "Failed"
        try:
            await asyncio.to_thread(self.store.delete_root, kind, certificate)
        except OSError as exc:
            log.error("DeleteCertificate failed: %s", exc)
            return "Failed"
        return "Accepted"

    # ----------------------------------------------------------------- the charge point certificate

    async def sign_request(self) -> None:
        """ExtendedTriggerMessage SignChargePointCertificate: a new key pair and SignCertificate."""
        csr = await asyncio.to_thread(self.store.new_key_and_csr, self.common_name, self.keys["CpoName"])
        reply = await self.connection.call("SignCertificate", {"csr": csr}, triggered=True)
        status = None if reply is None else reply.get("status")
        if status == "Accepted":
            log.info("the CSMS accepted our certificate signing request (CN=%s)", self.common_name)
        else:
            log.warning("SignCertificate answered %s: no CertificateSigned is to be expected", status)

    async def signed(self, chain_pem: str) -> str:
        """CertificateSigned: Accepted (installed) or Rejected (with the security event)."""
        try:
            await self._check_and_install(chain_pem)
        except CertificateRefused as exc:
            log.warning("CertificateSigned rejected: %s", exc)
            self._security_event("InvalidChargePointCertificate", str(exc))
            return "Rejected"
        except OSError as exc:
            log.error("CertificateSigned: cannot install the certificate: %s", exc)
            self._security_event("InvalidChargePointCertificate", f"cannot install the certificate: {exc}")
            return "Rejected"
        log.info("installed the new charge point certificate")
        self._reconnect_due = self.connection.change_credentials(client_certificate=True)
        return "Accepted"

    async def _check_and_install(self, chain_pem: str) -> None:
        limit = self.keys.get_int("CertificateSignedMaxChainSize")
        size = len(chain_pem.encode("utf-8"))
        if size > limit:
            raise CertificateRefused(f"the chain is {size} bytes, more than CertificateSignedMaxChainSize {limit}")
        chain = load_chain(chain_pem)
        pending = await asyncio.to_thread(self.store.pending_public_key)
        if pending is None:
            raise CertificateRefused("no certificate signing request is pending")
        leaf_key = chain[0].public_key().public_bytes(serialization.Encoding.DER,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)
        if leaf_key != pending:
            raise CertificateRefused("the certificate is not for the key of our signing request")
        anchors = await asyncio.to_thread(trust_anchors, self.store, self.ca_file)
        verify_chain(chain, anchors, self._now())
        await asyncio.to_thread(self.store.install_charge_point_certificate, chain_pem)

    def reconnect_if_due(self) -> None:
        """After the answer to CertificateSigned: at profile 3 the new certificate is used on a new connection."""
        if self._reconnect_due:
            self._reconnect_due = False
            log.info("reconnecting with the new charge point certificate")
            self.connection.request_reconnect()

    def restore_previous(self) -> None:
        """The connection with the new certificate failed (the connection is back to the previous credentials)."""
        self.store.restore_previous()
        log.error("the new charge point certificate did not work: back to the previous one")

    def new_certificate_works(self) -> None:
        self.store.forget_previous()
