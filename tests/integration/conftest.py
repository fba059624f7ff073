"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_cli import Daemon


@pytest.fixture
def daemon(config_path: Path) -> Iterator[Daemon]:
    """A real daemon process on the ``config_path`` the test module provides; killed if the test left it running."""
    d = Daemon(config_path)
    d.start()
    yield d
    if d.process is not None and d.process.poll() is None:
        d.process.kill()
        d.process.wait()
