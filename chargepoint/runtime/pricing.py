"""Pricing in the runtime: picks each session's tariff, prices every meter sample, enforces limits and prepaid
budgets, drives the display, and keeps what the CSMS says about prices (California Pricing).

The arithmetic is in :mod:`chargepoint.pricing`; this adapter only feeds it and moves its results to the store,
the display and the core. Everything here runs on the event loop and is quick: a meter sample costs a fraction
of a millisecond (``python -m bench --pricing``).

Size: a session's pricing state (tariff choice, cost meter, limits, prepaid budget, what the display shows, what
the CSMS said) is one thing that every step of the session reads and writes; split over modules it would be
passed around whole.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from chargepoint.config.schema import Config, PricingSettings
from chargepoint.core.commands import ConnectorStatus
from chargepoint.core.events import Event, LimitReached
from chargepoint.ports.csms import CsmsAdapter
from chargepoint.pricing.california import (
    FinalCost,
    RunningCost,
    TransactionLimit,
    TriggerMeterValue,
    UserPrice,
)
from chargepoint.pricing.cost import CostBreakdown, CostMeter, Sample, SessionState, waived
from chargepoint.pricing.currencies import parse_amount
from chargepoint.pricing.limits import COST_LIMIT, SessionLimits
from chargepoint.pricing.packages import Choice, Package, choose
from chargepoint.pricing.serialize import tariff_to_json
from chargepoint.pricing.tariff import MoneyFormat, Rounding, Tariff
from chargepoint.pricing.text import (
    message_text,
    price_lines,
    receipt_lines,
    running_lines,
    text_lines,
)
from chargepoint.runtime import views
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.runtime.csms_prices import CsmsPriceCache, price_lines_of
from chargepoint.runtime.price_screen import PriceScreen
from chargepoint.store import PrepaidAccount, PricingStart, PricingUpdate, Store
from hal.protocols import DisplayKind, DisplayMessage

log = logging.getLogger(__name__)


class PricingHost(Protocol):
    """What the pricing service needs of the charger's runtime."""

    @property
    def connectors(self) -> Mapping[int, ConnectorRuntime]: ...

    @property
    def csms(self) -> CsmsAdapter | None: ...

    def post(self, connector_id: int, event: Event) -> None: ...

    def qr_text(self, c: ConnectorRuntime) -> str | None: ...

# Energy flows only in Charging. The EV occupies the connector without drawing in SuspendedEV (paused, or before
# its first energy), Finishing (done) and Preparing; in every other status the charger holds power back.
_CHARGING_STATUSES = frozenset({ConnectorStatus.Charging})
_IDLE_STATUSES = frozenset({ConnectorStatus.SuspendedEV, ConnectorStatus.Finishing, ConnectorStatus.Preparing})
_LAST_VALID_KEY = "pricing.last_valid"


@dataclass(slots=True)
class PricedSession:
    """The pricing side of one running session."""

    id_tag: str
    choice: Choice
    meter: CostMeter | None
    limits: SessionLimits
    language: str
    started_at: datetime
    meter_start_Wh: int
    state: SessionState
    last_energy_Wh: int
    breakdown: CostBreakdown | None = None
    csms_cost: Decimal | None = None
    csms_text: str | None = None
    limit_hit: str | None = None
    trigger: TriggerMeterValue | None = None
    trigger_handle: asyncio.TimerHandle | None = None
    last_display_s: float = field(default=0.0)
    prepaid_tag: str | None = None  # the prepaid account that pays, shared with the card's other sessions

    @property
    def cost(self) -> Decimal:
        """The local cost so far (0 unpriced)."""
        return Decimal(0) if self.breakdown is None else self.breakdown.total_incl_tax

    @property
    def energy_Wh(self) -> int:
        return max(0, self.last_energy_Wh - self.meter_start_Wh)


