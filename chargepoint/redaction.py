"""Masking secrets in log lines: the AuthorizationKey of a ChangeConfiguration and HTTP Authorization headers.

Neutral on purpose (it knows the shapes of the secrets, not the adapters that carry them): the OCPP link installs
it on the loggers that see frames, and the daemon on the ring of recent lines the diagnostics bundle takes.
"""

from __future__ import annotations

import logging
import re

REDACTED = "********"
# The value next to "key": "AuthorizationKey" in a ChangeConfiguration payload (JSON, or a Python repr of it),
# whichever of the two comes first; in any case, as keys are case-insensitive (CiString) and the charger takes
# "authorizationkey" too.
_Q = r"""["']"""
# A quoted string: an escape pair, or any character but a backslash or the closing quote. The two alternatives never
# match the same text, so a frame full of backslashes cannot make the regex backtrack exponentially (it did: 20
# escaped backslashes in a hostile ChangeConfiguration held the event loop for over a minute).
_STRING = r"""(["'])((?:\\.|(?!\2)[^\\])*)"""
_KEY_IS_AUTHORIZATION_KEY = rf"{_Q}key{_Q}\s*:\s*{_Q}AuthorizationKey{_Q}"
_SECRET_VALUE_AFTER = re.compile(rf"({_KEY_IS_AUTHORIZATION_KEY}\s*,\s*{_Q}value{_Q}\s*:\s*){_STRING}", re.IGNORECASE)
_SECRET_VALUE_BEFORE = re.compile(rf"({_Q}value{_Q}\s*:\s*){_STRING}(?=\2\s*,\s*{_KEY_IS_AUTHORIZATION_KEY})",
                                  re.IGNORECASE)
# An HTTP Authorization header as websockets logs it at DEBUG ("> Authorization: Basic <token>").
_AUTH_HEADER = re.compile(r"(?i)(\bauthorization\s*:\s*)(?:\w+\s+)?\S+")


class RedactSecrets(logging.Filter):
    """Keeps the AuthorizationKey out of the logs: the ``ocpp`` library logs every frame (ChangeConfiguration
    AuthorizationKey included) at INFO, and websockets logs the Basic-auth header and each frame at DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("websockets") and record.msg in ("< %s", "> %s") and isinstance(record.args, tuple):
            opcode = getattr(getattr(record.args[0], "opcode", None), "name", "")
            if opcode in ("TEXT", "BINARY", "CONT"):
                # The ocpp logger shows every frame whole (and redacted); websockets' elided copy could cut the
                # key's name off yet still show its value, so it shows no payload at all.
                size = len(getattr(record.args[0], "data", b""))
                record.msg = f"{record.msg[0]} {opcode} [{size} bytes, payload not logged]"
                record.args = None
                return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


def redact(text: str) -> str:
    """``text`` with the AuthorizationKey of a ChangeConfiguration and any HTTP Authorization header masked."""
    if "authorizationkey" in text.lower():
        for pattern in (_SECRET_VALUE_AFTER, _SECRET_VALUE_BEFORE):
            text = pattern.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if "uthorization" in text:
        text = _AUTH_HEADER.sub(lambda m: m.group(1) + REDACTED, text)
    return text
