"""Who may charge, the OCPP 1.6 way: local authorization list and cache (decided by ``core.ocpp_auth``), then
Authorize; whatever the CSMS answers about an idTag is cached and persisted."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from chargepoint.core.ocpp_auth import Authorizer, AuthSettings, LocalDecision
from chargepoint.ocpp.config_keys import OcppConfiguration
from chargepoint.ocpp.v16.connection import CsmsConnection
from chargepoint.ocpp.v16.wire import parse_time
from chargepoint.ports.csms import Authorization
from chargepoint.store import Store

log = logging.getLogger(__name__)


class OcppAuthorization:
    def __init__(self, keys: OcppConfiguration, store: Store, connection: CsmsConnection) -> None:
        self.keys = keys
        self.store = store
        self.connection = connection
        self.authorizer = Authorizer(self.settings())

    def settings(self) -> AuthSettings:
        k = self.keys
        return AuthSettings(
            local_authorize_offline=k.get_bool("LocalAuthorizeOffline"),
            local_pre_authorize=k.get_bool("LocalPreAuthorize"),
            authorization_cache_enabled=k.get_bool("AuthorizationCacheEnabled"),
            local_auth_list_enabled=k.get_bool("LocalAuthListEnabled"),
            allow_offline_tx_for_unknown_id=k.get_bool("AllowOfflineTxForUnknownId"),
            local_auth_list_max_length=k.get_int("LocalAuthListMaxLength"),
            send_local_list_max_length=k.get_int("SendLocalListMaxLength"),
        )

    async def load(self) -> None:
        version, local_list = await self.store.local_list_all()
        self.authorizer = Authorizer(self.settings(), version, local_list, await self.store.auth_cache_all())

    def keys_changed(self) -> None:
        self.authorizer.settings = self.settings()

    async def authorize(self, id_tag: str) -> Authorization:
        """Local list and cache per the OCPP rules, then the CSMS; when the CSMS cannot be asked, the offline
        rules."""
        outcome = self.authorizer.decide(id_tag, datetime.now(UTC), online=self.connection.connected)
        if outcome.decision is LocalDecision.AskCsms:
            reply = await self.connection.call("Authorize", {"idTag": id_tag})
            if reply is not None:
                info = reply.get("idTagInfo", {})
                await self.remember_id_tag_info(id_tag, info)
                return Authorization(info.get("status") == "Accepted", info.get("parentIdTag"))
            outcome = self.authorizer.decide(id_tag, datetime.now(UTC), online=False)
        log.info("idTag %s decided locally (%s): %s", id_tag, outcome.source, outcome.decision)
        return Authorization(outcome.decision is LocalDecision.Accepted, outcome.parent_id_tag)

    async def remember_id_tag_info(self, id_tag: str, info: dict[str, Any]) -> None:
        """Cache an IdTagInfo the CSMS sent (Authorize, StartTransaction and StopTransaction answers)."""
        status = info.get("status")
        if not isinstance(status, str):
            return
        expiry = info.get("expiryDate")
        try:
            expiry_date = parse_time(expiry) if isinstance(expiry, str) else None
        except ValueError:
            expiry_date = None
        changes = self.authorizer.csms_answered(id_tag, status, expiry_date, info.get("parentIdTag"), datetime.now(UTC))
        for change in changes:
            if change.put is not None:
                await self.store.auth_cache_put(change.put)
            if change.delete is not None:
                await self.store.auth_cache_delete([change.delete])

    async def clear_cache(self) -> bool:
        accepted = self.authorizer.clear_cache()
        await self.store.auth_cache_clear()
        return accepted

    async def send_local_list(self, version: int, update_type: str, entries: list[Any] | None) -> str:
        result = self.authorizer.send_local_list(version, update_type, entries)
        if result.status == "Accepted":
            await self.store.local_list_update(result.version, result.entries, result.full)
        return str(result.status)
