"""``chargepoint demo``: the real daemon on simulated hardware, driven through its control socket.

Nothing here is faked for the show: the daemon is the same ``chargepoint run`` the service starts,
energy is read over Modbus TCP from the simulated SDM630 by the real driver, and the summary comes
from the session record in SQLite.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from chargepoint.cli.control_client import request
from chargepoint.cli.ocmf_check import verifies
from chargepoint.cli.report import build_report
from chargepoint.errors import ControlError
from chargepoint.store import payments
from simulators.csms import Frame, TestCsms

DEMO_CARD = "04A1B2C3D4"
DEMO_PAYMENT_CARD = "DEMO-CARD-TOKEN"
DEMO_CP_ID = "DEMO-CP-1"
# Simulated charging minutes per real second, so a few seconds of demo move a visible amount of energy.
DEMO_TIME_SCALE = 60

DEMO_CONFIG = """\
# Written by `chargepoint demo`.
[charger]
max_current_A = 32
meter_poll_interval_s = 0.5

[ocpp]
csms_url = "{csms_url}"
charge_point_id = "{cp_id}"
meter_value_sample_interval_s = 2

[hardware]
backend = "sim"

[simulator]
ev_max_current_A = 16
ev_phases = 3
time_scale = {time_scale}
meter_model = "iskra_wm3m4c"

[storage]
dir = "{dir}"

[pricing]
currency = "EUR"
time_zone = "Europe/Paris"
default_tariff = "adhoc"
display_interval_s = 1

