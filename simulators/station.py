"""A whole simulated charging station: connectors wired to an EV, their devices and a Modbus meter.

The connector is the one place that knows how the parts interact (the EV draws current only
through a closed contactor with mains present), and it integrates energy exactly between any
two changes: every device calls back before and after it changes something.

The meter is an Eastron SDM630 or, with ``meter_model="iskra_wm3m4c"``, an Iskra WM3M4C that signs its readings.
Both go silent with the "meter-offline" fault and read 0 V through "power-loss", which for the Iskra is also the cut
of its supply (``IskraMeterServer.power_failure``: an open transaction waits in state 2, the clock is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chargepoint.core.pilot import PilotOutput
from simulators.devices import (
    CABLE_RATINGS_A,
    Fault,
    SimContactor,
    SimLock,
    SimMains,
    SimPilot,
    SimProximity,
    SimRcd,
    SimRfidReader,
    SimShuntTrip,
    SimTamper,
)
from simulators.display import SimDisplay
from simulators.ev import EvState, SimulatedEv, offered_current_A
from simulators.iskra_meter import IskraMeterServer
from simulators.meter_server import MeterServer, MeterValues

PHYSICS_TICK_S = 0.1

ACTIONS = ("plug", "charge", "pause", "vent", "unplug", "tap", "fault", "clear-fault")
FAULT_KINDS = tuple(fault.value for fault in Fault)
METER_MODELS = ("sdm630", "iskra_wm3m4c")


class SimActionError(ValueError):
    """A stimulus that the simulated world cannot perform (unknown, malformed or impossible)."""


@dataclass(frozen=True, slots=True)
class SimParameters:
    """Everything that makes one simulated EV and station differ from another."""

    ev_max_current_A: float = 32.0
    ev_phases: int = 3  # 1 or 3
    ev_follow_s: float = 2.0  # time the EV takes to follow a new offered current
    ev_battery_Wh: int = 60_000
    ev_soc_percent: float = 50.0  # when the battery is full the EV goes C->B by itself
    voltage_V: float = 230.0
    contactor_feedback_delay_s: float = 0.02
    lock_delay_s: float = 0.05
    meter_host: str = "127.0.0.1"
    meter_port: int = 0  # 0 = pick a free port (with several connectors: port + index otherwise)
    time_scale: float = 1.0  # simulated seconds of charging per real second (meter and battery only)
    meter_model: str = "sdm630"  # one of METER_MODELS; "iskra_wm3m4c" signs its readings

    def __post_init__(self) -> None:
        if self.meter_model not in METER_MODELS:
            raise ValueError(f"meter_model must be one of {', '.join(METER_MODELS)}, got {self.meter_model!r}")


class SimConnector:
    """One connector: EV, pilot, contactor, RFID reader, lock, RCD, mains, display and meter, wired together."""

    def __init__(self, connector_id: int, params: SimParameters) -> None:
        if params.time_scale <= 0:
            raise ValueError(f"time_scale must be positive, got {params.time_scale}")
        if params.voltage_V <= 0:
            raise ValueError(f"voltage_V must be positive, got {params.voltage_V}")
        self.connector_id = connector_id
        self.params = params
        self.faults: set[Fault] = set()
        self.ev = SimulatedEv(
            max_current_A=params.ev_max_current_A,
            phases=params.ev_phases,
            follow_s=params.ev_follow_s,
            battery_Wh=params.ev_battery_Wh,
            soc_percent=params.ev_soc_percent,
        )
        self.pilot = SimPilot(self.ev, self.faults, self.update)
        self.contactor = SimContactor(params.contactor_feedback_delay_s, self.faults, self.update)
        self.rfid = SimRfidReader()
        self.lock = SimLock(params.lock_delay_s, self.faults)
        self.rcd = SimRcd()
        self.mains = SimMains()
        self.tamper = SimTamper()  # the station's, shared: see SimulatedStation
        self.pp = SimProximity()
        self.shunt_trip = SimShuntTrip(self._breaker_tripped)
        self.cable_A = 32  # the rating coded in the PP resistor of the cable plugged in (sim plug --cable-A)
        self._display = SimDisplay(connector_id)
        port = params.meter_port + connector_id - 1 if params.meter_port else 0
        self.meter: MeterServer | IskraMeterServer
        if params.meter_model == "iskra_wm3m4c":
            self.meter = IskraMeterServer(self._measure, host=params.meter_host, port=port, device_id=33)
        else:
            self.meter = MeterServer(self._measure, host=params.meter_host, port=port, device_id=1)
        self.energy_Wh = 0.0
        self._energy_per_phase_Wh = [0.0, 0.0, 0.0]
        self._last_update_s = time.monotonic()

    @property
    def display(self) -> SimDisplay:
        """The connector's screen (nothing physical depends on it, so it is not part of ``snapshot()``)."""
        return self._display

    @property
    def meter_endpoint(self) -> tuple[str, int, int]:
        """(host, port, device_id) of this connector's meter; the port is known after ``start()``."""
        return self.meter.endpoint

    # --- physics ---------------------------------------------------------------------------------

    def offered_A(self) -> float:
        """What the pilot currently allows the EV to draw per phase."""
        output, duty_percent = self.pilot.output()
        if output is not PilotOutput.PWM or self.faults & {Fault.PilotShort, Fault.PilotNegative}:
            return 0.0
        return offered_current_A(duty_percent)

    def _breaker_tripped(self) -> None:
        self.update()
        self.mains.set_present(False)
        self.update()

    def _voltage_V(self) -> float:
        return 0.0 if Fault.PowerLoss in self.faults or self.shunt_trip.tripped() else self.params.voltage_V

    def _path_closed(self) -> bool:
        """Whether current can flow into the EV at all right now."""
        return (
            self.ev.requesting
            and self.contactor.feedback_closed()
            and Fault.PowerLoss not in self.faults
            and not self.shunt_trip.tripped()
            and not self.ev.battery_full
        )

    def _target_A(self) -> float:
        if not self._path_closed():
            return 0.0
        if Fault.Overcurrent in self.faults:
            return self.ev.max_current_A
        return min(self.offered_A(), self.ev.max_current_A)

    def update(self) -> None:
        """Integrate up to now with the inputs as they are, then apply what follows from them."""
        now_s = time.monotonic()
        elapsed_s = now_s - self._last_update_s
        self._last_update_s = now_s
        path_closed = self._path_closed()
        if path_closed:
            energy_Wh = self.ev.advance(
                elapsed_s, self._target_A(), self._voltage_V(), self.params.time_scale
            )
            self.energy_Wh += energy_Wh
            if self.ev.phases == 1:
                self._energy_per_phase_Wh[0] += energy_Wh
            else:
                for phase in range(3):
                    self._energy_per_phase_Wh[phase] += energy_Wh / 3
        else:
            self.ev.drawn_A = 0.0  # no path, no current: nothing to ramp down
        if self.ev.requesting and self.ev.battery_full:
            self.ev.pause()  # a full battery makes the EV leave C by itself
            self.ev.drawn_A = 0.0
        self.pilot.refresh()
        # A locked cable cannot leave the socket: unplugged at the EV side only, its PP resistor still reads.
        cable_in_socket = self.ev.plugged or self.lock.is_locked()
        pp_closed = cable_in_socket and Fault.PpOpen not in self.faults
        self.pp.set_cable(float(self.cable_A) if pp_closed else None)

    def phase_currents_A(self) -> tuple[float, float, float]:
        drawn_A = self.ev.drawn_A
        if self.ev.phases == 1:
            return drawn_A, 0.0, 0.0
        return drawn_A, drawn_A, drawn_A

    def _measure(self) -> MeterValues:
        self.update()
        voltage_V = self._voltage_V()
        per_phase = self._energy_per_phase_Wh
        return MeterValues(
            voltage_V=(voltage_V, voltage_V, voltage_V),
            current_A=self.phase_currents_A(),
            energy_Wh_import=self.energy_Wh,
            energy_Wh_import_per_phase=(per_phase[0], per_phase[1], per_phase[2]),
            online=Fault.MeterOffline not in self.faults,
        )

    # --- stimulus --------------------------------------------------------------------------------

    def apply(self, action: str, argument: str | None = None) -> str:
        """Perform one stimulus and describe it in one line; ``SimActionError`` if it cannot be done."""
        argument = argument.strip() if argument is not None else None
        if argument == "":
            argument = None
        if action not in ACTIONS:
            raise SimActionError(f"unknown action {action!r}; expected one of: {', '.join(ACTIONS)}")
        if action not in ("plug", "tap", "fault", "clear-fault") and argument is not None:
            raise SimActionError(f"action {action!r} takes no argument, got {argument!r}")
        self.update()
        try:
            return self._apply(action, argument)
        finally:
            self.update()

    def _require_plugged(self, action: str) -> None:
        if not self.ev.plugged:
            raise SimActionError(f"cannot {action} on connector {self.connector_id}: no EV is plugged in")

    def _apply(self, action: str, argument: str | None) -> str:
        cid = self.connector_id
        if action == "plug":
            if self.ev.plugged:
                raise SimActionError(f"connector {cid}: an EV is already plugged in")
            cable_A = self._cable_rating(argument)
            self.cable_A = cable_A
            self.ev.plug()
            return f"connector {cid}: EV plugged in (state B) with a {cable_A} A cable"
        if action in ("charge", "vent"):
            self._require_plugged(action)
            if self.ev.battery_full:
                raise SimActionError(f"connector {cid}: the EV's battery is full, it will not request energy")
            ventilation = action == "vent"
            self.ev.request(ventilation=ventilation)
            state = "D, ventilation required" if ventilation else "C"
            return f"connector {cid}: EV requests energy (state {state}), offered {self.offered_A():g} A"
        if action == "pause":
            self._require_plugged(action)
            self.ev.pause()
            return f"connector {cid}: EV stops requesting energy (state B)"
        if action == "unplug":
            self._require_plugged(action)
            self.ev.unplug()
            return f"connector {cid}: EV unplugged (state A)"
        if action == "tap":
            if argument is None:
                raise SimActionError("tap needs the card UID as argument, e.g. tap 04A1B2C3")
            uid = self.rfid.present(argument)
            return f"connector {cid}: card {uid} presented"
        if action == "fault":
            return self._inject(self._fault_kind(argument))
        # clear-fault
        if argument is not None:
            self._fault_kind(argument)  # only to reject unknown kinds
        cleared: list[str] = sorted(self.faults)
        if self.shunt_trip.tripped():
            cleared.append("breaker reset")
            self.shunt_trip.reset()
        self.faults.clear()
        self.contactor.clear_faults()
        self.rcd.set_tripped(False)
        self.mains.set_present(True)
        self.tamper.set_opened(False)
        return f"connector {cid}: cleared faults: {', '.join(cleared) or 'none were active'}"

    @staticmethod
    def _cable_rating(argument: str | None) -> int:
        if argument is None:
            return 32
        try:
            cable_A = int(float(argument))
        except ValueError:
            cable_A = -1
        if cable_A not in CABLE_RATINGS_A or float(argument) != cable_A:
            raise SimActionError(
                f"cable rating {argument!r} is not a PP code; expected one of: {', '.join(map(str, CABLE_RATINGS_A))}"
            )
        return cable_A

    @staticmethod
    def _fault_kind(argument: str | None) -> Fault:
        if argument is None:
            raise SimActionError(f"fault needs a kind as argument, one of: {', '.join(FAULT_KINDS)}")
        try:
            return Fault(argument)
        except ValueError:
            raise SimActionError(
                f"unknown fault kind {argument!r}; expected one of: {', '.join(FAULT_KINDS)}"
            ) from None

    def _inject(self, fault: Fault) -> str:
        cid = self.connector_id
        self.faults.add(fault)
        if fault is Fault.GroundFault:
            self.rcd.set_tripped(True)
        elif fault is Fault.PowerLoss:
            self.mains.set_present(False)
            if isinstance(self.meter, IskraMeterServer):
                self.meter.power_failure()
        elif fault is Fault.Weld:
            self.contactor.inject_weld()
        elif fault is Fault.RcdWireBreak:
            self.rcd.set_tripped(True)  # the input is wired fail-safe: a broken wire reads as a trip
        elif fault is Fault.Tamper:
            self.tamper.set_opened(True)
        descriptions = {
            Fault.GroundFault: "RCD tripped (ground fault)",
            Fault.LockFailure: "lock actuator stuck",
            Fault.FixedCable: "fixed cable fitted (lock is tethered)",
            Fault.PowerLoss: "mains lost",
            Fault.Weld: "contactor welded" if self.contactor.welded else "contactor will weld on next close",
            Fault.MeterOffline: "meter stopped answering",
            Fault.PilotShort: "pilot shorted to PE (state E)",
            Fault.PilotNegative: "pilot stuck at -12 V (state F)",
            Fault.DiodeFailure: "EV diode missing",
            Fault.Overcurrent: "EV ignores the offered current",
            Fault.ContactorStuckOpen: "contactor stuck open",
            Fault.LockForced: "plug lock forced open (its sensor reads unlocked)",
            Fault.InstallFailure: "firmware installations fail (the charger keeps its firmware)",
            Fault.Tamper: "enclosure opened (tamper switch)",
            Fault.PilotStall: "pilot samples stopped arriving",
            Fault.PpOpen: "PP resistor open (no cable rating)",
            Fault.RcdWireBreak: "RCD input wire broken",
        }
        return f"connector {cid}: fault {fault.value}: {descriptions[fault]}"

    def export_state(self) -> dict[str, Any]:
        """What survives a firmware restart in place (the car and the meter do not reboot with us)."""
        self.update()
        return {
            "ev": {"plugged": self.ev.plugged, "requesting": self.ev.requesting, "ventilation": self.ev.ventilation,
                   "soc_percent": self.ev.soc_percent},
            "cable_A": self.cable_A,
            "locked": self.lock.is_locked(),
            "contactor_welded": self.contactor.welded,
            "breaker_tripped": self.shunt_trip.tripped(),
            "energy_Wh": self.energy_Wh,
            "energy_per_phase_Wh": list(self._energy_per_phase_Wh),
            "faults": sorted(fault.value for fault in self.faults),
            **({"iskra": self.meter.export_state()} if isinstance(self.meter, IskraMeterServer) else {}),
        }

    def import_state(self, state: dict[str, Any]) -> None:
        ev = state["ev"]
        self.cable_A = int(state.get("cable_A", 32))
        if ev["plugged"]:
            self.ev.plug()
            if ev["requesting"]:
                self.ev.request(ventilation=bool(ev["ventilation"]))
        self.ev.soc_percent = float(ev["soc_percent"])
        self.energy_Wh = float(state["energy_Wh"])
        self._energy_per_phase_Wh = [float(v) for v in state["energy_per_phase_Wh"]]
        for kind in state["faults"]:
            self._inject(Fault(kind))
        if isinstance(self.meter, IskraMeterServer) and "iskra" in state:
            self.meter.import_state(state["iskra"])  # after the faults: a power-loss fault is no new cut
        self.lock.restore(bool(state.get("locked", False)))
        if state.get("contactor_welded"):
            self.contactor.restore_weld()
        if state.get("breaker_tripped"):
            self.shunt_trip.restore()
            self.mains.set_present(False)
        self.update()

    def snapshot(self) -> dict[str, object]:
        """JSON-able state for status and debugging."""
        self.update()
        output, duty_percent = self.pilot.output()
        reading = self.pilot.latest()
        host, port, device_id = self.meter_endpoint
        current_A = self.phase_currents_A()
        voltage_V = self._voltage_V()
        return {
            "connector_id": self.connector_id,
            "ev_state": ("E" if Fault.PilotShort in self.faults else self.ev.state.value),
            "ev_plugged": self.ev.plugged,
            "ev_requesting": self.ev.requesting,
            "ev_soc_percent": round(self.ev.soc_percent, 3),
            "pilot_output": output.value,
            "pilot_duty_percent": duty_percent,
            "pilot_high_V": reading.high_V,
            "pilot_low_V": reading.low_V,
            "offered_A": self.offered_A(),
            "drawn_A": list(current_A),
            "power_W": sum(voltage_V * i for i in current_A),
            "energy_Wh": round(self.energy_Wh, 3),
            "contactor_commanded_closed": self.contactor.commanded_closed(),
            "contactor_feedback_closed": self.contactor.feedback_closed(),
            "contactor_welded": self.contactor.welded,
            "locked": self.lock.is_locked(),
            "tethered": self.lock.tethered,
            "rcd_tripped": self.rcd.tripped(),
            "breaker_tripped": self.shunt_trip.tripped(),
            "cable_max_A": self.pp.cable_max_A(),
            "mains_present": self.mains.present(),
            "faults": sorted(fault.value for fault in self.faults),
            "meter": {"host": host, "port": port, "device_id": device_id},
        }

    async def aclose(self) -> None:
        await self.contactor.aclose()
        await self.pilot.aclose()
        await self.rfid.aclose()
        await self.lock.aclose()
        await self.rcd.aclose()
        await self.mains.aclose()
        await self.pp.aclose()
        await self._display.aclose()


