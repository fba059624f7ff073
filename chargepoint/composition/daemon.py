"""``chargepoint run``: build the charger from its config and supervise it.

The supervisor lives in the composition root because it owns the process: it builds every part, and it is
the one place that catches everything.

Order matters: the hardware is put in its safe state (contactor open, pilot +12 V) before the
store, the control socket or any loop starts; whatever ends the run - SIGTERM, an exception in any
task, a bug - the hardware is made safe again before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from chargepoint.composition.charger import build_charger, build_monitoring
from chargepoint.composition.config_summary import config_summary
from chargepoint.composition.devices import create_hardware_for, payment_simulator_of, station_of
from chargepoint.composition.logging_setup import close_message_log, open_message_log
from chargepoint.composition.maintenance import Maintenance
from chargepoint.composition.reload import ConfigReloader
from chargepoint.composition.watchdogs import SafetyFeeder, open_hardware_watchdog
from chargepoint.config.schema import Config
from chargepoint.runtime.control import ChargerControl, ControlServer, SimActions
from chargepoint.runtime.notify import sd_notify, watchdog_interval_s
from chargepoint.store import LedgerSigner, Store
from chargepoint.store.ledger import KEY_FILE as LEDGER_KEY_FILE
from hal.hardware import Hardware

if TYPE_CHECKING:
    from chargepoint.composition.update_trial import UpdateTrial
    from chargepoint.runtime.app import ChargerApp

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
SIM_STATE_FILE = "sim-state.json"
EXIT_REEXEC = 75  # internal: the CSMS asked for a reset; boot re-executes the process in place


async def run_daemon(config: Config, hardware: Hardware | None = None, t0: float | None = None,
                     pricing_problems: list[str] | None = None, config_path: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT. ``hardware`` may come already built and safe (see ``boot``)."""
    t0 = time.monotonic() if t0 is None else t0
    try:
        if hardware is None:
            hardware = create_hardware_for(config)
            await hardware.force_safe()
            log.info("safe state reached %.1f ms after start: contactors open, pilots at +12 V",
                     (time.monotonic() - t0) * 1000)
        log.info("%s", config_summary(config))
        await hardware.start()
        config.storage.dir.mkdir(parents=True, exist_ok=True, mode=0o750)
        open_message_log(config)
        sim_state = config.storage.dir / SIM_STATE_FILE
        station = station_of(hardware)
        if station is not None and station.restore(sim_state):
            log.info("simulators took back their state from before the restart")
        store = await Store.open(config.storage.database_path, reserve_bytes=config.storage.reserve_bytes,
                                 min_free_bytes=config.storage.min_free_bytes,
                                 ledger_signer=LedgerSigner.load_or_create(config.storage.dir / LEDGER_KEY_FILE))
        try:
            reexec = await _serve(config, hardware, store, pricing_problems or [], config_path)
        finally:
            await store.close()
        if reexec and station is not None:
            station.save(sim_state)  # the simulated car stays plugged in across the reset
        if reexec and config.update is not None and _must_exit_for_update(config):
            # Not in place: systemd starts us again through the update guard, which switches the firmware.
            log.warning("exiting for the firmware update: the service manager starts the firmware again through "
                        "the update guard")
            return EXIT_OK
        return EXIT_REEXEC if reexec else EXIT_OK
    except BaseException as exc:
        # The supervisor: the one place that catches everything. Make safe first, then say why, exit non-zero.
        if hardware is not None:
            await hardware.force_safe()
        if isinstance(exc, KeyboardInterrupt):
            log.info("interrupted")
        else:
            log.critical("stopping after an unexpected failure: %r", exc, exc_info=True)
        return EXIT_FAILED
    finally:
        sd_notify("STOPPING=1")
        if hardware is not None:
            await hardware.force_safe()
            with contextlib.suppress(Exception):
                await hardware.aclose()
        close_message_log()
        log.info("stopped; hardware safe")


