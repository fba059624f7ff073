"""Fast path for ``chargepoint run``: reach the safe state before the heavy imports.

Validating the config needs pydantic, the meter needs pymodbus, the CLI needs click: together they
take hundreds of milliseconds on a Pi. The contactor and pilot must be safe before any of that, so
this module reads the raw TOML with the standard library, builds the devices in their safe state,
commands them safe, and only then imports and validates everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chargepoint.composition.logging_setup import configure_early_logging, configure_logging

if TYPE_CHECKING:
    from hal.hardware import Hardware

log = logging.getLogger("chargepoint.composition.daemon")

EXIT_CONFIG = 2
DEFAULT_CONFIG = "/etc/chargepoint/config.toml"


def _raw_hardware(path: Path) -> tuple[str, int, dict[str, Any], dict[str, Any]] | None:
    """(backend, connector count, simulator table, hardware table) from the raw file, or None if it cannot tell."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        hardware = raw.get("hardware", {})
        backend = hardware.get("backend", "sim")
        connectors = raw.get("charger", {}).get("connectors", 1)
        simulator = raw.get("simulator", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    if (
        not isinstance(backend, str)
        or not isinstance(connectors, int)
        or not isinstance(simulator, dict)
        or not isinstance(hardware, dict)
    ):
        return None
    return backend, connectors, simulator, hardware


def _raw_table(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}


async def _early_safe(path: Path) -> Hardware | None:
    """Build and command the devices safe from the raw file; None if the file is not usable yet."""
    from chargepoint.composition.devices import create_hardware

    raw = _raw_hardware(path)
    if raw is None:
        return None
    try:
        hardware = create_hardware(*raw)
    except (TypeError, ValueError, KeyError, ImportError, OSError):
        # ImportError covers BackendUnavailable, OSError covers HalError (a missing gpiochip or PWM chip).
        return None  # the validation (or the build from the validated config) explains what is wrong
    await hardware.force_safe()
    return hardware


async def _boot(path: Path, t0: float) -> int:
    hardware = await _early_safe(path)
    if hardware is not None:
        log.info("safe state reached %.1f ms after start: contactors open, pilots at +12 V",
                 (time.monotonic() - t0) * 1000)
    from chargepoint.composition.daemon import run_daemon
    from chargepoint.composition.devices import matches
    from chargepoint.config.loader import load_config_for_service
    from chargepoint.errors import ConfigError

    try:
        config, pricing_problems = load_config_for_service(path)
    except ConfigError as exc:  # safe mode logs its problems, one record each
        from chargepoint.composition.safe_mode import run_safe_mode

        if _trial_refuses(path, exc.problems):
            if hardware is not None:
                await hardware.aclose()
            return EXIT_CONFIG  # the service manager starts us again through the update guard, which rolls back
        try:
            valid_now = await run_safe_mode(path, hardware, list(exc.problems), _raw_table(path))
        finally:
            if hardware is not None:
                await hardware.aclose()
        from chargepoint.composition.daemon import EXIT_REEXEC

        return EXIT_REEXEC if valid_now else EXIT_CONFIG
    configure_logging(config.logging.level)
    from chargepoint.config.site import warnings as site_warnings

    for warning in site_warnings(config, path):  # valid, but probably not meant (docs/configuration.md)
        log.warning("config: %s", warning)
    if hardware is not None and not matches(hardware, config):
        # The raw values differ from the validated ones (a default, a coercion): rebuild from the latter.
        await hardware.aclose()
        hardware = None
    return await run_daemon(config, hardware, t0, pricing_problems=pricing_problems, config_path=path)


def _trial_refuses(path: Path, problems: list[str]) -> bool:
    """A new firmware on trial that cannot use the configuration the old one ran with: ask for the rollback rather
    than hold the charger safe forever (a config the old firmware takes is the technician's, not an error)."""
    from chargepoint import __version__
    from chargepoint.release.guard import paths_from_config, request_rollback

    _, state_file, _ = paths_from_config(path)
    reason = f"chargepoint {__version__} does not take the configuration: {'; '.join(problems)[:500]}"
    if not request_rollback(state_file, __version__, reason):
        return False
    log.critical("%s: rolling back to the firmware before", reason)
    return True


def main(argv: list[str]) -> int:
    t0 = time.monotonic()
    parser = argparse.ArgumentParser(prog="chargepoint run", description="Run the charger in the foreground.")
    parser.add_argument("--config", type=Path, default=Path(os.environ.get("CHARGEPOINT_CONFIG", DEFAULT_CONFIG)),
                        help="configuration file (TOML)")
    args = parser.parse_args(argv)
    # SIGHUP (systemctl reload) reloads the config once the daemon runs; before that it must not kill the process.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    configure_early_logging()  # journald's own protocol under systemd, one text line per record otherwise
    code = asyncio.run(_boot(args.config, t0))
    from chargepoint.composition.daemon import EXIT_REEXEC

    if code == EXIT_REEXEC:
        # Reset: the same process image starts again, so it works with or without systemd.
        log.warning("restarting in place")
        logging.shutdown()
        os.execv(sys.executable, [sys.executable, "-m", "chargepoint", "run", "--config", str(args.config)])
    return code