class SimulatedStation:
    """The station the runtime talks to when every backend is "sim"."""

    def __init__(self, params: SimParameters, connector_count: int = 1) -> None:
        if connector_count < 1:
            raise ValueError(f"connector_count must be at least 1, got {connector_count}")
        self.params = params
        self.connectors: list[SimConnector] = [SimConnector(i + 1, params) for i in range(connector_count)]
        self.tamper = SimTamper()  # one enclosure: any connector's "tamper" fault opens it
        for c in self.connectors:
            c.tamper = self.tamper
        self._physics: asyncio.Task[None] | None = None

    def install_fails(self) -> bool:
        """The "install-failure" fault is on (any connector): a firmware installation now fails."""
        return any(Fault.InstallFailure in c.faults for c in self.connectors)

    def connector(self, connector_id: int) -> SimConnector:
        if not 1 <= connector_id <= len(self.connectors):
            raise ValueError(
                f"no simulated connector {connector_id}; "
                f"this station has connectors 1..{len(self.connectors)}"
            )
        return self.connectors[connector_id - 1]

    async def start(self) -> None:
        """Start the meter servers and the physics tick (battery fill, current ramps between requests)."""
        if self._physics is not None:
            return
        started: list[SimConnector] = []
        try:
            for connector in self.connectors:
                await connector.meter.start()
                started.append(connector)
        except BaseException:
            for connector in started:
                await connector.meter.stop()
            raise
        self._physics = asyncio.create_task(self._tick(), name="simulated-station-physics")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(PHYSICS_TICK_S)
            for connector in self.connectors:
                connector.update()

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([c.export_state() for c in self.connectors]))

    def restore(self, path: Path) -> bool:
        """Take back the state saved before a restart in place; False when there is none."""
        try:
            states = json.loads(path.read_text())
        except FileNotFoundError:
            return False
        path.unlink()
        for connector, state in zip(self.connectors, states, strict=False):
            connector.import_state(state)
        return True

    async def stop(self) -> None:
        """Stop physics and meters, and leave every device in its safe state."""
        task, self._physics = self._physics, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for connector in self.connectors:
            await connector.meter.stop()
            await connector.aclose()


__all__ = [
    "ACTIONS",
    "FAULT_KINDS",
    "METER_MODELS",
    "EvState",
    "Fault",
    "SimActionError",
    "SimConnector",
    "SimParameters",
    "SimulatedStation",
]