async def _serve(config: Config, hardware: Hardware, store: Store, pricing_problems: list[str],
                 config_path: Path | None = None) -> bool:
    """Run the app until stopped; True if it asked to be restarted in place (OCPP Reset)."""
    app = build_charger(config, hardware, store, pricing_problems=pricing_problems)
    stop = asyncio.Event()
    terminated: list[bool] = []
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _terminate, stop, terminated)
    # SIGHUP (systemctl reload, chargepoint reload): the keys that need no restart, no session ended.
    reloader = None if config_path is None else ConfigReloader(config_path, app)
    if reloader is not None:
        loop.add_signal_handler(signal.SIGHUP, reloader.on_sighup)
    maintenance = Maintenance(config, app, store)
    control = ControlServer(config.storage.control_socket_path, ChargerControl(
        app, _sim_actions(hardware), reloader, {"diagnostics": maintenance.diagnostics}).dispatch)
    hardware_watchdog = open_hardware_watchdog(*_watchdog_device(config))
    feeder = SafetyFeeder(app.connectors, systemd=watchdog_interval_s() is not None, hardware=hardware_watchdog)
    monitoring = build_monitoring(config, app, store)  # [monitoring] enabled: the dashboard and /metrics
    # [update]: a new firmware on trial checks its health once ready (update_trial.py).
    trial = None if config.update is None else _update_trial(config, app)

    async def ready() -> None:
        await control.start()
        app.on_safety_tick = feeder.tick  # systemd's and the hardware watchdog: fed from the safety loop only
        sd_notify("READY=1")
        log.info("ready: %d connector(s), control socket %s", len(app.connectors), control.path)
        if monitoring is not None:
            await monitoring.start()  # a port it cannot bind is logged: the charger runs on without it
        if trial is not None:
            trial.start()

    try:
        await app.run(stop, ready=ready)
    except BaseException:
        await hardware.force_safe()  # before the control socket, the store or the log hear of it
        raise
    finally:
        app.on_safety_tick = None
        if trial is not None:
            await trial.stop()
        if hardware_watchdog is not None:
            hardware_watchdog.close()  # a clean stop disarms it (unless the kernel has nowayout)
        if monitoring is not None:
            await monitoring.stop()
        await control.stop()
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(signum)
    # A SIGTERM that came while a reset was stopping the charger means "stop": no restart in place.
    return app.reexec_requested and not terminated


def _update_trial(config: Config, app: ChargerApp) -> UpdateTrial:
    from chargepoint.composition.update_trial import UpdateTrial  # only with [update]: it loads cryptography

    return UpdateTrial(config, app.status, lambda: app.reset(hard=False))


def _must_exit_for_update(config: Config) -> bool:
    from chargepoint.composition.update_trial import must_exit_for_update

    return must_exit_for_update(config)


def _terminate(stop: asyncio.Event, terminated: list[bool]) -> None:
    terminated.append(True)
    stop.set()


def _present_card(hardware: Hardware, argument: str) -> str:
    """``chargepoint sim card TOKEN [--decline | --timeout | --partial AMOUNT]``: the next card the simulated
    terminal reads (argument ``TOKEN[|decline|timeout|partial=AMOUNT]``)."""
    from simulators.zvt_terminal import Outcome

    terminal = payment_simulator_of(hardware)
    if terminal is None:
        raise ValueError("no simulated payment terminal ([hardware.payment] backend is not \"sim\")")
    token, _, how = argument.partition("|")
    if not token:
        raise ValueError("a card needs its token")
    partial = None
    outcome = Outcome.Approve
    if how.startswith("partial="):
        outcome, partial = Outcome.Partial, Decimal(how.removeprefix("partial="))
    elif how:
        outcome = Outcome(how)
    terminal.present_card(token, outcome, partial_amount=partial)
    shown = {Outcome.Approve: "approves", Outcome.Decline: "declines", Outcome.Timeout: "times out on",
             Outcome.Partial: f"approves {partial} of"}.get(outcome, str(outcome))
    return f"card {token} presented: the terminal {shown} the next payment"


def _watchdog_device(config: Config) -> tuple[str, int]:
    device = config.hardware.watchdog_device
    if device == "auto":
        device = "" if config.hardware.backend == "sim" else "/dev/watchdog"
    return device, config.hardware.watchdog_timeout_s


def _sim_actions(hardware: Hardware) -> SimActions | None:
    station = station_of(hardware)
    if station is None:
        return None

    def apply(connector_id: int, action: str, argument: str | None) -> str:
        if action == "card":
            return _present_card(hardware, argument or "")
        # SimActionError is a ValueError: the control socket answers it as a refused action.
        return station.connector(connector_id).apply(action, argument)

    return apply
