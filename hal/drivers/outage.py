"""Link failures of a polled device, logged once per outage and its return: a dead line must not flood the journal."""

from __future__ import annotations

import logging

_log = logging.getLogger(__name__)


class OutageLog:
    """A board link's failures logged once per outage, and its return: a dead line must not flood the journal."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._failing = False

    def began(self, exc: Exception) -> None:
        if not self._failing:
            _log.error("%s: %s", self._name, exc)
        self._failing = True

    def ended(self) -> None:
        if self._failing:
            _log.info("%s: answering again", self._name)
        self._failing = False