[pricing.tariffs.adhoc]
description = {{ en = "Ad hoc price, pay by card", de = "Ad-hoc-Preis, Zahlung mit Karte" }}
tax_rates = [{{ name = "VAT", percent = "20" }}]
energy = [{{ price_per_kWh = "0.35" }}]
idle_time = [{{ price_per_minute = "0.05" }}]
idle_grace_min = 60
fixed_fee = [{{ price = "0.50" }}]
"""


class DemoFailed(Exception):
    pass


def _say(step: str, text: str) -> None:
    click.echo(f"{click.style(step, bold=True)} {text}")


def _short_report(workdir: Path, since: datetime, until: datetime) -> None:
    """What ``chargepoint report`` says of the demo's run, read from its database as the command reads it."""
    conn = sqlite3.connect(f"file:{workdir / 'chargepoint.db'}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        report = build_report(conn, 1, since, until)
    finally:
        conn.close()
    port, use = report["connectors"][0], report["usage"]
    if port["sessions"] != 1 or port["uptime_percent"] is None:
        raise DemoFailed(f"the report does not show the demo's session: {port}")
    statuses = ", ".join(f"{status} {seconds} s" for status, seconds in port["status_s"].items())
    _say("      ", "and `chargepoint report` over the demo's run (from the recorded history):")
    click.echo(f"        uptime          {port['uptime_percent']:.2f} % (as NEVI counts it)")
    click.echo(f"        sessions        {port['sessions']}, {port['energy_Wh'] / 1000:.3f} kWh, "
               f"revenue {', '.join(f'{v} {k}' for k, v in use['revenue'].items()) or '-'}")
    click.echo(f"        time per status {statuses}")


class _Daemon:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.config_path = workdir / "config.toml"
        self.log_path = workdir / "daemon.log"
        self.socket_path = workdir / "control.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, csms_url: str) -> None:
        self.config_path.write_text(
            DEMO_CONFIG.format(csms_url=csms_url, cp_id=DEMO_CP_ID, time_scale=DEMO_TIME_SCALE, dir=self.workdir)
        )
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "chargepoint", "run", "--config", str(self.config_path)],
                stdout=log_file, stderr=subprocess.STDOUT, env=env,
            )

    def call(self, payload: dict[str, Any]) -> dict[str, Any]:
        reply = asyncio.run(request(self.socket_path, payload))
        if not reply.get("ok"):
            raise DemoFailed(str(reply.get("error")))
        return reply

    def status(self) -> dict[str, Any]:
        connectors = self.call({"op": "status"})["status"]["connectors"]
        assert isinstance(connectors, list)
        first = connectors[0]
        assert isinstance(first, dict)
        return first

    def sim(self, action: str, argument: str | None = None) -> str:
        return str(self.call({"op": "sim", "connector": 1, "action": action, "argument": argument})["message"])

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise DemoFailed(f"the daemon exited with code {self.process.returncode}")
            try:
                self.status()
                return
            except ControlError:
                time.sleep(0.05)
        raise DemoFailed("the daemon did not come up")

    def wait_status(self, wanted: str, timeout_s: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.status()
            if state["status"] == wanted:
                return state
            time.sleep(0.05)
        raise DemoFailed(f"connector did not reach {wanted} (it is {self.status()['status']})")

    def stop(self) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


class _Csms:
    """The test CSMS in a thread of its own, narrating what reaches it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="demo-csms", daemon=True)
        self.csms: TestCsms | None = None

    def start(self) -> str:
        self.thread.start()

        async def start() -> TestCsms:
            csms = TestCsms()
            csms.on_frame = _narrate_frame
            await csms.start()
            return csms

        self.csms = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self.csms.url

    def stop(self) -> None:
        if self.csms is not None:
            asyncio.run_coroutine_threadsafe(self.csms.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _show_display(daemon: _Daemon, expected_kind: str, timeout_s: float = 5.0) -> None:
    """Print what the charger's (simulated) display shows, once it shows a message of ``expected_kind``."""
    deadline = time.monotonic() + timeout_s
    shown = daemon.status().get("display")
    while (shown is None or shown["kind"] != expected_kind) and time.monotonic() < deadline:
        time.sleep(0.05)
        shown = daemon.status().get("display")
    if shown is None or shown["kind"] != expected_kind:
        raise DemoFailed(f"the display did not show a {expected_kind} message (it shows {shown})")
    width = max(len(line) for line in shown["lines"]) if shown["lines"] else 10
    rule = "\u2500" * max(0, width - 10 - len(shown["kind"]))
    click.echo(click.style(f"        \u250c display: {shown['kind']} {rule}", fg="green"))
    for line in shown["lines"]:
        click.echo(click.style(f"        \u2502 {line}", fg="green"))
    click.echo(click.style("        \u2514" + "\u2500" * (width + 1), fg="green"))


def _narrate_frame(frame: Frame) -> None:
    if frame.direction != "in" or frame.message_type != "CALL" or frame.payload is None:
        return
    p = frame.payload
    details = {
        "BootNotification": lambda: f"{p.get('chargePointVendor')} {p.get('chargePointModel')}",
        "StatusNotification": lambda: f"connector {p.get('connectorId')} {p.get('status')}",
        "Authorize": lambda: f"idTag {p.get('idTag')}",
        "StartTransaction": lambda: f"idTag {p.get('idTag')}, meterStart {p.get('meterStart')} Wh",
        "MeterValues": lambda: ", ".join(
            f"{v.get('measurand')}{'.' + v['phase'] if 'phase' in v else ''}={v.get('value')} {v.get('unit', '')}"
            for m in p.get("meterValue", []) for v in m.get("sampledValue", []) if "phase" not in v
        ),
        "StopTransaction": lambda: f"transaction {p.get('transactionId')}, meterStop {p.get('meterStop')} Wh, "
                                   f"reason {p.get('reason')}",
    }.get(frame.action or "", lambda: "")()
    click.echo(click.style(f"        CSMS <- {frame.action}", fg="cyan") + (f": {details}" if details else ""))


def _payment_of(workdir: Path, session_id: str) -> dict[str, Any] | None:
    """The card payment of a session, from the payment journal (read-only, as ``chargepoint payments`` reads it)."""
    conn = sqlite3.connect(f"file:{workdir / 'chargepoint.db'}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        found = [p for p in payments.listing(conn, 20) if p.session_id == session_id]
    finally:
        conn.close()
    return found[0].to_json() if found else None


def _wait_payment(workdir: Path, session_id: str, timeout_s: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        payment = _payment_of(workdir, session_id)
        if payment is not None and payment["state"] in ("captured", "cancelled", "failed"):
            return payment
        time.sleep(0.1)
    raise DemoFailed("the card payment was not settled")


def run_demo(keep: bool = False, charge_seconds: float = 8.0, card: bool = False) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="chargepoint-demo-"))
    daemon = _Daemon(workdir)
    csms = _Csms()
    t_start = time.monotonic()
    wall_start = datetime.now(UTC) - timedelta(seconds=1)
    try:
        csms_url = csms.start()
        _say("[1/7]", f"Starting the test CSMS at {csms_url} and the charger daemon on simulated hardware "
                      f"in {workdir}")
        daemon.start(csms_url)
        daemon.wait_ready(timeout_s=20)
        deadline = time.monotonic() + 10
        while not daemon.call({"op": "status"})["status"]["csms_connected"]:
            if time.monotonic() > deadline:
                raise DemoFailed("the charger did not register with the CSMS")
            time.sleep(0.05)
        state = daemon.status()
        _say("      ", f"ready in {time.monotonic() - t_start:.1f} s and registered with the CSMS: connector 1 is "
                       f"{state['status']}, meter reads {state['meter_energy_Wh']} Wh over Modbus TCP")

        _say("      ", "before anyone plugs in, the display shows the ad hoc price (AFIR):")
        _show_display(daemon, "price")

        _say("[2/7]", "The driver plugs the EV in (pilot A -> B)")
        daemon.sim("plug")
        daemon.wait_status("Preparing")
        _say("      ", "connector is Preparing: waiting for a card")

        if card:
            _say("[3/7]", "The driver holds a payment card to the card terminal (ZVT, simulated)")
            click.echo(f"        {daemon.sim('card', DEMO_PAYMENT_CARD)}")
            state = daemon.wait_status("SuspendedEV")
            session = state["session"] or {}
            _say("      ", f"pre-authorised {session.get('preauthorized')} on the card: the session started "
                           f"(payment method {session.get('payment_method')}, idTag {session.get('id_tag')}, a "
                           "pseudonym: the card number never reaches the charger), with that amount as its cost "
                           "limit")
        else:
            _say("[3/7]", f"The driver presents card {DEMO_CARD} to the reader")
            daemon.sim("tap", DEMO_CARD)
            state = daemon.wait_status("SuspendedEV")
            _say("      ", f"card accepted by the CSMS, transaction started; the pilot offers "
                           f"{state['offered_current_A']:.1f} A and the EV has not asked for energy yet")
        _say("      ", "the display shows the driver's price before energy flows:")
        _show_display(daemon, "price")

        _say("[4/7]", "The EV asks for energy (pilot B -> C): the contactor closes")
        daemon.sim("charge")
        daemon.wait_status("Charging")
        _say("[5/7]", f"Charging for {charge_seconds:g} s (the simulated car's clock runs {DEMO_TIME_SCALE}x)")
        deadline = time.monotonic() + charge_seconds
        while time.monotonic() < deadline:
            time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
            state = daemon.status()
            session = state["session"] or {}
            power_W = state["power_W"] or 0.0
            cost = "" if session.get("cost") is None else f", running cost {session['cost']} {session['currency']}"
            _say("      ", f"{state['status']}: {power_W / 1000:5.2f} kW, "
                           f"{session.get('energy_Wh', 0) / 1000:6.3f} kWh delivered{cost}")
        _show_display(daemon, "running")

        _say("[6/7]", "The driver unplugs the EV (pilot -> A): contactor opens, session ends")
        daemon.sim("unplug")
        daemon.wait_status("Available")
        time.sleep(0.5)  # let the StopTransaction reach the CSMS before the summary
        record = daemon.call({"op": "sessions", "limit": 1})["sessions"][0]

        started = datetime.fromisoformat(record["started_at"])
        stopped = datetime.fromisoformat(record["stopped_at"])
        _say("[7/7]", "Session summary (from the session record in SQLite):")
        click.echo(f"        card            {record['id_tag']}")
        click.echo(f"        energy          {record['energy_Wh'] / 1000:.3f} kWh "
                   f"(meter {record['meter_start_Wh']} -> {record['meter_stop_Wh']} Wh)")
        click.echo(f"        duration        {(stopped - started).total_seconds():.1f} s")
        click.echo(f"        stop reason     {record['stop_reason']}")
        click.echo(f"        tariff          {record['tariff_id']}")
        click.echo(f"        cost            {record['cost']} {record['currency']} (incl. tax)")
        signed = record.get("signed_meter_data")
        if not signed or not verifies(signed, record["meter_public_key"]):
            raise DemoFailed("the meter's signed dataset is missing or does not verify")
        click.echo(f"        signed by meter OCMF, {len(signed)} bytes, verifies with the meter's key "
                   f"{record['meter_public_key'][-16:]}")
        if card:
            payment = _wait_payment(workdir, record["session_id"])
            _say("      ", "the card payment (from the payment journal, as `chargepoint payments` shows it):")
            click.echo(f"        card            {payment['card_scheme']} ****{payment['card_last4']}")
            click.echo(f"        pre-authorised  {payment['preauthorized']} {payment['currency']}")
            click.echo(f"        captured        {payment['captured']} {payment['currency']}")
            click.echo(f"        released        {payment['released']} {payment['currency']}")
            click.echo(f"        terminal ref    {payment['terminal_id']}/{payment['receipt_no']} ({payment['state']})")
            if payment["state"] != "captured" or str(payment["captured"]) != str(record["cost"]):
                raise DemoFailed(f"the card was not charged the session's cost: {payment}")
        _say("      ", "and the display shows the receipt:")
        _show_display(daemon, "receipt")
        if record["cost"] is None:
            raise DemoFailed("the session was not priced")
        if not record["energy_Wh"]:
            raise DemoFailed("no energy was recorded")
        wall_end = datetime.now(UTC)  # the run, before the daemon is stopped
        code = daemon.stop()
        if code != 0:
            raise DemoFailed(f"the daemon exited with code {code}")
        _short_report(workdir, wall_start, wall_end)
        click.echo(f"Demo complete in {time.monotonic() - t_start:.1f} s.")
        return 0
    except (DemoFailed, ControlError) as exc:
        click.echo(f"demo failed: {exc}", err=True)
        daemon.stop()
        click.echo(f"daemon log: {daemon.log_path}", err=True)
        keep = True
        tail = daemon.log_path.read_text(errors="replace").splitlines()[-30:]
        click.echo("\n".join(tail), err=True)
        return 1
    finally:
        daemon.stop()
        csms.stop()
        if keep:
            click.echo(f"kept {workdir}")
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
