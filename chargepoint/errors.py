"""One exception tree for the whole firmware.

Each class also inherits the builtin it resembles, so callers that only know the builtin
(``except TimeoutError``) still catch ours.
"""

from __future__ import annotations

from chargepoint.core.errors import ChargePointError

__all__ = ["ChargePointError", "ConfigError", "ControlError", "StoreError"]


class ConfigError(ChargePointError, ValueError):
    """The configuration file is missing, unreadable or invalid.

    ``problems`` holds one line per problem, each naming the file and the key.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(problems))


class StoreError(ChargePointError, OSError):
    """The persistent store cannot be opened, migrated or written."""


class ControlError(ChargePointError, RuntimeError):
    """A request over the local control socket failed (daemon not running, refused action)."""
