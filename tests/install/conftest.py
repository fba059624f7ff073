"""The installer's tests: a marker for the ones that build or copy a Debian root file system."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: runs install.sh in a Debian 12 root file system (tens of seconds; in the default suite, "
        "-m 'not slow' leaves them out)"
    )
