"""Start the charger pointed at the test CSMS, with fast timings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chargepoint.config.schema import Config
from simulators.csms import TestCsms
from tests.e2e.conftest import CP_ID
from tests.integration.harness import make_config


def ocpp_config(tmp_path: Path, csms: TestCsms, **sections: dict[str, Any]) -> Config:
    ocpp: dict[str, Any] = {"csms_url": csms.url, "charge_point_id": CP_ID}
    ocpp.update(sections.pop("ocpp", {}))
    return make_config(tmp_path, ocpp=ocpp, **sections)
