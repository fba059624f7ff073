"""End-to-end fixtures: the test CSMS on a real WebSocket and the charger runtime on simulators."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulators.csms import TestCsms

CP_ID = "CP-TEST-1"


@pytest.fixture
async def csms() -> AsyncIterator[TestCsms]:
    async with TestCsms() as server:
        yield server
