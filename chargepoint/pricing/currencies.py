"""ISO 4217 currency codes a tariff may be priced in, and their minor units.

``ISO_4217`` holds the active codes of ISO 4217 (list one, as amended up to 2025) that name money: national
and regional currencies and the fund codes (BOV, CHE, CLF, ...). The codes that are no money at all are left
out on purpose, so a tariff in them is refused: precious metals (XAU, XAG, XPD, XPT), bond-market units
(XBA-XBD), XDR, XSU, XUA, the testing code XTS and "no currency" XXX. Codes withdrawn recently but still met
in old configurations (HRK, SLL, CUC) are not accepted either.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

ISO_4217: Final[frozenset[str]] = frozenset(
    (
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN",
        "BAM", "BBD", "BDT", "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD",
        "CAD", "CDF", "CHE", "CHF", "CHW", "CLF", "CLP", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK",
        "DJF", "DKK", "DOP", "DZD",
        "EGP", "ERN", "ETB", "EUR",
        "FJD", "FKP",
        "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD",
        "HKD", "HNL", "HTG", "HUF",
        "IDR", "ILS", "INR", "IQD", "IRR", "ISK",
        "JMD", "JOD", "JPY",
        "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT",
        "LAK", "LBP", "LKR", "LRD", "LSL", "LYD",
        "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN",
        "NAD", "NGN", "NIO", "NOK", "NPR", "NZD",
        "OMR",
        "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "PYG",
        "QAR",
        "RON", "RSD", "RUB", "RWF",
        "SAR", "SBD", "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
        "THB", "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS",
        "UAH", "UGX", "USD", "USN", "UYI", "UYU", "UYW", "UZS",
        "VED", "VES", "VND", "VUV",
        "WST",
        "XAF", "XCD", "XCG", "XOF", "XPF",
        "YER",
        "ZAR", "ZMW", "ZWG", "ZWL",
    )
)

# Currencies whose minor unit is not the usual hundredth (ISO 4217 "minor unit" column).
_MINOR_UNITS: Final[dict[str, int]] = {
    # none
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0, "RWF": 0,
    "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    # thousandths
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    # ten-thousandths (units of account)
    "CLF": 4, "UYW": 4,
}


def minor_units(code: str) -> int:
    """Decimals of the currency's minor unit: 2 unless ISO 4217 says otherwise (JPY 0, KWD 3, CLF 4)."""
    return _MINOR_UNITS.get(code.upper(), 2)


_PLAIN_AMOUNT: Final = re.compile(r"[0-9]+(\.[0-9]+)?")
_MAX_AMOUNT: Final = Decimal(1_000_000_000)  # a balance typed by a person is far below this


def parse_amount(text: str, currency: str) -> Decimal:
    """A money amount typed by a person, in ``currency``: plain digits with an optional decimal point (no sign, no
    exponent, no grouping), a whole number of the currency's minor unit (0.01 EUR, 1 JPY, 0.001 KWD). Returned
    with exactly the minor unit's decimals ("100" EUR is 100.00); ``ValueError`` saying why otherwise."""
    text = text.strip()
    if not _PLAIN_AMOUNT.fullmatch(text):
        raise ValueError(f"not an amount: {text!r} (expected digits and a decimal point, e.g. \"20.00\")")
    if len(text) > 24 or Decimal(text) >= _MAX_AMOUNT:
        raise ValueError(f"{text}: too large (at most {_MAX_AMOUNT - 1} {currency.upper()})")
    decimals = minor_units(currency)
    quantum = Decimal(1).scaleb(-decimals)
    amount = Decimal(text)
    if amount != amount.quantize(quantum):
        unit = "whole amounts" if decimals == 0 else f"at most {decimals} decimals"
        raise ValueError(f"{text} {currency.upper()}: {currency.upper()} takes {unit}")
    return amount.quantize(quantum)
