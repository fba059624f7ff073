"""Price packages: which tariff and which limits apply to a card.

Precedence, first match wins: a package naming the card's group (parentIdTag from the local list, the cache or
the CSMS's answer), then a package whose card pattern matches the idTag, then the CSMS's cached default price
(California Pricing ``DefaultPrice``, the operator's current ad hoc price), then the configured default tariff.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from chargepoint.pricing.tariff import Tariff


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    tariff: Tariff
    groups: frozenset[str] = frozenset()
    id_tag_patterns: tuple[str, ...] = ()
    language: str | None = None
    max_cost: Decimal | None = None
    max_energy_Wh: int | None = None
    max_duration_s: float | None = None

    def matches_group(self, parent_id_tag: str | None) -> bool:
        return parent_id_tag is not None and parent_id_tag.upper() in self.groups

    def matches_card(self, id_tag: str) -> bool:
        tag = id_tag.upper()
        return any(fnmatch.fnmatchcase(tag, pattern.upper()) for pattern in self.id_tag_patterns)


@dataclass(frozen=True, slots=True)
class Choice:
    """The tariff (None: unpriced) and package chosen for a session, and why."""

    tariff: Tariff | None
    package: Package | None
    source: str  # "group", "card", "csms-default", "default", "none"


def choose(
    packages: Sequence[Package],
    id_tag: str,
    parent_id_tag: str | None,
    csms_default: Tariff | None,
    default: Tariff | None,
) -> Choice:
    for package in packages:
        if package.matches_group(parent_id_tag):
            return Choice(package.tariff, package, "group")
    for package in packages:
        if package.matches_card(id_tag):
            return Choice(package.tariff, package, "card")
    if csms_default is not None:
        return Choice(csms_default, None, "csms-default")
    if default is not None:
        return Choice(default, None, "default")
    return Choice(None, None, "none")