class PricingService:
    def __init__(self, config: Config, store: Store, app: PricingHost, rejected: list[str] | None = None) -> None:
        self.config = config
        self.store = store
        self.app = app
        self.rejected = list(rejected or ())
        self._apply(config.pricing)
        self.csms_prices = CsmsPriceCache(store, lambda: app.csms)
        self.prepaid: dict[str, PrepaidAccount] = {}
        self._card_budgets: dict[int, Decimal] = {}  # connector -> the pre-authorised amount of the next session
        self.sessions: dict[int, PricedSession] = {}
        self.screen = PriceScreen(lambda: self.settings.receipt_display_s)
        self.screen.message_over = self._message_over

    # ----------------------------------------------------------------- start-up and CSMS-cached state

    def _apply(self, settings: PricingSettings) -> None:
        self.settings = settings
        self.money = MoneyFormat(settings.decimals, Rounding(settings.rounding))
        self.tz = ZoneInfo(settings.time_zone)
        self.currency = settings.currency
        self.default_tariff: Tariff | None = (
            None if settings.default_tariff is None else settings.tariff(settings.default_tariff)
        )
        self.packages = [
            Package(
                name=p.name,
                tariff=settings.tariff(p.tariff),
                groups=frozenset(g.upper() for g in p.groups),
                id_tag_patterns=tuple(p.id_tags),
                language=p.language,
                max_cost=p.max_cost,
                max_energy_Wh=None if p.max_energy_kWh is None else int(p.max_energy_kWh * 1000),
                max_duration_s=None if p.max_duration_min is None else float(p.max_duration_min * 60),
            )
            for p in settings.packages
        ]

    async def _keep_last_valid_prices(self) -> None:
        """A valid [pricing] is remembered; an invalid one leaves the last valid prices in force (not none)."""
        if not self.rejected:
            await self.store.set_kv(_LAST_VALID_KEY, self.settings.model_dump_json())
            return
        for problem in self.rejected:
            log.error("%s", problem)
        stored = await self.store.get_kv(_LAST_VALID_KEY)
        if stored is None:
            log.error("the [pricing] section is invalid and no earlier valid prices are known: sessions are not "
                      "priced until it is fixed")
            return
        try:
            self._apply(PricingSettings.model_validate_json(stored))
        except ValueError as exc:
            log.error("the last valid prices cannot be read back (%s): sessions are not priced", exc)
            return
        log.error("the [pricing] section is invalid: the last valid prices stay in force until it is fixed")

    async def reconfigure(self, config: Config) -> None:
        """New prices from a reloaded file: sessions that start from now on use them; a running session keeps the
        tariff it started with. They become the last valid prices."""
        self.config = config
        self.rejected = []
        self._apply(config.pricing)
        await self._keep_last_valid_prices()
        self.prices_changed()

    async def load(self) -> None:
        """Cached CSMS prices and prepaid balances, so sessions started offline after a restart are priced."""
        await self._keep_last_valid_prices()
        await self.csms_prices.load()
        for account in await self.store.prepaid_accounts():
            self.prepaid[account.id_tag.upper()] = account
        self.csms_prices.default_price_changed(self.currency)

    def default_price_changed(self) -> None:
        self.csms_prices.default_price_changed(self.currency)

    def prices_changed(self) -> None:
        """The CSMS changed DefaultPrice, a DefaultPriceText or Language: idle displays show the new price."""
        self.default_price_changed()
        for c in self.app.connectors.values():
            if c.session is None and c.core.status is ConnectorStatus.Available:
                self.show_idle(c)

    def language(self, package: Package | None = None) -> str:
        preferred = package.language if package is not None and package.language else None
        return self.csms_prices.language(preferred, self.settings.language)

    # ----------------------------------------------------------------- authorization and prepaid

    def _committed(self, tag: str, excluding: int | None = None) -> Decimal:
        """What the running sessions of prepaid account ``tag`` cost so far (one budget for all of them)."""
        return sum((p.cost for connector_id, p in self.sessions.items()
                    if p.prepaid_tag == tag and connector_id != excluding), Decimal(0))

    def prepaid_remaining(self, id_tag: str, excluding: int | None = None) -> Decimal | None:
        """The card's prepaid balance less what its running sessions (but ``excluding``'s) cost so far; None: no
        prepaid account."""
        account = self.prepaid.get(id_tag.upper())
        if account is None:
            return None
        return max(Decimal(0), account.balance) - self._committed(account.id_tag, excluding)

    def prepaid_refusal(self, id_tag: str, parent_id_tag: str | None = None) -> str | None:
        """Why a prepaid card may not start a session now (a display message key), or None.

        ``prepaid_empty``: nothing left (0.00 included) once its running sessions are counted; ``prepaid_too_low``:
        what is left cannot pay for the session's fixed part (the fee, or the minimum where that is more, including
        tax) that the first energy costs."""
        remaining = self.prepaid_remaining(id_tag)
        if remaining is None:
            return None
        if remaining <= 0:
            return "prepaid_empty"
        tariff = self._choose(id_tag, parent_id_tag).tariff
        if tariff is not None:
            entry = CostMeter(tariff, self.tz, self.money, Sample(datetime.now(UTC), 0, SessionState.charging))
            if remaining < entry.entry_cost():
                return "prepaid_too_low"
        return None

    def prepaid_blocks(self, id_tag: str) -> bool:
        """A prepaid card whose balance (shared by its running sessions) cannot pay for a session may not start one."""
        return self.prepaid_refusal(id_tag) is not None

    def prepaid_accepts(self, id_tag: str) -> bool:
        """Standalone: a card whose prepaid balance on this charger pays for a session is accepted."""
        return id_tag.upper() in self.prepaid and self.prepaid_refusal(id_tag) is None

    async def prepaid_command(self, id_tag: str | None, balance: str | None, add: str | None) -> list[dict[str, Any]]:
        """Show, set or top up balances. Amounts: plain, non-negative, whole minor units of the currency (ValueError,
        the control socket's refusal, otherwise)."""
        if id_tag is not None and (balance is not None or add is not None):
            if not id_tag.strip():
                raise ValueError("an empty card id has no balance")
            amount = parse_amount(balance if balance is not None else add or "0", self.currency)
            if balance is None:
                current = self.prepaid.get(id_tag.upper())
                amount += Decimal(0) if current is None else max(Decimal(0), current.balance)
            await self.set_prepaid(id_tag, amount, "set" if balance is not None else "top-up")
        accounts = await self.store.prepaid_accounts()
        return [views.prepaid_row(a) for a in accounts if id_tag is None or a.id_tag == id_tag.upper()]

    def set_card_budget(self, connector_id: int, amount: Decimal) -> None:
        """The next session on this connector is paid by card: it may cost at most ``amount``."""
        self._card_budgets[connector_id] = amount

    async def set_prepaid(self, id_tag: str, balance: Decimal, note: str = "set") -> PrepaidAccount:
        account = await self.store.prepaid_set(id_tag.upper(), balance, self.currency, note)
        self.prepaid[account.id_tag] = account
        return account

    # ----------------------------------------------------------------- display

    def _show(self, c: ConnectorRuntime, message: DisplayMessage) -> None:
        self.screen.show(c, message)

    def _show_message(self, c: ConnectorRuntime, message: DisplayMessage) -> None:
        """A short message: it ends with the next thing shown or after ``message_display_s``."""
        self.screen.show(c, message, timeout_s=self.settings.message_display_s)

    def _message_over(self, c: ConnectorRuntime) -> None:
        """A short message timed out: what the connector's state calls for replaces it (blank if nothing)."""
        priced = self.sessions.get(c.connector_id)
        if priced is not None and (priced.breakdown is not None or priced.csms_cost is not None):
            self._show_running(c, priced)
            return
        message = self._idle_message(c)
        self._show(c, message if message is not None else DisplayMessage(DisplayKind.info, (), self.language()))

    def _idle_message(self, c: ConnectorRuntime) -> DisplayMessage | None:
        language = self.language()
        qr = self.app.qr_text(c)  # a mobile-payment code, where enabled: shown next to the price
        lines = self.csms_prices.price_text(language)
        if lines is None:
            tariff = self.csms_prices.default_tariff or self.default_tariff
            if tariff is None:
                if qr is not None:
                    return DisplayMessage(DisplayKind.info, (message_text("scan_to_pay", language),), language,
                                          qr_code_text=qr)
                return None
            lines = price_lines(tariff, self.money, language)
        return DisplayMessage(DisplayKind.price, lines, language, qr_code_text=qr)

    def show_idle(self, c: ConnectorRuntime) -> None:
        """The ad hoc price, before anyone plugs in (AFIR: shown before the session starts)."""
        if self.screen.defer_idle(c, self._idle_again):
            return
        message = self._idle_message(c)
        if message is not None:
            self._show(c, message)

    def _idle_again(self, c: ConnectorRuntime) -> None:
        if c.session is None and c.core.status is ConnectorStatus.Available:
            self.show_idle(c)

    def show_rejected(self, c: ConnectorRuntime, id_tag: str) -> None:
        """Why a card did not start a session: a used-up prepaid balance, or not accepted at all."""
        language = self.language(self._choose(id_tag, None).package)
        key = self.prepaid_refusal(id_tag) or "card_rejected"
        self._show_message(c, DisplayMessage(DisplayKind.info, (message_text(key, language),), language))

    def show_authorized(self, c: ConnectorRuntime, id_tag: str, parent_id_tag: str | None) -> None:
        """The price this driver will pay, once the card is known and before energy flows."""
        choice = self._choose(id_tag, parent_id_tag)
        language = self.language(choice.package)
        lines = self.csms_prices.user_price_lines(id_tag, language)
        if lines is None and choice.source == "csms-default":
            lines = self.csms_prices.price_text(self.language())
        if lines is None and choice.tariff is not None:
            lines = price_lines(choice.tariff, self.money, language)
        if lines is not None:
            self._show(c, DisplayMessage(DisplayKind.price, lines, language))
        else:  # unpriced: say so, so that an earlier refusal does not stay up
            self._show_message(c, DisplayMessage(DisplayKind.info, (message_text("card_accepted", language),),
                                                 language))

    # ----------------------------------------------------------------- session life cycle

    def _choose(self, id_tag: str, parent_id_tag: str | None) -> Choice:
        return choose(self.packages, id_tag, parent_id_tag, self.csms_prices.default_tariff, self.default_tariff)

    def begin(self, c: ConnectorRuntime, id_tag: str, parent_id_tag: str | None, started_at: datetime,
              meter_start_Wh: int) -> PricingStart:
        choice = self._choose(id_tag, parent_id_tag)
        limits = SessionLimits()
        package = choice.package
        if package is not None:
            limits = limits.tighten(SessionLimits(package.max_cost, package.max_energy_Wh, package.max_duration_s,
                                                  (package.name,)))
        account = self.prepaid.get(id_tag.upper())
        remaining = self.prepaid_remaining(id_tag, excluding=c.connector_id)
        if remaining is not None:  # what the card's other running sessions have not used yet
            limits = limits.tighten(SessionLimits(max_cost=max(Decimal(0), remaining), sources=("prepaid",)))
        card_budget = self._card_budgets.pop(c.connector_id, None)
        if card_budget is not None:  # a card payment: never more than the terminal pre-authorised
            limits = limits.tighten(SessionLimits(max_cost=card_budget, sources=("card",)))
        state = self._state_of(c)
        meter = None
        if choice.tariff is not None:
            meter = CostMeter(choice.tariff, self.tz, self.money, Sample(started_at, meter_start_Wh, state))
        priced = PricedSession(id_tag, choice, meter, limits, self.language(package), started_at, meter_start_Wh,
                               state, meter_start_Wh, prepaid_tag=None if account is None else account.id_tag)
        if meter is not None:
            priced.breakdown = meter.breakdown()
        self.sessions[c.connector_id] = priced
        if choice.tariff is None:
            log.info("connector %d: session of %s is not priced (no tariff configured)", c.connector_id, id_tag)
        else:
            log.info("connector %d: session of %s priced with tariff %s (%s)%s", c.connector_id, id_tag,
                     choice.tariff.tariff_id, choice.source, f", limits {limits.to_json()}" if limits.any else "")
        return PricingStart(
            tariff_id=None if choice.tariff is None else choice.tariff.tariff_id,
            tariff_json=None if choice.tariff is None else json.dumps(tariff_to_json(choice.tariff)),
            package=None if package is None else package.name,
            currency=self.currency if choice.tariff is None else choice.tariff.currency,
            limits_json=json.dumps(limits.to_json()),
            prepaid_id_tag=None if account is None else account.id_tag,
        )

    def _state_of(self, c: ConnectorRuntime) -> SessionState:
        status = c.core.status
        if status in _CHARGING_STATUSES:
            return SessionState.charging
        return SessionState.idle if status in _IDLE_STATUSES else SessionState.held

    def meter(self, c: ConnectorRuntime, energy_Wh: int, at: datetime) -> PricingUpdate | None:
        """A meter sample of a running session: price it, check the limits, refresh the display."""
        priced = self.sessions.get(c.connector_id)
        if priced is None:
            return None
        priced.last_energy_Wh = energy_Wh
        update = self._add(priced, Sample(at, energy_Wh, self._state_of(c)))
        self._check_limits(c, priced, at)
        self._check_trigger(c, priced, energy_Wh)
        now_s = time.monotonic()
        if now_s - priced.last_display_s >= self.settings.display_interval_s:
            priced.last_display_s = now_s
            self._show_running(c, priced)
        return update

    def _add(self, priced: PricedSession, sample: Sample) -> PricingUpdate | None:
        priced.state = sample.state
        if priced.meter is None:
            return None
        try:
            priced.meter.add(sample)
        except ValueError as exc:  # a clock step backwards: keep the cost, skip the sample
            log.warning("pricing sample skipped: %s", exc)
            return None
        priced.breakdown = priced.meter.breakdown()
        return PricingUpdate(json.dumps(priced.meter.snapshot()), json.dumps(priced.breakdown.to_json()),
                             priced.breakdown.total_incl_tax)

    def status_changed(self, c: ConnectorRuntime, status: ConnectorStatus) -> None:
        priced = self.sessions.get(c.connector_id)
        if priced is not None:
            state = self._state_of(c)
            if state is not priced.state:
                # The state applies from now: close the previous period at the last energy we know.
                self._add(priced, Sample(datetime.now(UTC), priced.last_energy_Wh, state))
            if priced.trigger is not None and str(status) in priced.trigger.at_cp_status:
                self._fire_trigger(c, priced, f"status {status}")
        elif status is ConnectorStatus.Available:
            self.show_idle(c)

    def _check_limits(self, c: ConnectorRuntime, priced: PricedSession, at: datetime) -> None:
        if priced.limit_hit is not None or not (priced.limits.any or priced.prepaid_tag is not None):
            return
        cost = None if priced.breakdown is None else priced.breakdown.total_incl_tax
        reason = priced.limits.reached(cost, priced.energy_Wh, (at - priced.started_at).total_seconds())
        if reason is None and cost is not None and priced.prepaid_tag is not None:
            # One budget for all the card's sessions: this one may use what the others have not.
            remaining = self.prepaid_remaining(priced.prepaid_tag, excluding=c.connector_id)
            if remaining is not None and cost >= remaining:
                reason = COST_LIMIT
        if reason is not None:
            priced.limit_hit = reason
            log.warning("connector %d: %s (cost %s, %d Wh, limits %s): stopping", c.connector_id, reason, cost,
                        priced.energy_Wh, priced.limits.to_json())
            self.app.post(c.connector_id, LimitReached(reason, time.monotonic()))

    def _show_running(self, c: ConnectorRuntime, priced: PricedSession) -> None:
        if priced.breakdown is None and priced.csms_cost is None:
            return
        # Both figures are kept; the operator's is the one shown.
        if priced.breakdown is not None:
            lines = running_lines(priced.breakdown, self.money, priced.language, csms_cost=priced.csms_cost,
                                  csms_text=priced.csms_text)
        else:
            lines = (f"{self.money.round(priced.csms_cost or Decimal(0))} {self._currency_of(priced)}",)
            if priced.csms_text:
                lines += text_lines(priced.csms_text)
        self._show(c, DisplayMessage(DisplayKind.running, lines, priced.language))

    def _currency_of(self, priced: PricedSession) -> str:
        return priced.choice.tariff.currency if priced.choice.tariff is not None else self.currency

    def end(self, c: ConnectorRuntime, meter_stop_Wh: int, at: datetime) -> PricingUpdate | None:
        priced = self.sessions.pop(c.connector_id, None)
        if priced is None:
            return None
        if priced.trigger_handle is not None:
            priced.trigger_handle.cancel()
        priced.last_energy_Wh = max(priced.last_energy_Wh, meter_stop_Wh)
        update = self._add(priced, Sample(at, meter_stop_Wh, priced.state))
        if priced.breakdown is not None and priced.energy_Wh == 0 and self._charger_ended(c):
            # The charger ended the session by its own fault before any energy flowed: nothing to pay.
            priced.breakdown = waived(priced.breakdown)
            log.info("connector %d: session ended by a charger fault before energy flowed: not charged",
                     c.connector_id)
            if update is not None:
                update = PricingUpdate(update.meter_state, json.dumps(priced.breakdown.to_json()),
                                       priced.breakdown.total_incl_tax)
        account = None if priced.prepaid_tag is None else self.prepaid.get(priced.prepaid_tag)
        if account is not None and priced.breakdown is not None:
            # Mirrors the debit the store makes in the same transaction as the session's close: never below zero,
            # what the balance cannot pay is the charger's shortfall.
            available = max(Decimal(0), account.balance)
            taken = min(priced.breakdown.total_incl_tax, available)
            if taken < priced.breakdown.total_incl_tax:
                log.warning("connector %d: prepaid %s paid %s of %s %s: shortfall %s", c.connector_id,
                            account.id_tag, taken, priced.breakdown.total_incl_tax, account.currency,
                            priced.breakdown.total_incl_tax - taken)
            self.prepaid[account.id_tag] = PrepaidAccount(account.id_tag, available - taken, account.currency,
                                                          at.isoformat())
        if priced.breakdown is not None:
            lines = receipt_lines(priced.breakdown, self.money, priced.language, csms_cost=priced.csms_cost)
            if priced.limit_hit is not None:
                lines = (message_text(priced.limit_hit, priced.language), *lines)
            log.info("connector %d: receipt: %s", c.connector_id, " | ".join(lines))
            self._show(c, DisplayMessage(DisplayKind.receipt, lines, priced.language))
        return update

    def _charger_ended(self, c: ConnectorRuntime) -> bool:
        """The session ends because of the charger: a fault (contactor, RCD, pilot, ...) or a loss of mains."""
        facts = c.core.facts
        return bool(facts.faults) or not facts.mains_present

    # ----------------------------------------------------------------- views

    def status(self, c: ConnectorRuntime) -> dict[str, Any]:
        priced = self.sessions.get(c.connector_id)
        if priced is None:
            return {"cost": None, "currency": None}
        local = None
        if priced.meter is not None:
            try:
                local = priced.meter.breakdown(datetime.now(UTC))
            except ValueError:
                local = priced.breakdown
        shown = priced.csms_cost if priced.csms_cost is not None else (
            None if local is None else local.total_incl_tax)
        return {
            "cost": None if shown is None else str(shown),
            "currency": self._currency_of(priced) if shown is not None else None,
            "cost_source": "csms" if priced.csms_cost is not None else ("local" if local is not None else None),
            "local_cost": None if local is None else str(local.total_incl_tax),
            "csms_cost": None if priced.csms_cost is None else str(priced.csms_cost),
            "tariff_id": None if priced.choice.tariff is None else priced.choice.tariff.tariff_id,
            "package": None if priced.choice.package is None else priced.choice.package.name,
            "limits": priced.limits.to_json() if priced.limits.any else None,
            "breakdown": None if local is None else local.to_json(),
            "prepaid": self._prepaid_status(c, priced, None if local is None else local.total_incl_tax),
        }

    def _prepaid_status(self, c: ConnectorRuntime, priced: PricedSession, cost: Decimal | None
                        ) -> dict[str, Any] | None:
        """The budget of a prepaid session: the account's balance, what this session may still use (the balance
        less the card's other running sessions) and the shortfall the charger absorbs should it end now."""
        if priced.prepaid_tag is None:
            return None
        available = self.prepaid_remaining(priced.prepaid_tag, excluding=c.connector_id) or Decimal(0)
        account = self.prepaid[priced.prepaid_tag]
        cost = cost or Decimal(0)
        return {
            "id_tag": priced.prepaid_tag,
            "balance": str(account.balance),
            "available": str(max(Decimal(0), available)),
            "shortfall": str(self.money.round(max(Decimal(0), cost - max(Decimal(0), available)))),
        }

    # ----------------------------------------------------------------- CostSink: what the CSMS sends

    def _by_transaction(self, transaction_id: int) -> tuple[ConnectorRuntime, PricedSession] | None:
        for c in self.app.connectors.values():
            priced = self.sessions.get(c.connector_id)
            if priced is not None and c.session is not None and c.session.csms_transaction_id == transaction_id:
                return c, priced
        return None

    async def user_price(self, price: UserPrice) -> None:
        await self.csms_prices.put_user_price(price)
        # A driver at a connector waiting with this card sees the price at once.
        for c in self.app.connectors.values():
            if c.session is None and c.core.facts.authorized_tag == price.id_token:
                lines = price_lines_of(price, self.language())
                if lines is not None:
                    self._show(c, DisplayMessage(DisplayKind.price, lines, self.language()))

    async def running_cost(self, cost: RunningCost) -> bool:
        found = self._by_transaction(cost.transaction_id)
        if found is None:
            record = await self.store.session_by_csms_id(cost.transaction_id)
            if record is None:
                return False
            await self.store.set_csms_cost(record.session_id, cost.cost, False, cost.price_text)
            return True
        c, priced = found
        priced.csms_cost, priced.csms_text = cost.cost, cost.price_text
        if c.session is not None and c.session.session_id is not None:
            await self.store.set_csms_cost(c.session.session_id, cost.cost, False, cost.price_text)
        if cost.trigger_meter_value is not None:
            self._arm_trigger(c, priced, cost.trigger_meter_value)
        self._show_running(c, priced)
        return True

    async def final_cost(self, cost: FinalCost) -> bool:
        record = await self.store.session_by_csms_id(cost.transaction_id)
        if record is None:
            return False
        await self.store.set_csms_cost(record.session_id, cost.cost, True, cost.price_text)
        c = self.app.connectors.get(record.connector_id)
        if c is not None and c.session is None:
            row = await self.store.session_pricing(record.session_id)
            language = self.language()
            lines: tuple[str, ...]
            if row is not None and row.breakdown is not None:
                lines = receipt_lines(CostBreakdown.from_json(row.breakdown), self.money, language,
                                      csms_cost=cost.cost)
            else:
                lines = (f"{self.money.round(cost.cost)} {self.currency}",)
            if cost.price_text:
                lines += text_lines(cost.price_text)
            self._show(c, DisplayMessage(DisplayKind.receipt, lines, language, qr_code_text=cost.qr_code_text))
        return True

    async def transaction_limit(self, limit: TransactionLimit) -> bool:
        found = self._by_transaction(limit.transaction_id)
        if found is None:
            return False
        c, priced = found
        priced.limits = priced.limits.tighten(
            SessionLimits(limit.max_cost, limit.max_energy_Wh,
                          None if limit.max_time_s is None else float(limit.max_time_s), ("csms",)))
        if c.session is not None and c.session.session_id is not None:
            await self.store.set_session_limits(c.session.session_id, json.dumps(priced.limits.to_json()))
        self._check_limits(c, priced, datetime.now(UTC))
        return True

    # ----------------------------------------------------------------- triggerMeterValue

    def _arm_trigger(self, c: ConnectorRuntime, priced: PricedSession, trigger: TriggerMeterValue) -> None:
        if priced.trigger_handle is not None:
            priced.trigger_handle.cancel()
            priced.trigger_handle = None
        priced.trigger = trigger
        if trigger.at_time is not None:
            delay_s = max(0.0, (trigger.at_time - datetime.now(UTC)).total_seconds())
            priced.trigger_handle = asyncio.get_running_loop().call_later(
                delay_s, self._fire_trigger, c, priced, f"time {trigger.at_time.isoformat()}")

    def _check_trigger(self, c: ConnectorRuntime, priced: PricedSession, energy_Wh: int) -> None:
        trigger = priced.trigger
        if trigger is None:
            return
        if trigger.at_energy_kWh is not None and priced.energy_Wh >= trigger.at_energy_kWh * 1000:
            self._fire_trigger(c, priced, f"energy {trigger.at_energy_kWh} kWh")
        elif (trigger.at_power_kW is not None and c.last_reading is not None
              and c.last_reading.power_W >= float(trigger.at_power_kW) * 1000):
            self._fire_trigger(c, priced, f"power {trigger.at_power_kW} kW")

    def _fire_trigger(self, c: ConnectorRuntime, priced: PricedSession, why: str) -> None:
        """Send the extra MeterValues the CSMS asked for, once per RunningCost that armed it."""
        if priced.trigger is None:
            return
        priced.trigger = None
        if priced.trigger_handle is not None:
            priced.trigger_handle.cancel()
            priced.trigger_handle = None
        csms = self.app.csms
        if csms is not None:
            log.info("connector %d: triggerMeterValue reached (%s): sending MeterValues", c.connector_id, why)
            csms.request_meter_values(c.connector_id)
