"""SIGHUP and ``chargepoint reload``: read the configuration file again and apply, without ending a session, the
keys that allow it (``chargepoint.config.keys.LIVE_KEYS``); say which changed keys wait for a restart.

An invalid file changes nothing: the daemon goes on with what it runs, and the reply (and the log) says why, file,
key and reason. Keys the CSMS manages keep the CSMS's value whatever the file says.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from chargepoint.config import keys as config_keys
from chargepoint.config import site
from chargepoint.config.loader import load_config
from chargepoint.errors import ConfigError
from chargepoint.runtime.app import ChargerApp

log = logging.getLogger(__name__)


class ConfigReloader:
    def __init__(self, path: Path, app: ChargerApp) -> None:
        self.path = path
        self.app = app
        self.restart_needed: list[str] = []
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[dict[str, Any]]] = set()

    def on_sighup(self) -> None:
        """The signal handler: reload in a task of its own (a handler must not wait)."""
        task = asyncio.get_running_loop().create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> dict[str, Any]:
        async with self._lock:  # two reloads at once would both compare against the same running config
            try:
                new = await asyncio.to_thread(load_config, self.path)  # file and validation off the loop
            except ConfigError as exc:
                log.error("reload: %s is not valid, nothing changed: %s", self.path, "; ".join(exc.problems))
                return {"ok": False, "error": f"{self.path} is not valid: nothing changed", "problems": exc.problems}
            changed = config_keys.changed_keys(self.app.config, new)
            live, restart = config_keys.split_live(changed)
            if live:
                await self.app.reconfigure(config_keys.with_live_keys(self.app.config, new, live), live)
                if "logging.level" in live:
                    logging.getLogger().setLevel(new.logging.level)
            self.restart_needed = restart
            for warning in await asyncio.to_thread(site.warnings, new, self.path):
                log.warning("reload: %s", warning)
            log.info("reload of %s: %s applied; %s", self.path, ", ".join(live) or "nothing",
                     f"needs a restart: {', '.join(restart)}" if restart else "nothing waits for a restart")
            return {"ok": True, "applied": live, "restart_needed": restart}
