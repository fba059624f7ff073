"""Run the benchmarks and print their figures: ``python -m bench [--events N] [--quick]``."""

from __future__ import annotations

import argparse
import os
import platform

from bench import process, safety


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{platform.machine()}, {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--events", type=int, default=10_000, help="safety events to measure (default 10000)")
    parser.add_argument("--starts", type=int, default=10, help="process starts to time (default 10)")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU measurement")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    for line in safety.run(args.events):
        print(line)
    for line in process.startup(args.starts):
        print(line)
    for line in process.resources(args.idle_window):
        print(line)


if __name__ == "__main__":
    main()
