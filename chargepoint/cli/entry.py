"""Console entry point. Kept import-light: ``chargepoint run`` must reach the safe state fast."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["run"] and not {"-h", "--help"} & set(sys.argv):
        # The daemon's fast path: make the hardware safe before importing click, pydantic, pymodbus.
        from chargepoint.composition.boot import main as boot_main

        sys.exit(boot_main(sys.argv[2:]))
    from chargepoint.cli.main import main as cli_main

    cli_main()
