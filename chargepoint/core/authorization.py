"""Standalone authorization: the local allow-list from the config. (OCPP lists and cache come later.)"""

from __future__ import annotations

from collections.abc import Iterable


class LocalAllowList:
    """Cards accepted without a CSMS. Ids compare case-insensitively: readers differ in hex case."""

    def __init__(self, id_tags: Iterable[str]) -> None:
        self._id_tags = frozenset(tag.strip().upper() for tag in id_tags)

    def accepts(self, id_tag: str) -> bool:
        return id_tag.strip().upper() in self._id_tags

    def __len__(self) -> int:
        return len(self._id_tags)
