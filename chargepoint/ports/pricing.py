"""Prices between the charger and a backend: the costs a CSMS sends, and the price settings it holds.

The California Pricing messages of OCPP 1.6 (and their OCPP 2.1 counterparts, later) arrive as the parsed
values of ``chargepoint.pricing.california``; the adapter parses, the charger applies.
"""

from __future__ import annotations

from typing import Protocol

from chargepoint.pricing.california import FinalCost, RunningCost, TransactionLimit, UserPrice


class CostSink(Protocol):
    """Where the CSMS's cost and price messages go (the runtime's pricing service).

    Each method returns once the message is applied (shown, stored); ``False`` means the transaction it
    names is not known here, and the CSMS gets ``Rejected``.
    """

    async def user_price(self, price: UserPrice) -> None: ...

    async def running_cost(self, cost: RunningCost) -> bool: ...

    async def final_cost(self, cost: FinalCost) -> bool: ...

    async def transaction_limit(self, limit: TransactionLimit) -> bool: ...


class ChargerPricing(CostSink, Protocol):
    """The charger's prices as an adapter may reach them."""

    def prices_changed(self) -> None:
        """The backend changed its price settings (``CsmsPrices``): idle displays show the new price."""
        ...


class CsmsPrices(Protocol):
    """The price settings a CSMS holds on the charger (OCPP 1.6: the CostAndPrice configuration keys)."""

    @property
    def display_enabled(self) -> bool:
        """The CSMS sends prices and costs for the charger to show (``CustomDisplayCostAndPrice``)."""
        ...

    @property
    def default_price(self) -> str:
        """The CSMS's ad hoc price as it sent it (``DefaultPrice`` JSON); empty when it set none."""
        ...

    @property
    def language(self) -> str:
        """The display language the CSMS chose (``Language``); empty when it chose none."""
        ...

    def default_price_text(self, language: str) -> str:
        """The CSMS's price text in ``language`` (``DefaultPriceText,<language>``); empty when it has none."""
        ...
