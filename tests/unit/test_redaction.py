"""Masking the AuthorizationKey in frames and log lines: correct on escapes, and linear on hostile input."""

from __future__ import annotations

import time

import pytest

from chargepoint.redaction import REDACTED, redact


@pytest.mark.parametrize("frame", [
    '[2,"1","ChangeConfiguration",{"key": "AuthorizationKey", "value": "se\\"cr\\\\et"}]',
    '[2,"1","ChangeConfiguration",{"value": "se\\"cr\\\\et", "key": "authorizationkey"}]',
    "{'key': 'AuthorizationKey', 'value': 'se\\'cr\\\\et'}",
])
def test_the_key_is_masked_whatever_its_escapes(frame: str) -> None:
    masked = redact(frame)
    assert "cr" not in masked
    assert REDACTED in masked


@pytest.mark.parametrize("n", [20, 4000])
def test_a_frame_of_backslashes_is_masked_in_linear_time(n: int) -> None:
    """20 escaped backslashes before an unterminated value took the old pattern over a minute (exponential
    backtracking); the event loop that logs the frame must not stall on what a hostile CSMS sends."""
    frame = '[2,"1","ChangeConfiguration",{"value": "' + "\\\\" * n + 'x, "key": "AuthorizationKey"'
    t0 = time.perf_counter()
    redact(frame)
    assert time.perf_counter() - t0 < 0.5
