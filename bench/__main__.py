"""Run the benchmarks and print their figures: ``python -m bench [--safety-events N] ...``.

``python -m bench --safety`` runs only the end-to-end safety reaction (about 2.5 minutes with the default sizes).
``python -m bench --durability`` runs only the kill -9 durability scenario (long: see its flags).
``python -m bench --pricing`` runs only the pricing benchmark (cost per meter sample).
``python -m bench --hostile-csms [--hostile-frames N]`` runs only the hostile-CSMS fuzzer (a million: N=1000000).
``python -m bench --history`` runs only the report and forecast on a year of history."""

from __future__ import annotations

import argparse
import os
import platform

from bench import history, hostile_csms, ocpp, pricing, process, safety


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
    parser.add_argument("--starts", type=int, default=10, help="process starts to time (default 10)")
    parser.add_argument("--idle-window", type=float, default=10.0, help="seconds of idle CPU measurement")
    ocpp_group = parser.add_argument_group("OCPP")
    ocpp_group.add_argument("--ocpp-queue", type=int, default=10_000,
                            help="outbox messages in the database for start-up/RSS/enqueue (default 10000)")
    ocpp_group.add_argument("--ocpp-cards", type=int, default=10_000,
                            help="local authorization list entries in the database (default 10000)")
    ocpp_group.add_argument("--ocpp-starts", type=int, default=3, help="daemon starts to time (default 3)")
    ocpp_group.add_argument("--enqueue-samples", type=int, default=2_000,
                            help="durable enqueues to time (default 2000)")
    ocpp_group.add_argument("--drain-messages", type=int, default=2_000,
                            help="queued transaction messages to drain to the CSMS (default 2000)")
    safety_group = parser.add_argument_group(
        "safety reaction, end to end (pilot change at the device -> contactor command at the device)")
    safety_group.add_argument("--safety", action="store_true", help="run only the safety reaction benchmark")
    safety_group.add_argument("--safety-events", "--events", dest="safety_events", type=int, default=200, metavar="N",
                              help="events with the simulated hardware in the charger's process, the four pilot "
                              "changes in turn (default 200; 0 skips this set-up)")
    safety_group.add_argument("--safety-connectors", type=int, default=4, choices=range(1, 8), metavar="1..7",
                              help="connectors measured in turn, at most one event a second each (default 4; one "
                              "more charges all along)")
    safety_group.add_argument("--safety-board-events", type=int, default=30, metavar="N",
                              help="events through each board simulator, about 1.2 s each (default 30; 0 skips them)")
    pricing_group = parser.add_argument_group("pricing (CostMeter per meter sample, 50-element tariff, 24 h session)")
    pricing_group.add_argument("--pricing", action="store_true", help="run only the pricing benchmark")
    pricing_group.add_argument("--pricing-samples", type=int, default=pricing.SESSION_S, metavar="N",
                               help=f"meter samples over the 24 h session (default {pricing.SESSION_S}: every second)")
    hostile = parser.add_argument_group("hostile CSMS (a fuzzer against a charging daemon)")
    hostile.add_argument("--hostile-csms", action="store_true", help="run only the hostile-CSMS fuzzer")
    hostile.add_argument("--hostile-frames", type=int, default=100_000, metavar="N",
                         help="hostile frames to send (default 100000; the test suite sends 20000)")
    hostile.add_argument("--hostile-seed", type=int, default=13, metavar="S", help="seed of the frame mix")
    history_group = parser.add_argument_group("history (report and forecast on a year of a busy charger)")
    history_group.add_argument("--history", action="store_true", help="run only the history benchmark")
    history_group.add_argument("--history-sessions", type=int, default=20_000, help="sessions (default 20000)")
    history_group.add_argument("--history-events", type=int, default=500_000, help="events (default 500000)")
    durability = parser.add_argument_group("durability (kill -9 while charging, CSMS going down and up)")
    durability.add_argument("--durability", action="store_true",
                            help="run only the durability scenario, with the sizes below")
    durability.add_argument("--durability-messages", type=int, default=10_000,
                            help="transaction messages to queue and account for (default 10000)")
    durability.add_argument("--durability-kills", type=int, default=50, help="kill -9 of the daemon (default 50)")
    durability.add_argument("--durability-connectors", type=int, default=8, choices=range(1, 9), metavar="1..8",
                            help="connectors charging at once (default 8)")
    durability.add_argument("--durability-backlog", type=int, default=0,
                            help="of the messages, how many are queued before the first start (default 0)")
    durability.add_argument("--durability-no-aligned", action="store_true",
                            help="sampled MeterValues only (halves the message rate)")
    durability.add_argument("--seed", type=int, default=None, help="seed of the durability run (default random)")
    args = parser.parse_args()
    print(f"machine: {machine()}", flush=True)
    if args.durability:
        for line in ocpp.durability_run(args.durability_messages, args.durability_kills, args.durability_connectors,
                                        args.durability_backlog, args.seed, aligned=not args.durability_no_aligned):
            print(line)
        return
    if args.pricing:
        pricing.run(args.pricing_samples, show_machine=False)
        return
    if args.history:
        for line in history.run(args.history_sessions, args.history_events):
            print(line, flush=True)
        return
    if args.hostile_csms:
        for line in hostile_csms.run(args.hostile_frames, args.hostile_seed):
            print(line)
        return
    for line in safety.run(args.safety_events, args.safety_board_events, args.safety_connectors):
        print(line, flush=True)
    if args.safety:
        return
    pricing.run(args.pricing_samples, show_machine=False)
    for line in process.startup(args.starts):
        print(line)
    for line in process.resources(args.idle_window):
        print(line)
    for line in ocpp.run(args.ocpp_queue, args.ocpp_cards, args.ocpp_starts, args.enqueue_samples,
                         args.drain_messages):
        print(line, flush=True)


if __name__ == "__main__":
    main()
