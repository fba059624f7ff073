"""The CLI's side of the daemon's control socket (``chargepoint.runtime.control``): one JSON request, one reply."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from chargepoint.errors import ControlError


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
