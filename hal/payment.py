"""Payment terminal port: pre-authorise, capture, cancel, status, end-of-day - and nothing of the card but a token.

Card data never reaches our code beyond ``MaskedCard`` (the last four digits, the scheme's name and the
terminal's own card token where it sends one): no PAN, no track data, no expiry. A driver that receives more
masks it before it builds a result or writes a log line.

Every call takes a timeout and returns a typed result instead of raising for the outcomes a payment can have:

- ``Approved``: the terminal did it; carries the terminal's references (receipt number, trace number, terminal
  id) and the amount it approved, which may be less than asked (a partial approval).
- ``Declined``: the terminal or the card issuer refused; carries the terminal's result code and its meaning.
- ``TimedOut``: no outcome within the timeout. ``result_code`` set: the terminal itself gave up (ZVT 0x6C,
  nobody presented a card) and nothing is reserved. ``result_code`` None: *our* deadline expired; the driver
  asked the terminal to abort, but whether it booked is unknown - reconcile (``transaction_status``).
- ``TerminalUnavailable``: no connection, or the terminal says it cannot work now (no host link, busy).
  ``in_doubt`` is True when the link broke after the request was sent: reconcile as for ``TimedOut``.

Exceptions are for misuse and broken protocol: ``ValueError`` for an amount that is not positive or in the
wrong currency, ``PaymentProtocolError`` when the terminal sends what the protocol does not allow.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Protocol, runtime_checkable

from hal.errors import HalError

__all__ = [
    "CURRENCIES", "Approved", "Declined", "EndOfDay", "EndOfDayResult", "MaskedCard", "Money", "PaymentError",
    "PaymentProtocolError", "PaymentResult", "PaymentTerminal", "TerminalReference", "TerminalStatus",
    "TerminalUnavailable", "TimedOut", "TransactionState", "TransactionStatus", "mask_pan",
]

# ISO 4217: alphabetic code -> (numeric code, minor-unit exponent). Terminals in the ZVT markets take these.
CURRENCIES: Final[dict[str, tuple[int, int]]] = {
    "EUR": (978, 2), "CHF": (756, 2), "GBP": (826, 2), "USD": (840, 2), "DKK": (208, 2), "SEK": (752, 2),
    "NOK": (578, 2), "PLN": (985, 2), "CZK": (203, 2), "HUF": (348, 2),
}


class PaymentError(HalError):
    """A payment terminal did not do what it was asked, in a way no result type describes."""


class PaymentProtocolError(PaymentError):
    """The terminal sent something its protocol does not allow (a malformed frame, an unexpected answer)."""


@dataclass(frozen=True, slots=True)
class Money:
    """An amount of money: a ``Decimal`` with its ISO 4217 currency, exact to the currency's minor unit."""

    amount: Decimal
    currency: str = "EUR"

    def __post_init__(self) -> None:
        if self.currency not in CURRENCIES:
            raise ValueError(f"unknown currency {self.currency!r} (known: {', '.join(sorted(CURRENCIES))})")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise ValueError(f"amount must be a finite Decimal, not {self.amount!r}")
        if self.amount != self.amount.quantize(Decimal(1).scaleb(-self.exponent)):
            raise ValueError(f"{self.amount} {self.currency} is finer than the currency's minor unit")

    @property
    def exponent(self) -> int:
        return CURRENCIES[self.currency][1]

    @property
    def numeric_code(self) -> int:
        return CURRENCIES[self.currency][0]

    @property
    def minor_units(self) -> int:
        """The amount in minor units (cents), as payment protocols carry it."""
        return int(self.amount.scaleb(self.exponent))

    @classmethod
    def from_minor_units(cls, minor: int, currency: str = "EUR") -> Money:
        return cls(Decimal(minor).scaleb(-CURRENCIES[currency][1]), currency)

    @classmethod
    def currency_of(cls, numeric_code: int) -> str | None:
        """The alphabetic code of an ISO 4217 numeric code we know, else None."""
        return next((alpha for alpha, (num, _) in CURRENCIES.items() if num == numeric_code), None)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def mask_pan(digits: str) -> str | None:
    """The last four digits of a (possibly already masked) card number, or None if it shows no four digits.

    Terminals mask the PAN themselves (ZVT: ``E`` nibbles); whatever arrives, only the last four survive.
    """
    tail = digits[-4:]
    return tail if len(tail) == 4 and tail.isdigit() else None


@dataclass(frozen=True, slots=True)
class MaskedCard:
    """What we may know of a card: never a PAN.

    ``last4``: the last four digits; ``scheme``: the card's name as the terminal calls it ("Mastercard",
    "girocard"); ``token``: an opaque reference the terminal gives for the card (e.g. a ZVT TLV card token or
    the contactless UID) - stable per card where the terminal supports it, None otherwise.
    """

    last4: str | None = None
    scheme: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if self.last4 is not None and (len(self.last4) != 4 or not self.last4.isdigit()):
            raise ValueError("last4 must be exactly four digits")

    def __str__(self) -> str:
        return f"{self.scheme or 'card'} ****{self.last4 or '????'}"


@dataclass(frozen=True, slots=True)
class TerminalReference:
    """How the terminal names one transaction: what a capture, cancel or reconciliation must quote back.

    ``receipt_no`` (ZVT BMP 87) identifies a pre-authorisation in the terminal's turnover records;
    ``trace_no`` (BMP 0B) and ``aid`` (BMP 3B, the authorisation attribute) are sent back with a booking;
    ``terminal_id`` (BMP 29) names the terminal that holds it.
    """

    receipt_no: int
    trace_no: int | None = None
    terminal_id: str | None = None
    aid: str | None = None


