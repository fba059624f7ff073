"""End-to-end fixtures: the test CSMS on a real WebSocket and the charger runtime on simulators."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from simulators.csms import TestCsms, TestPki, make_test_pki, pki_available

CP_ID = "CP-TEST-1"


@pytest.fixture
async def csms() -> AsyncIterator[TestCsms]:
    async with TestCsms() as server:
        yield server


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A throwaway CA with the test CSMS's server certificate and the charge point's client certificate."""
    if not pki_available():
        pytest.skip("needs the openssl command")
    return make_test_pki(tmp_path_factory.mktemp("pki"), CP_ID)


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    """A second, unrelated CA: it did not issue the test CSMS's server certificate."""
    if not pki_available():
        pytest.skip("needs the openssl command")
    return make_test_pki(tmp_path_factory.mktemp("other-pki"), CP_ID)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at DEBUG, the ocpp library's frame log and websockets' HTTP and frame logs included."""
    caplog.set_level(logging.DEBUG)
    for name in ("ocpp", "websockets", "websockets.client", "chargepoint"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog
