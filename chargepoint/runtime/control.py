"""Local control socket, the daemon's side: newline-delimited JSON, one request and one reply per connection.
The CLI's side is ``chargepoint.cli.control_client``.

The socket file is created with mode 0600 (umask held while binding) inside the storage directory:
only the daemon's user (and root) may drive the charger from the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

from chargepoint.config.keys import plain
from chargepoint.runtime.app import ChargerApp

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024

SimActions = Callable[[int, str, str | None], str]
"""Applies a simulator stimulus (connector, action, argument) and says what happened; ``ValueError`` if the
simulated world cannot do it. Given by the composition root when the charger runs on simulators."""


Dispatch = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers one request (a JSON object with an "op"); ``ValueError``/``KeyError``/``TypeError`` become an error reply."""


class ControlServer:
    """The socket: one JSON request line in, one JSON reply line out; what the ops do is ``dispatch``'s business."""

    def __init__(self, path: Path, dispatch: Dispatch) -> None:
        self.path = path
        self._dispatch = dispatch
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a stale socket from a crashed run
        old_umask = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve, path=str(self.path),
                                                           limit=MAX_REQUEST_BYTES)
        finally:
            os.umask(old_umask)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await reader.readline()
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("request must be a JSON object")
                reply = await self._dispatch(request)
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": str(exc)}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()



class Reloader(Protocol):
    """The composition root's: it knows the file and owns the logging."""

    restart_needed: list[str]  # keys changed in the file that wait for a restart

    async def reload(self) -> dict[str, Any]:
        """Read the file again and apply what needs no restart: {"ok", "applied", "restart_needed"} or
        {"ok": False, "error", "problems"}."""
        ...


class ChargerControl:
    """The ops of a running charger: status, sessions, prepaid, faults and, on simulators, sim stimuli."""

    def __init__(self, app: ChargerApp, sim: SimActions | None = None, reloader: Reloader | None = None,
                 extra: dict[str, Dispatch] | None = None) -> None:
        self.app = app
        self.sim = sim
        self.reloader = reloader
        self.extra = dict(extra or {})  # ops the composition root answers (diagnostics ...)

    async def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            status = self.app.status()
            if self.reloader is not None and self.reloader.restart_needed:
                status["restart_needed"] = list(self.reloader.restart_needed)
            return {"ok": True, "status": status}
        if op == "sessions":
            await self.app.flush_store()
            return {"ok": True, "sessions": await self.app.recent_sessions(int(request.get("limit", 20)))}
        if op == "prepaid":
            await self.app.flush_store()
            accounts = await self.app.prepaid(request.get("id_tag"), request.get("balance"), request.get("add"))
            return {"ok": True, "accounts": accounts}
        if op == "selftest":
            return {"ok": True, "checks": await self.app.selftest()}
        if op == "fault-list":
            return {"ok": True, **await self.app.fault_listing(int(request.get("limit", 50)))}
        if op == "fault-clear":
            connector = request.get("connector")
            cleared = await self.app.clear_faults(None if connector is None else int(connector),
                                                  "technician (chargepoint fault clear)")
            return {"ok": True, **cleared}
        if op == "sim":
            return self._sim(request)
        if op == "config":
            pending = [] if self.reloader is None else list(self.reloader.restart_needed)
            return {"ok": True, "config": plain(self.app.config), "restart_needed": pending}
        if op == "availability":
            connector = int(request.get("connector", 0))
            ids = list(self.app.connectors) if connector == 0 else [self._connector(connector)]
            await self.app.set_operative(ids, bool(request["operative"]))
            # As ChangeAvailability's Scheduled: a running session goes on, the change comes when it ends.
            busy = [c for c in ids if self.app.connectors[c].session is not None]
            return {"ok": True, "connectors": ids, "scheduled": busy}
        if op == "unlock":
            return {"ok": True, "result": await self.app.unlock(self._connector(int(request["connector"])))}
        if isinstance(op, str) and op in self.extra:
            return await self.extra[op](request)
        if op == "reload":
            if self.reloader is None:
                return {"ok": False, "error": "this daemon was started without a configuration file to read again"}
            return await self.reloader.reload()
        if op == "qr":
            c = self.app.connectors.get(int(request.get("connector", 1)))
            if c is None:
                return {"ok": False, "error": f"no connector {request.get('connector')}"}
            url = self.app.qr_text(c)
            if url is None:
                return {"ok": False, "error": f"no QR code shown: {self.app.mobile.why_not_shown(c)}"}
            return {"ok": True, "url": url}
        raise ValueError(f"unknown op {op!r}")

    def _connector(self, connector_id: int) -> int:
        if connector_id not in self.app.connectors:
            have = ", ".join(map(str, self.app.connectors))
            raise ValueError(f"no connector {connector_id} (this charger has {have})")
        return connector_id

    def _sim(self, request: dict[str, Any]) -> dict[str, Any]:
        if self.sim is None:
            return {"ok": False, "error": "the daemon runs on real hardware ([hardware] backend is not \"sim\"); "
                                          "simulator actions are not available"}
        connector_id = int(request.get("connector", 1))
        action = str(request["action"])
        if action == "card" and self.app.cards is None:
            return {"ok": False, "error": "card payment is off on this charger: it needs a payment terminal, "
                                          "[card_payment] enabled and no free vend ([charger] free_vend = false)"}
        argument = request.get("argument")
        try:
            message = self.sim(connector_id, action, None if argument is None else str(argument))
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        log.info("simulator: connector %d: %s", connector_id, message)
        return {"ok": True, "message": message}
