"""What the CSMS said about prices, kept for when it cannot be asked: its ad hoc price (``DefaultPrice``) and
texts, and the price of each card (``SetUserPrice``), persisted so that sessions started offline after a
restart are priced and shown as the operator wants."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from chargepoint.ports.csms import CsmsAdapter
from chargepoint.pricing.california import (
    DefaultPrice,
    UserPrice,
    default_price_tariff,
    parse_default_price,
    parse_default_price_text,
    parse_user_price,
)
from chargepoint.pricing.tariff import Tariff, TariffError
from chargepoint.pricing.text import pick_language, text_lines
from chargepoint.store import Store

log = logging.getLogger(__name__)


class CsmsPriceCache:
    def __init__(self, store: Store, csms: Callable[[], CsmsAdapter | None]) -> None:
        self.store = store
        self._csms = csms
        self.default: DefaultPrice | None = None
        self.default_tariff: Tariff | None = None
        self.user_prices: dict[str, UserPrice] = {}

    async def load(self) -> None:
        for id_tag, data in (await self.store.user_prices()).items():
            try:
                self.user_prices[id_tag.upper()] = parse_user_price(data)
            except TariffError as exc:
                log.warning("ignoring stored user price of %s: %s", id_tag, exc)

    @property
    def display_enabled(self) -> bool:
        """The CSMS sends prices for the charger to show (California Pricing enabled)."""
        csms = self._csms()
        return csms is not None and csms.prices.display_enabled

    @property
    def online(self) -> bool:
        csms = self._csms()
        return csms is not None and csms.connected

    def language(self, preferred: str | None, fallback: str) -> str:
        """``preferred`` (a package's language), else the one the CSMS chose, else ``fallback``."""
        csms = self._csms()
        if preferred is None and csms is not None:
            preferred = csms.prices.language
        return pick_language(preferred, fallback)

    def default_price_changed(self, currency: str) -> None:
        """The CSMS's DefaultPrice (persisted by its adapter) is the charger's ad hoc price."""
        csms = self._csms()
        raw = "" if csms is None else csms.prices.default_price
        self.default, self.default_tariff = None, None
        if not raw:
            return
        try:
            self.default = parse_default_price(raw)
            if self.default.charging_price is not None:
                self.default_tariff = default_price_tariff(self.default.charging_price, currency)
        except TariffError as exc:
            log.warning("DefaultPrice in force cannot be used: %s", exc)

    def price_text(self, language: str) -> tuple[str, ...] | None:
        """The CSMS's ad hoc price text in ``language`` (its offline variant while offline), if it sent one."""
        if self.default is None or not self.display_enabled:
            return None
        offline = not self.online
        csms = self._csms()
        if csms is not None:
            raw = csms.prices.default_price_text(language)
            if raw:
                try:
                    localized = parse_default_price_text(raw)
                except TariffError as exc:
                    log.warning("DefaultPriceText,%s cannot be shown: %s", language, exc)
                else:
                    text = localized.price_text
                    if offline and localized.price_text_offline:
                        text = localized.price_text_offline
                    return text_lines(text)
        text = self.default.price_text
        if offline and self.default.price_text_offline:
            text = self.default.price_text_offline
        return text_lines(text)

    def user_price_lines(self, id_tag: str, language: str) -> tuple[str, ...] | None:
        """What the CSMS told this card it pays, in ``language`` if it can, while the display feature is on."""
        price = self.user_prices.get(id_tag.upper()) if self.display_enabled else None
        return None if price is None else price_lines_of(price, language)

    async def put_user_price(self, price: UserPrice) -> None:
        self.user_prices[price.id_token.upper()] = price
        await self.store.user_price_put(price.id_token.upper(), _user_price_json(price))


def price_lines_of(price: UserPrice, language: str) -> tuple[str, ...] | None:
    for extra in price.extra:
        if pick_language(extra.language, "") == language:
            return text_lines(extra.text)
    return None if price.price_text is None else text_lines(price.price_text)


def _user_price_json(price: UserPrice) -> str:
    return json.dumps({
        "idToken": price.id_token,
        "priceText": price.price_text,
        "priceTextExtra": [{"format": e.format, "language": e.language, "content": e.text} for e in price.extra],
    })