@dataclass(frozen=True, slots=True)
class Approved:
    """The terminal approved. ``amount`` is what it approved (pre-authorised, booked or reversed); a
    pre-authorisation may approve less than ``requested`` (``partial``). A capture's ``amount`` is what was
    booked; the rest of its pre-authorisation is free again."""

    reference: TerminalReference
    amount: Money
    requested: Money
    card: MaskedCard = field(default_factory=MaskedCard)
    receipt: tuple[str, ...] = ()

    @property
    def partial(self) -> bool:
        return self.amount.amount < self.requested.amount


@dataclass(frozen=True, slots=True)
class Declined:
    """The terminal, the host or the card issuer refused. ``result_code`` is the protocol's (ZVT result code,
    0x01-0x63 from the issuer/network); ``reason`` says it in words, with the terminal's own text when it sent one."""

    reason: str
    result_code: int | None = None
    card: MaskedCard | None = None
    receipt: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TimedOut:
    """No outcome in time. ``result_code`` None: our deadline expired and the outcome is unknown (reconcile);
    set: the terminal gave up by itself (no card presented, abort key) and nothing is reserved."""

    detail: str
    result_code: int | None = None

    @property
    def in_doubt(self) -> bool:
        return self.result_code is None


@dataclass(frozen=True, slots=True)
class TerminalUnavailable:
    """The terminal cannot be reached or cannot work now. ``in_doubt``: the request was sent before the link broke,
    so the terminal may have acted on it (reconcile)."""

    detail: str
    result_code: int | None = None
    in_doubt: bool = False


PaymentResult = Approved | Declined | TimedOut | TerminalUnavailable


@dataclass(frozen=True, slots=True)
class TerminalStatus:
    """The terminal's answer to a status enquiry. ``ready`` is True when it can take a payment now."""

    ready: bool
    status_code: int
    terminal_id: str | None = None
    software_version: str | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class EndOfDay:
    """An end-of-day that went through: the totals the terminal submitted to its host."""

    total: Money
    count: int | None = None
    terminal_id: str | None = None
    receipt: tuple[str, ...] = ()


EndOfDayResult = EndOfDay | Declined | TimedOut | TerminalUnavailable


class TransactionState(enum.StrEnum):
    """What the terminal says about one of its transactions, as far as it can say."""

    PreAuthorized = "PreAuthorized"  # open: the money is reserved, nothing booked yet
    Captured = "Captured"  # booked (the rest of its pre-authorisation released)
    Cancelled = "Cancelled"  # reversed: nothing booked, nothing reserved
    Declined = "Declined"
    NotFound = "NotFound"  # the terminal knows no open or last transaction under this reference
    Unknown = "Unknown"  # the terminal could not be asked


@dataclass(frozen=True, slots=True)
class TransactionStatus:
    state: TransactionState
    reference: TerminalReference | None = None
    amount: Money | None = None
    card: MaskedCard | None = None
    detail: str = ""


@runtime_checkable
class PaymentTerminal(Protocol):
    """A card payment terminal attached to the charger (ZVT over TCP, a simulator).

    Contract:
    - One request at a time per terminal: a call waits for the one before it.
    - ``pre_authorize(amount)`` reserves at most ``amount`` on the presented card; it waits for the card as long
      as ``timeout_s`` allows (the terminal shows its own prompts). A partial approval reserves less.
    - ``capture(reference, amount)`` books ``amount`` (at most the pre-authorised amount) and releases the rest
      of the pre-authorisation in the same step (ZVT Book Total: no separate release needed); a second capture
      of the same pre-authorisation is declined by the terminal. A capture of 0 is a ``cancel``.
    - ``cancel(reference)`` reverses a pre-authorisation that was not captured: nothing is booked.
    - ``status()`` asks whether the terminal can take a payment now; ``end_of_day()`` submits the day's
      bookings to the host and returns the totals.
    - ``transaction_status(reference)`` and ``last_transaction()`` reconcile after a timeout, a lost link or a
      restart of either side: whether a pre-authorisation is still open, was captured or never happened.
    - No result, exception or log line carries a card number beyond ``MaskedCard``.
    - ``aclose()`` ends the link; an open pre-authorisation stays open on the terminal (it is the caller's, to
      capture or cancel after reconciling).
    """

    async def pre_authorize(self, amount: Money, *, timeout_s: float | None = None) -> PaymentResult: ...

    async def capture(
        self, reference: TerminalReference, amount: Money, *, timeout_s: float | None = None
    ) -> PaymentResult: ...

    async def cancel(self, reference: TerminalReference, *, timeout_s: float | None = None) -> PaymentResult: ...

    async def status(self, *, timeout_s: float | None = None) -> TerminalStatus | TimedOut | TerminalUnavailable: ...

    async def end_of_day(self, *, timeout_s: float | None = None) -> EndOfDayResult: ...

    async def transaction_status(
        self, reference: TerminalReference, *, timeout_s: float | None = None
    ) -> TransactionStatus: ...

    async def last_transaction(self, *, timeout_s: float | None = None) -> TransactionStatus: ...

    async def aclose(self) -> None: ...

