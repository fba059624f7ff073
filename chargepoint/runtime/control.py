"""Local control socket: newline-delimited JSON, one request and one reply per connection.

The socket file is created with mode 0600 (umask held while binding) inside the storage directory:
only the daemon's user (and root) may drive the charger from the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from chargepoint.errors import ControlError
from chargepoint.runtime.app import ChargerApp

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 64 * 1024


class ControlServer:
    def __init__(self, app: ChargerApp, path: Path) -> None:
        self.app = app
        self.path = path
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

    async def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        if op == "status":
            return {"ok": True, "status": self.app.status()}
        if op == "sessions":
            await self.app.flush_store()
            return {"ok": True, "sessions": await self.app.recent_sessions(int(request.get("limit", 20)))}
        if op == "prepaid":
            await self.app.flush_store()
            accounts = await self.app.prepaid(request.get("id_tag"), request.get("balance"), request.get("add"))
            return {"ok": True, "accounts": accounts}
        if op == "sim":
            return self._sim(request)
        raise ValueError(f"unknown op {op!r}")

    def _sim(self, request: dict[str, Any]) -> dict[str, Any]:
        station = self.app.hardware.station
        if station is None:
            return {"ok": False, "error": "the daemon runs on real hardware ([hardware] backend is not \"sim\"); "
                                          "simulator actions are not available"}
        from simulators.station import SimActionError

        connector_id = int(request.get("connector", 1))
        action = str(request["action"])
        argument = request.get("argument")
        try:
            sim_connector = station.connector(connector_id)
            message = sim_connector.apply(action, None if argument is None else str(argument))
        except (SimActionError, ValueError) as exc:
            return {"ok": False, "error": str(exc)}
        log.info("simulator: connector %d: %s", connector_id, message)
        return {"ok": True, "message": message}


async def request(path: Path, payload: dict[str, Any], timeout_s: float = 5.0) -> dict[str, Any]:
    """Send one request to the daemon's control socket and return its reply."""
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=16 * 1024 * 1024)
            writer.write(json.dumps(payload).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            writer.close()
    except FileNotFoundError:
        raise ControlError(f"no daemon is running: control socket {path} does not exist") from None
    except ConnectionRefusedError:
        raise ControlError(f"no daemon is listening on {path} (stale socket?)") from None
    except PermissionError:
        raise ControlError(f"permission denied on {path}: run as the charger's user or root") from None
    except TimeoutError:
        raise ControlError(f"the daemon did not answer on {path} within {timeout_s:g} s") from None
    if not line:
        raise ControlError(f"the daemon closed {path} without answering")
    reply = json.loads(line)
    if not isinstance(reply, dict):
        raise ControlError("malformed reply from the daemon")
    return reply
