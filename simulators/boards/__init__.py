"""Simulated EVSE controller boards that speak the real protocols over a pseudo-terminal.

``chargepoint board-sim KIND --link PATH`` (``simulators.boards.main``) runs one: ``openevse`` (RAPI) or
``evse-din`` (Modbus RTU). Each board models the real firmware's rules - the relay follows the pilot state, the
board's own supervision (or the lack of it) - and an EV that a technician or a test steers with lines on stdin
(``STIMULI``). Every change of the board's outputs is one JSON line on stdout.

The protocol code here is written from the firmware and the register map, independently of the drivers in
``hal.drivers``: a wrong checksum or register in a driver makes its tests fail instead of being mirrored here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

STIMULI = """\
plug [A]        plug an EV in (socket boards: with a cable rated A amperes, default 32)
charge          the EV asks for energy (state C once the board offers PWM)
pause           the EV stops asking (state B)
vent            the EV asks for energy with ventilation (state D)
unplug          the EV leaves (state A)
cable A         the plugged cable's PP rating changes (13, 20, 32, 63; EVSE-DIN only)
fault KIND      rcd | diode | weld (the relay's contacts stick closed)
clear           clear every fault (a technician's reset)"""

CABLE_RATINGS_A = (13, 20, 32, 63)


@dataclass
class SimEv:
    """The EV on the cable: it asks for energy only while it sees PWM, and at once (real EVs take up to 3 s)."""

    plugged: bool = False
    wants_energy: bool = False
    ventilation: bool = False
    cable_A: int = 32

    def state(self, pwm: bool) -> str:
        """IEC 61851-1 state the EV puts on the pilot: A, B, C or D."""
        if not self.plugged:
            return "A"
        if self.wants_energy and pwm:
            return "D" if self.ventilation else "C"
        return "B"

    def apply(self, words: list[str], *, has_pp: bool) -> bool:
        """An EV stimulus; False if ``words`` is not one (the board handles faults)."""
        match words:
            case ["plug"] | ["plug", _]:
                self.plugged = True
                if len(words) == 2:
                    self.cable_A = cable_rating(words[1], has_pp)
            case ["charge"]:
                self.wants_energy, self.ventilation = True, False
            case ["vent"]:
                self.wants_energy, self.ventilation = True, True
            case ["pause"]:
                self.wants_energy = False
            case ["unplug"]:
                self.plugged = self.wants_energy = self.ventilation = False
            case ["cable", rating]:
                self.cable_A = cable_rating(rating, has_pp)
            case _:
                return False
        return True


def cable_rating(text: str, has_pp: bool) -> int:
    if not has_pp:
        raise ValueError("this board has no proximity-pilot input (a tethered cable)")
    if not text.isdigit() or int(text) not in CABLE_RATINGS_A:
        raise ValueError(f"cable rating must be one of {CABLE_RATINGS_A}, got {text!r}")
    return int(text)


class BoardSim(Protocol):
    """One simulated board: bytes in from the master, bytes out, time passing, stimuli, and its outputs."""

    def receive(self, data: bytes, now_s: float) -> bytes:
        """Bytes the master wrote; returns what the board answers."""
        ...

    def tick(self, now_s: float) -> bytes:
        """Time passed (timers, supervision); returns anything the board sends on its own."""
        ...

    def stimulus(self, words: list[str], now_s: float) -> None:
        """An EV or fault stimulus; raises ValueError for one the board does not know."""
        ...

    def outputs(self) -> dict[str, Any]:
        """What the board drives now: at least contactor_closed and duty_percent."""
        ...
