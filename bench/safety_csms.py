"""The test CSMS of the safety benchmark, in a process of its own: ``python -m bench.safety_csms``.

A charger's CSMS is another machine: its work must not run on the event loop being measured. This process serves
``simulators.csms.TestCsms`` on 127.0.0.1 (a free port), prints ``{"url": ...}`` once it listens, then answers
one JSON line on stdout per command line on stdin:

- ``remote-stop CP_ID TRANSACTION_ID``: sends RemoteStopTransaction; ``{"t": <unix time just before sending>,
  "status": ...}``;
- ``configure CP_ID KEY VALUE``: sends ChangeConfiguration; ``{"status": ...}``;
- ``counts``: the CALLs received so far, by action;
- end of stdin: stops the server and exits.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import sys
import time
from typing import Any

from simulators.csms import CallErrorReply, TestCsms


def _say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def _remote_stop(csms: TestCsms, charge_point_id: str, transaction_id: int) -> dict[str, Any]:
    sent_s = time.time()
    try:
        reply = await csms.call(charge_point_id, "RemoteStopTransaction", {"transactionId": transaction_id})
    except (CallErrorReply, TimeoutError, ConnectionError) as exc:
        return {"t": sent_s, "status": f"error: {exc!r}"}
    return {"t": sent_s, "status": reply.get("status")}


async def _configure(csms: TestCsms, charge_point_id: str, key: str, value: str) -> dict[str, Any]:
    try:
        reply = await csms.call(charge_point_id, "ChangeConfiguration", {"key": key, "value": value})
    except (CallErrorReply, TimeoutError, ConnectionError) as exc:
        return {"status": f"error: {exc!r}"}
    return {"status": reply.get("status")}


def _counts(csms: TestCsms) -> dict[str, Any]:
    calls = collections.Counter(
        frame.action for frame in csms.frames if frame.direction == "in" and frame.message_type == "CALL"
    )
    return {"counts": dict(calls)}


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with TestCsms(host="127.0.0.1") as csms:
        _say({"url": csms.url})
        while line := await reader.readline():
            words = line.decode().split()
            if words[:1] == ["remote-stop"] and len(words) == 3:
                _say(await _remote_stop(csms, words[1], int(words[2])))
            elif words[:1] == ["configure"] and len(words) == 4:
                _say(await _configure(csms, words[1], words[2], words[3]))
            elif words == ["counts"]:
                _say(_counts(csms))
            elif words:
                _say({"error": f"unknown command {line.decode().strip()!r}"})


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(_serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
