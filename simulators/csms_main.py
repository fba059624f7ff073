"""Run the test CSMS standalone and print every frame: ``python -m simulators.csms_main --port 9000``.

For humans poking at a charger (or ``chargepoint demo``): point the charger at ``ws://HOST:PORT`` and it
connects as ``ws://HOST:PORT/<charge point id>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Sequence

from simulators.csms import Frame, TestCsms


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m simulators.csms_main", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--password",
        action="append",
        default=[],
        metavar="ID=PASSWORD",
        help="require HTTP Basic auth (security profile 1); repeat for several charge points",
    )
    parser.add_argument("--boot-status", choices=["Accepted", "Pending", "Rejected"], default="Accepted")
    parser.add_argument("--heartbeat-interval-s", type=int, default=300)
    parser.add_argument("--reject", action="append", default=[], metavar="ID_TAG", help="answer Invalid for this idTag")
    parser.add_argument("--verbose", "-v", action="store_true", help="also log the ocpp library at DEBUG")
    return parser.parse_args(argv)


def _print_frame(frame: Frame) -> None:
    arrow = "<-" if frame.direction == "in" else "->"
    print(f"{frame.at:%H:%M:%S.%f}"[:-3], frame.charge_point_id, arrow, frame.raw, flush=True)


async def _run(args: argparse.Namespace) -> None:
    passwords: dict[str, str] | None = None
    if args.password:
        passwords = {}
        for item in args.password:
            charge_point_id, sep, password = item.partition("=")
            if not sep or not charge_point_id:
                raise SystemExit(f"--password expects ID=PASSWORD, got {item!r}")
            passwords[charge_point_id] = password
    csms = TestCsms(host=args.host, port=args.port, passwords=passwords)
    csms.boot_status = args.boot_status
    csms.heartbeat_interval_s = args.heartbeat_interval_s
    csms.rejected_id_tags.update(args.reject)
    csms.on_frame = _print_frame
    async with csms:
        print(f"test CSMS listening on {csms.url}/<charge point id> (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
