"""Start the charger pointed at the test CSMS, with fast timings."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chargepoint.config.schema import Config
from chargepoint.logbook import RECENT_FRAMES, RECENT_LOG, keep_recent_log
from chargepoint.redaction import RedactSecrets
from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.integration.harness import Charger, make_config


async def registered(charger: Charger) -> None:
    """The charger is registered with the CSMS and has read its meter once."""
    await charger.wait_for(lambda: charger.app.status()["csms_connected"], what="registered")
    await charger.wait_for(lambda: charger.status()["meter_energy_Wh"] is not None, what="meter")


def ocpp_config(tmp_path: Path, csms: TestCsms, **sections: dict[str, Any]) -> Config:
    ocpp: dict[str, Any] = {"csms_url": csms.url, "charge_point_id": CP_ID}
    ocpp.update(sections.pop("ocpp", {}))
    return make_config(tmp_path, ocpp=ocpp, **sections)


@contextlib.contextmanager
def keeping_recent_log(level: int) -> Iterator[None]:
    """The daemon keeps the recent log for the diagnostics bundle (``configure_logging``); in-process tests do it
    with this, at ``level``."""
    RECENT_LOG.clear()
    RECENT_FRAMES.clear()
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    handler = keep_recent_log([RedactSecrets()])
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(before)
