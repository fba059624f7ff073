"""OCPP 1.6 CostAndPrice (California Pricing) over DataTransfer: which message goes where, and what to answer.

Independent of the runtime: the parsed messages go to a ``CostSink`` (the charger's pricing, through the port), and
``handle_data_transfer`` returns the DataTransfer.conf status. Our own vendor message
``chargepoint``/``SetTransactionLimit`` is dispatched here too; it works whether or not the CSMS enabled the
California display feature (``CustomDisplayCostAndPrice``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from chargepoint.ports.pricing import CostSink
from chargepoint.pricing.california import (
    MESSAGE_CONNECTOR_UNPLUGGED,
    MESSAGE_FINAL_COST,
    MESSAGE_RUNNING_COST,
    MESSAGE_SET_TRANSACTION_LIMIT,
    MESSAGE_SET_USER_PRICE,
    VENDOR_ID,
    VENDOR_LIMITS,
    CaliforniaPricingError,
    parse_final_cost,
    parse_running_cost,
    parse_transaction_limit,
    parse_user_price,
)

log = logging.getLogger(__name__)

ACCEPTED = "Accepted"
REJECTED = "Rejected"
UNKNOWN_MESSAGE_ID = "UnknownMessageId"
UNKNOWN_VENDOR_ID = "UnknownVendorId"


async def _user_price(sink: CostSink, data: str) -> bool:
    await sink.user_price(parse_user_price(data))
    return True


async def _running_cost(sink: CostSink, data: str) -> bool:
    return await sink.running_cost(parse_running_cost(data))


async def _final_cost(sink: CostSink, data: str) -> bool:
    return await sink.final_cost(parse_final_cost(data))


async def _transaction_limit(sink: CostSink, data: str) -> bool:
    return await sink.transaction_limit(parse_transaction_limit(data))


_Route = Callable[[CostSink, str], Awaitable[bool]]

_COST_MESSAGES: dict[str, _Route] = {
    MESSAGE_SET_USER_PRICE: _user_price,
    MESSAGE_RUNNING_COST: _running_cost,
    MESSAGE_FINAL_COST: _final_cost,
}
_LIMIT_MESSAGES: dict[str, _Route] = {
    MESSAGE_SET_TRANSACTION_LIMIT: _transaction_limit,
}


async def handle_data_transfer(
    vendor_id: str, message_id: str | None, data: str | None, *, enabled: bool, sink: CostSink | None
) -> str:
    """The DataTransfer.conf status for a CSMS-initiated DataTransfer.

    - a vendor other than ``org.openchargealliance.costmsg`` and ``chargepoint``: UnknownVendorId;
    - costmsg while the feature is off (``enabled`` False) or without a sink: Rejected;
    - a messageId the vendor does not define: UnknownMessageId;
    - data that does not parse: Rejected (the reason is logged);
    - the sink does not know the transaction: Rejected; otherwise Accepted.

    ``chargepoint``/``SetTransactionLimit`` ignores ``enabled`` (it is not part of the California feature).
    """
    if vendor_id == VENDOR_ID:
        if not enabled or sink is None:
            log.info("DataTransfer %s/%s rejected: CostAndPrice is %s", vendor_id, message_id,
                     "disabled (CustomDisplayCostAndPrice=false)" if not enabled else "not available")
            return REJECTED
        routes = _COST_MESSAGES
    elif vendor_id == VENDOR_LIMITS:
        if sink is None:
            log.info("DataTransfer %s/%s rejected: no pricing service", vendor_id, message_id)
            return REJECTED
        routes = _LIMIT_MESSAGES
    else:
        log.info("DataTransfer from unknown vendor %s", vendor_id)
        return UNKNOWN_VENDOR_ID
    route = None if message_id is None else routes.get(message_id)
    if route is None:
        log.info("DataTransfer %s: unknown messageId %s", vendor_id, message_id)
        return UNKNOWN_MESSAGE_ID
    if data is None:
        log.warning("DataTransfer %s/%s rejected: no data", vendor_id, message_id)
        return REJECTED
    try:
        applied = await route(sink, data)
    except CaliforniaPricingError as exc:
        log.warning("DataTransfer %s/%s rejected: %s", vendor_id, message_id, exc)
        return REJECTED
    if not applied:
        log.warning("DataTransfer %s/%s rejected: unknown transaction", vendor_id, message_id)
        return REJECTED
    return ACCEPTED


def connector_unplugged_payload(transaction_id: int, at: datetime) -> dict[str, Any]:
    """The CS -> CSMS DataTransfer sent on unplug when ``CustomIdleFeeAfterStop`` kept the idle fee running."""
    if at.tzinfo is None:
        raise ValueError("connector_unplugged_payload needs an aware datetime")
    timestamp = at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "vendorId": VENDOR_ID,
        "messageId": MESSAGE_CONNECTOR_UNPLUGGED,
        "data": json.dumps({"transactionId": transaction_id, "timestamp": timestamp}),
    }
