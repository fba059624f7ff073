"""Firmware release tests: a marker for those that build venvs and run daemons (tens of seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.release.harness import build_wheel, copy_source, dependencies_dir, make_install_root
from tests.release.kit import Manufacturer, manufacturer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: builds wheels and venvs or runs the daemon through updates (tens of seconds; in the "
        "default suite, -m 'not slow' leaves them out)"
    )
    config.addinivalue_line("markers", "health_timeout_s(seconds): the [update] health_timeout_s of the cycle tests")


@dataclass
class Kit:
    """Built once per session: the wheels, the dependencies, an install root with 0.1.0, the manufacturer."""

    pristine_root: Path
    dependencies: Path
    good: Path  # chargepoint 0.2.0
    broken: Path  # chargepoint 0.2.1, whose 'chargepoint run' fails at import
    maker: Manufacturer


@pytest.fixture(scope="session")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    base = tmp_path_factory.mktemp("release-kit")
    wheels = base / "wheels"
    initial = build_wheel(copy_source(base / "src-0.1.0", "0.1.0"), wheels / "0.1.0")
    good = build_wheel(copy_source(base / "src-0.2.0", "0.2.0"), wheels / "0.2.0")
    broken = build_wheel(copy_source(base / "src-0.2.1", "0.2.1", broken=True), wheels / "0.2.1")
    dependencies = dependencies_dir(base / "dependencies")
    root = make_install_root(base / "pristine-root", initial, dependencies)
    return Kit(root, dependencies, good, broken, manufacturer("ec", "Charger Maker"))
