"""Ad hoc payment by card at the charger's payment terminal: pre-authorise, charge within it, capture, release.

The flow, per connector:

1. An EV is plugged in (``Preparing``) and nothing authorised it yet: the charger asks the terminal to
   pre-authorise ``preauthorize_amount``. The terminal shows its prompts and waits for a card. A card tapped on
   the RFID reader instead (or a remote start) cancels the request.
2. Approved: the session starts (``payment_method`` ``card``) under a pseudonymous idTag derived from the
   terminal's card token (never the card number), with a cost limit of the amount approved, which may be less
   than asked (a partial approval).
3. The session ends: its final cost is captured, at most the amount pre-authorised, and the rest is released in
   the same step. Nothing to pay: the whole pre-authorisation is released (cancelled). The receipt shows the
   amounts and the terminal's reference.

**Crash safety.** Every step is written to the payment journal (``store/payments.py``, with a ledger record)
before it goes to the terminal, and again when it answers. After a restart, or when an answer was lost, each
open payment is reconciled with the terminal (``transaction_status``, ``last_transaction``):

- a capture that happened is recorded, and one that did not is made (the terminal refuses a second one);
- a pre-authorisation that no session uses is always released.

End of day goes to the terminal once a day at ``end_of_day_at`` (local time) and is recorded in the ledger.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from chargepoint.core.commands import ConnectorStatus
from chargepoint.ports.events import ChargerEvent, SecurityEvent
from chargepoint.runtime.connector import ConnectorRuntime
from chargepoint.store import PaymentRecord, PaymentRefused, Store
from hal.payment import (
    Approved,
    Declined,
    MaskedCard,
    Money,
    PaymentResult,
    PaymentTerminal,
    TerminalReference,
    TimedOut,
    TransactionState,
)
from hal.protocols import DisplayKind, DisplayMessage

log = logging.getLogger(__name__)

RETRY_AFTER_NO_CARD_S = 2.0  # a terminal that gave up waiting for a card is asked again while the EV waits
RECONCILE_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class CardSettings:
    preauthorize_amount: Decimal
    currency: str
    card_wait_s: float = 120.0
    end_of_day_at: time | None = time(3, 0)
    time_zone: str = "UTC"


def card_id_tag(card: MaskedCard, reference: TerminalReference) -> str:
    """The session's idTag: a pseudonym of the card (its terminal token where it has one), never its number. The
    same card gets the same idTag where the terminal gives a stable token, so its sessions can be told apart."""
    source = card.token or f"{reference.terminal_id}/{reference.receipt_no}"
    return "CARD" + hashlib.sha256(source.encode()).hexdigest().upper()[:16]


class CardPayments:
    def __init__(self, settings: CardSettings, terminal: PaymentTerminal, store: Store,
                 connectors: Mapping[int, ConnectorRuntime],
                 start_session: Callable[[int, str], None], set_budget: Callable[[int, Decimal], None],
                 show: Callable[[ConnectorRuntime, DisplayMessage], None], flush_store: Callable[[], Awaitable[None]],
                 spawn: Callable[[Awaitable[Any]], None],
                 publish: Callable[[ChargerEvent], None] | None = None) -> None:
        self.settings = settings
        self.terminal = terminal
        self.store = store
        self.connectors = connectors
        self._start_session = start_session
        self._set_budget = set_budget
        self._show = show
        self._flush_store = flush_store
        self._spawn_raw = spawn
        self._publish = publish
        self._attempts: dict[int, asyncio.Task[None]] = {}
        self._awaiting_session: dict[int, str] = {}  # connector -> payment_id approved, session not begun yet
        self._active: dict[int, tuple[str, datetime]] = {}  # connector -> (payment_id, its session's start)
        self._approved: dict[str, str] = {}  # payment_id -> the amount approved (text), until its session begins
        self._preauthorized_now: dict[int, str | None] = {}
        self._lock = asyncio.Lock()  # one terminal: one request at a time, reconciliation included

    def _spawn(self, work: Awaitable[Any]) -> None:
        self._spawn_raw(self._logged(work))

    async def _logged(self, work: Awaitable[Any]) -> None:
        """A payment's trouble is logged and left to reconciliation: it must never take the charger down. A step
        the journal refuses (a capture above the pre-authorisation) is a security event too."""
        try:
            await work
        except PaymentRefused as exc:
            log.error("card payment step refused: %s", exc)
            if self._publish is not None:
                self._publish(SecurityEvent("PaymentStepRefused", str(exc), datetime.now(UTC)))
        except Exception:
            log.exception("card payment step failed (reconciled later)")

    def money(self, amount: Decimal) -> Money:
        return Money(amount.quantize(Decimal(1).scaleb(-Money(Decimal(0), self.settings.currency).exponent)),
                     self.settings.currency)

    # ----------------------------------------------------------------- the connector's side

    def status_changed(self, c: ConnectorRuntime, status: ConnectorStatus) -> None:
        """Preparing with nothing authorised: ask for a card. Anything else: stop asking."""
        waiting = status is ConnectorStatus.Preparing and c.session is None and c.core.facts.authorized_tag is None
        task = self._attempts.get(c.connector_id)
        if waiting and (task is None or task.done()) and c.connector_id not in self._awaiting_session:
            self._attempts[c.connector_id] = asyncio.get_running_loop().create_task(self._logged(self._attempt(c)))
        elif not waiting and task is not None and not task.done() and c.connector_id not in self._awaiting_session:
            task.cancel()  # a card on the reader or a remote start authorised the EV: the terminal stops waiting

    async def aclose(self) -> None:
        """Stop asking for cards (the charger stops): a request in flight is aborted at the terminal."""
        tasks = [t for t in self._attempts.values() if not t.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def authorized_otherwise(self, connector_id: int) -> None:
        """A card on the reader or a remote start authorised this connector: the terminal stops waiting."""
        task = self._attempts.get(connector_id)
        if task is not None and not task.done() and connector_id not in self._awaiting_session:
            task.cancel()

    async def _attempt(self, c: ConnectorRuntime) -> None:
        amount = self.money(self.settings.preauthorize_amount)
        while c.session is None and c.core.status is ConnectorStatus.Preparing:
            async with self._lock:
                record = await self.store.payment_begin(c.connector_id, amount.amount, amount.currency)
                try:
                    result = await self.terminal.pre_authorize(amount, timeout_s=self.settings.card_wait_s)
                except asyncio.CancelledError:
                    # Cancelled while the terminal waited: reconciliation finds out whether it approved anyway.
                    self._spawn(self.reconcile())
                    raise
            if await self._preauthorized(c, record, result):
                return
            if isinstance(result, Declined) or (isinstance(result, TimedOut) and result.result_code is not None):
                await asyncio.sleep(RETRY_AFTER_NO_CARD_S)  # declined, or no card presented: ask again
                continue
            if getattr(result, "in_doubt", False):
                await self.reconcile()  # whatever the terminal did, settled first (an approval is released) ...
                await asyncio.sleep(RETRY_AFTER_NO_CARD_S)
                continue  # ... then the EV that still waits is offered the terminal again
            return

    async def _preauthorized(self, c: ConnectorRuntime, record: PaymentRecord, result: PaymentResult) -> bool:
        if isinstance(result, Approved):
            ref, card = result.reference, result.card
            id_tag = card_id_tag(card, ref)
            await self.store.payment_step(
                record.payment_id, "preauthorized", preauthorized=result.amount.amount, receipt_no=ref.receipt_no,
                trace_no=ref.trace_no, terminal_id=ref.terminal_id, aid=ref.aid, card_last4=card.last4,
                card_scheme=card.scheme, card_token=None if card.token is None else id_tag, id_tag=id_tag)
            log.info("connector %d: %s pre-authorised %s%s", c.connector_id, card, result.amount,
                     f" (asked {result.requested})" if result.partial else "")
            self._awaiting_session[c.connector_id] = record.payment_id
            self._approved[record.payment_id] = f"{result.amount.amount} {result.amount.currency}"
            self._set_budget(c.connector_id, result.amount.amount)
            self._start_session(c.connector_id, id_tag)
            return True
        if isinstance(result, Declined):
            await self.store.payment_step(record.payment_id, "declined", detail=result.reason)
            log.info("connector %d: card declined: %s", c.connector_id, result.reason)
            self._show(c, DisplayMessage(DisplayKind.info, ("Card declined", result.reason[:40])))
            return False
        in_doubt = getattr(result, "in_doubt", False)
        if not in_doubt:
            await self.store.payment_step(record.payment_id, "failed", detail=str(getattr(result, "detail", result)))
        else:
            log.warning("connector %d: pre-authorisation outcome unknown (%s): reconciling", c.connector_id, result)
        return False

    def session_began(self, c: ConnectorRuntime, id_tag: str, started_at: datetime) -> bool:
        """A session began; True if it is the card payment's (then it is ``card``)."""
        payment_id = self._awaiting_session.pop(c.connector_id, None)
        if payment_id is None:
            return False
        self._active[c.connector_id] = (payment_id, started_at)
        self._preauthorized_now[c.connector_id] = self._approved.pop(payment_id, None)
        self._spawn(self._link(payment_id, c.connector_id, started_at))
        return True

    async def _session_id(self, connector_id: int, started_at: datetime) -> str | None:
        await self._flush_store()
        return next((s.session_id for s in await self.store.recent_sessions(50)
                     if s.connector_id == connector_id and s.started_at == started_at), None)

    async def _link(self, payment_id: str, connector_id: int, started_at: datetime) -> None:
        """The journal names the session as soon as it is stored: a crash mid-session then still finds its cost."""
        session_id = await self._session_id(connector_id, started_at)
        if session_id is not None and (await self.store.payment(payment_id)).state == "preauthorized":
            await self.store.payment_step(payment_id, "preauthorized", session_id=session_id)

    def preauthorized_of(self, connector_id: int) -> str | None:
        return self._preauthorized_now.get(connector_id)

    def session_ended(self, c: ConnectorRuntime) -> None:
        active = self._active.pop(c.connector_id, None)
        if active is not None:
            self._spawn(self._settle(active[0], c.connector_id, active[1]))

    # ----------------------------------------------------------------- settling

    async def _settle(self, payment_id: str, connector_id: int, started_at: datetime) -> None:
        """Capture the session's final cost (at most the pre-authorisation), or release it all."""
        session_id = await self._session_id(connector_id, started_at)  # its end and final cost are stored now
        async with self._lock:
            record = await self.store.payment(payment_id)
            if record.state != "preauthorized" or record.preauthorized is None:
                return
            if session_id is not None:
                record = await self.store.payment_step(payment_id, "preauthorized", session_id=session_id)
            cost = Decimal(0)
            if record.session_id is not None:
                priced = await self.store.session_pricing(record.session_id)
                if priced is not None and priced.shown_cost is not None:
                    cost = priced.shown_cost
            await self._capture_or_release(record, cost)

    async def _capture_or_release(self, record: PaymentRecord, cost: Decimal) -> None:
        assert record.preauthorized is not None and record.receipt_no is not None
        reference = TerminalReference(record.receipt_no, record.trace_no, record.terminal_id, record.aid)
        amount = self.money(min(cost, record.preauthorized))
        if cost > record.preauthorized:
            log.warning("payment %s: the session cost %s, above its pre-authorisation %s: %s captured, the rest is "
                        "the charger's loss", record.payment_id, cost, record.preauthorized, record.preauthorized)
        if amount.amount == 0:
            await self.store.payment_step(record.payment_id, "cancel_requested")
            result = await self.terminal.cancel(reference)
            await self._answer(record, result, "cancelled", captured=Decimal(0), released=record.preauthorized)
            return
        await self.store.payment_step(record.payment_id, "capture_requested", captured=amount.amount)
        result = await self.terminal.capture(reference, amount)
        await self._answer(record, result, "captured", released=record.preauthorized - amount.amount)

    async def _answer(self, record: PaymentRecord, result: PaymentResult, done: str, **changes: Decimal) -> None:
        if isinstance(result, Approved):
            done_record = await self.store.payment_step(record.payment_id, done, **changes)
            log.info("payment %s: %s (captured %s, released %s)", record.payment_id, done, done_record.captured,
                     done_record.released)
            self._receipt(done_record)
        elif isinstance(result, Declined):
            await self.store.payment_step(record.payment_id, "failed", detail=f"terminal refused: {result.reason}")
            log.error("payment %s: the terminal refused the %s: %s", record.payment_id, done, result.reason)
        else:
            log.warning("payment %s: no answer to the %s (%s): reconciling later", record.payment_id, done, result)

    def _receipt(self, record: PaymentRecord) -> None:
        c = self.connectors.get(record.connector_id)
        if c is None:
            return
        card = f"{record.card_scheme or 'Card'} ****{record.card_last4 or '????'}"
        lines = (card, f"Paid {record.captured} {record.currency}",
                 f"Released {record.released} {record.currency}", f"Ref {record.terminal_id or ''}/{record.receipt_no}")
        shown = c.hw.display.shown()
        if shown is not None and shown.kind is DisplayKind.receipt and c.session is None:
            # Under the session's receipt (energy, time, cost lines): what the card paid and got back.
            self._show(c, DisplayMessage(DisplayKind.receipt, shown.lines + lines, shown.language))
        else:
            self._show(c, DisplayMessage(DisplayKind.receipt, lines))

    # ----------------------------------------------------------------- reconciliation

    async def reconcile(self) -> None:
        """Settle every open payment with the terminal: after a restart, a timeout or a lost answer."""
        async with self._lock:
            for record in await self.store.payments(limit=1000, open_only=True):
                in_use = {payment_id for payment_id, _ in self._active.values()} | set(self._awaiting_session.values())
                if record.payment_id in in_use:
                    continue  # in use by a session of this run
                try:
                    await self._reconcile_one(record)
                except Exception:  # one payment's trouble must not stop the others: logged, tried again later
                    log.exception("payment %s: reconciliation failed", record.payment_id)

    async def _reconcile_one(self, record: PaymentRecord) -> None:
        if record.state == "preauth_requested":
            status = await self.terminal.last_transaction()
            if status.state is TransactionState.PreAuthorized and status.reference is not None and \
                    status.amount is not None and not await self._known_reference(status.reference.receipt_no):
                ref = status.reference
                record = await self.store.payment_step(
                    record.payment_id, "preauthorized", preauthorized=status.amount.amount, receipt_no=ref.receipt_no,
                    trace_no=ref.trace_no, terminal_id=ref.terminal_id, aid=ref.aid,
                    detail="approved while the charger could not hear it: released")
                await self._capture_or_release(record, Decimal(0))
            elif status.state is not TransactionState.Unknown:
                await self.store.payment_step(record.payment_id, "failed", detail=f"terminal: {status.state}")
            return
        if record.receipt_no is None:
            return
        reference = TerminalReference(record.receipt_no, record.trace_no, record.terminal_id, record.aid)
        status = await self.terminal.transaction_status(reference)
        if status.state is TransactionState.Unknown:
            return
        if record.state == "preauthorized":
            cost = Decimal(0)
            if record.session_id is not None:
                session = await self.store.session(record.session_id)
                if session is not None and session.is_open:
                    return  # still charging (this run's session): settled when it ends
                priced = await self.store.session_pricing(record.session_id)
                cost = Decimal(0) if priced is None or priced.shown_cost is None else priced.shown_cost
            if status.state is TransactionState.PreAuthorized:
                log.info("payment %s: settling after a restart (cost %s)", record.payment_id, cost)
                await self._capture_or_release(record, cost)
            elif status.state is TransactionState.Captured:
                await self.store.payment_step(record.payment_id, "capture_requested",
                                              captured=None if status.amount is None else status.amount.amount)
                await self.store.payment_step(record.payment_id, "captured")
            else:
                await self.store.payment_step(record.payment_id, "cancel_requested")
                await self.store.payment_step(record.payment_id, "cancelled", detail=f"terminal: {status.state}")
        elif record.state == "capture_requested":
            if status.state in (TransactionState.Captured, TransactionState.NotFound):
                # NotFound: no longer open, so booked - the journal asked for this capture and nothing else; a
                # terminal names the booking under a receipt of its own (its last transaction, where it still is).
                released = None if record.preauthorized is None or record.captured is None else \
                    record.preauthorized - record.captured
                last = await self.terminal.last_transaction()
                confirmed = last.state is TransactionState.Captured and last.amount is not None and \
                    last.amount.amount == record.captured
                log.info("payment %s: the capture the charger did not hear of went through (%s)", record.payment_id,
                         "the terminal's last transaction" if confirmed else "the pre-authorisation is closed")
                await self.store.payment_step(record.payment_id, "captured", released=released,
                                              detail="reconciled: " + ("confirmed by the terminal's last transaction"
                                                                       if confirmed else "the pre-authorisation is "
                                                                       "no longer open"))
            elif status.state is TransactionState.PreAuthorized:
                assert record.captured is not None
                result = await self.terminal.capture(reference, self.money(record.captured))
                released = None if record.preauthorized is None else record.preauthorized - record.captured
                await self._answer(record, result, "captured", **({} if released is None else {"released": released}))
            else:
                await self.store.payment_step(record.payment_id, "failed", detail=f"terminal: {status.state}")
        elif record.state == "cancel_requested":
            if status.state is TransactionState.PreAuthorized:
                result = await self.terminal.cancel(reference)
                await self._answer(record, result, "cancelled", captured=Decimal(0))
            else:
                await self.store.payment_step(record.payment_id, "cancelled", detail=f"terminal: {status.state}")

    async def _known_reference(self, receipt_no: int) -> bool:
        return any(p.receipt_no == receipt_no for p in await self.store.payments(limit=1000))

    # ----------------------------------------------------------------- the day's end

    def _next_end_of_day_s(self, now: datetime) -> float:
        assert self.settings.end_of_day_at is not None
        local = now.astimezone(ZoneInfo(self.settings.time_zone))
        due = local.replace(hour=self.settings.end_of_day_at.hour, minute=self.settings.end_of_day_at.minute,
                            second=0, microsecond=0)
        if due <= local:
            due += timedelta(days=1)
        return (due - local).total_seconds()

    async def end_of_day(self) -> None:
        async with self._lock:
            result = await self.terminal.end_of_day()
        body: dict[str, Any] = {"result": type(result).__name__}
        if hasattr(result, "total"):
            body |= {"total": str(result.total.amount), "currency": result.total.currency,
                     "count": getattr(result, "count", None), "terminal_id": getattr(result, "terminal_id", None)}
        else:
            body["detail"] = str(getattr(result, "reason", getattr(result, "detail", "")))
        await self.store.append_ledger("end_of_day", body)
        log.info("end of day at the payment terminal: %s", body)

    async def run(self) -> None:
        """Reconcile at start and every minute; the end of day once a day."""
        loop = asyncio.get_running_loop()
        next_reconcile_s = loop.time()
        next_end_of_day_s = None if self.settings.end_of_day_at is None else \
            loop.time() + self._next_end_of_day_s(datetime.now().astimezone())
        while True:
            now_s = loop.time()
            if now_s >= next_reconcile_s:
                await self.reconcile()
                next_reconcile_s = now_s + RECONCILE_EVERY_S
            if next_end_of_day_s is not None and now_s >= next_end_of_day_s:
                await self.end_of_day()
                next_end_of_day_s = now_s + self._next_end_of_day_s(datetime.now().astimezone())
            wake_s = min(next_reconcile_s, next_end_of_day_s or next_reconcile_s)
            await asyncio.sleep(max(0.1, wake_s - loop.time()))

