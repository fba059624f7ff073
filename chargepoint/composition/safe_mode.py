"""The daemon with a config that does not validate: the hardware held safe, nothing charges, the problems reported.

A config error must not keep a charger down in a way nobody can see: the daemon stays up (systemd does not loop on
restarts), answers ``chargepoint status`` with the problems, logs them, and restarts itself in place as soon as the
file validates - a technician fixes the file and the charger comes back, no ``systemctl`` needed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from chargepoint.config.loader import load_config_for_service
from chargepoint.errors import ConfigError
from chargepoint.runtime.control import ControlServer
from chargepoint.runtime.notify import sd_notify, watchdog_interval_s
from hal.hardware import Hardware

log = logging.getLogger(__name__)

CONFIG_POLL_S = 2.0
DEFAULT_STORAGE_DIR = Path("/var/lib/chargepoint")


class _SafeModeControl:
    def __init__(self, config_path: Path, problems: list[str], backend: str) -> None:
        self.config_path = config_path
        self.problems = problems
        self.backend = backend

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("op") == "status":
            return {"ok": True, "status": {
                "csms_connected": False, "mode": "safe: invalid configuration", "hardware": self.backend,
                "started_at": None, "connectors": [], "config_errors": self.problems,
            }}
        return {"ok": False, "error": f"the charger is held safe: {self.config_path} does not validate "
                                      f"({'; '.join(self.problems)})"}


def socket_path(raw: dict[str, Any]) -> Path:
    """The control socket the raw file asks for, as far as it can tell, else the default one."""
    storage = raw.get("storage")
    storage = storage if isinstance(storage, dict) else {}
    socket = storage.get("control_socket")
    if isinstance(socket, str) and socket:
        return Path(socket)
    directory = storage.get("dir")
    return (Path(directory) if isinstance(directory, str) and directory else DEFAULT_STORAGE_DIR) / "control.sock"


async def run_safe_mode(config_path: Path, hardware: Hardware | None, problems: list[str],
                        raw: dict[str, Any]) -> bool:
    """Hold until SIGTERM (False) or until the file validates (True: restart in place)."""
    for problem in problems:
        log.error("configuration: %s", problem)
    log.critical("holding the charger safe (contactors open, no charging) until %s validates%s", config_path,
                 "" if hardware is not None else " - the devices could not even be built from it")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    hardware_table = raw.get("hardware")
    backend = hardware_table.get("backend", "sim") if isinstance(hardware_table, dict) else "sim"
    control = ControlServer(socket_path(raw), _SafeModeControl(config_path, problems, str(backend)).dispatch)
    with contextlib.suppress(OSError):  # no state directory yet: the journal still says why
        await control.start()
    sd_notify("READY=1")
    sd_notify(f"STATUS=invalid configuration, held safe: {problems[0] if problems else config_path}")
    interval_s = min(CONFIG_POLL_S, watchdog_interval_s() or CONFIG_POLL_S)
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval_s)
            sd_notify("WATCHDOG=1")  # nothing runs but this loop: the devices are held safe, not driven
            if hardware is not None:
                await hardware.force_safe()
            if _validates(config_path):
                log.warning("%s validates now: restarting", config_path)
                return True
        return False
    finally:
        await control.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)


def _validates(path: Path) -> bool:
    try:
        load_config_for_service(path)
    except ConfigError:
        return False
    return True
