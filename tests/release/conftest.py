"""Firmware release tests: a marker for those that build venvs and run daemons (tens of seconds)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds wheels and venvs or runs the daemon through updates (tens of seconds; in the "
        "default suite, -m 'not slow' leaves them out)"
    )
    config.addinivalue_line("markers", "health_timeout_s(seconds): the [update] health_timeout_s of the cycle tests")
