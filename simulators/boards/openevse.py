"""A simulated OpenEVSE controller: RAPI over a serial line, with the firmware's state rules.

Modelled on the firmware (``rapi_proc.cpp``, ``J1772EvseController.cpp``): frames of at most 31 characters,
``^`` XOR or ``*`` additive checksums (a wrong one is answered ``$NK`` without sequence id; none at all is accepted,
as the firmware does), sequence ids echoed, ``$AT`` on state changes and ``$AB`` at boot. Enabled, the board offers
PWM once an EV is present and closes its relay in state C; ``$FS`` sleeps (+12 V, the relay opens when the EV leaves
C or after 3 s), ``$FD`` disables (-12 V, relay open at once). The heartbeat supervision lowers the current to the
fallback - never below 6 A - when no ``$SY`` came for its interval, and the relay stays as it is.
"""

from __future__ import annotations

import functools
import operator
from typing import Any, Final

from chargepoint.core.pilot import duty_from_current
from simulators.boards import SimEv

FIRMWARE: Final = "8.2.3.SIM"
RAPI_VERSION: Final = "5.2.1"
BUFFER_CHARS: Final = 32
MIN_A: Final = 6
HARDWARE_MAX_A: Final = 80
SLEEP_RELAY_TIMEOUT_S: Final = 3.0
HS_ACK_COOKIE: Final = 0xA5

STATE_A, STATE_B, STATE_C, STATE_D = 0x01, 0x02, 0x03, 0x04
STATE_DIODE, STATE_GFCI, STATE_STUCK_RELAY = 0x05, 0x06, 0x08
STATE_SLEEPING, STATE_DISABLED = 0xFE, 0xFF
VF_CHARGING_ON, VF_GFI_TRIPPED, VF_EV_CONNECTED = 0x0040, 0x0080, 0x0100
VF_CHANGED_TEST = 0x0008 | 0x0100 | 0x0010 | 0x2000 | 0x0002  # the flags whose change sends $AT
_EV_STATE: Final = {"A": STATE_A, "B": STATE_B, "C": STATE_C, "D": STATE_D}


def _xor(text: str) -> int:
    return functools.reduce(operator.xor, text.encode("ascii", errors="replace"), 0)


def _frame(body: str) -> bytes:
    return f"{body}^{_xor(body):02X}\r".encode("ascii")


class OpenEvseSim:
    """``BoardSim`` of an OpenEVSE controller; ``max_current_A`` is its configured maximum (``$SC M``)."""

    def __init__(self, now_s: float, *, max_current_A: int = 32) -> None:
        self.ev = SimEv()
        self.max_A = max_current_A
        self.capacity_A = max_current_A  # the current it advertises (EEPROM value at boot)
        self.mode = "enabled"  # enabled | sleeping | disabled
        self.relay_on = False  # what the firmware drives (chargingOn)
        self.welded = False  # the relay's contacts stick: closed whatever the firmware drives
        self.faults: set[str] = set()
        self.sleep_since_s = now_s
        self.hs_interval_s = 0
        self.hs_fallback_A = 0
        self.hs_last_pulse_s = now_s
        self.hs_triggered = 0  # 0 never, 2 missed and not acknowledged, 1 missed and acknowledged
        self.bad_frames = 0
        self.evse_state = STATE_A
        self.pilot = "high"
        self._buffer = ""
        self._at_sent: tuple[int, int, int, int] | None = None
        self._boot = True

    # ------------------------------------------------------------------ firmware state machine

    def _step(self, now_s: float) -> None:
        if self.hs_interval_s and now_s - self.hs_last_pulse_s > self.hs_interval_s:
            if self.hs_fallback_A < self.capacity_A:
                self.capacity_A = max(MIN_A, min(self.hs_fallback_A, self.max_A))
            self.hs_triggered = 2
            self.hs_last_pulse_s = now_s  # checked again one interval later
        if self.faults:
            self.pilot, self.relay_on = "negative", False
            self.evse_state = STATE_GFCI if "rcd" in self.faults else STATE_DIODE
            return
        if self.mode == "disabled":
            self.pilot, self.relay_on, self.evse_state = "negative", False, STATE_DISABLED
        elif self.mode == "sleeping":
            self.pilot, self.evse_state = "high", STATE_SLEEPING
            ev_left_c = self.ev.state(pwm=False) not in ("C", "D")
            if self.relay_on and (ev_left_c or now_s - self.sleep_since_s >= SLEEP_RELAY_TIMEOUT_S):
                self.relay_on = False
        else:
            self.pilot = "pwm" if self.ev.plugged else "high"
            vehicle = self.ev.state(pwm=self.pilot == "pwm")
            self.evse_state = _EV_STATE[vehicle]
            # Ventilation is not available here (the firmware's vent-required check): no charging in D.
            self.relay_on = vehicle == "C"
        if self.welded and not self.relay_on:
            self.evse_state = STATE_STUCK_RELAY  # the firmware senses AC with its relay off

    @property
    def contactor_closed(self) -> bool:
        return self.relay_on or self.welded

    def _vflags(self) -> int:
        flags = VF_CHARGING_ON if self.relay_on else 0
        if self.ev.plugged and self.pilot != "negative":
            flags |= VF_EV_CONNECTED
        if "rcd" in self.faults:
            flags |= VF_GFI_TRIPPED
        return flags

    def _pilot_state(self) -> int:
        return _EV_STATE[self.ev.state(pwm=self.pilot == "pwm")]

    def _notifications(self) -> bytes:
        out = b""
        if self._boot:
            self._boot = False
            out += _frame(f"$AB 00 {FIRMWARE}")
        current = (self.evse_state, self._pilot_state(), self.capacity_A, self._vflags() & VF_CHANGED_TEST)
        if current != self._at_sent:
            self._at_sent = current
            out += _frame(f"$AT {self.evse_state:02x} {current[1]:02x} {self.capacity_A} {self._vflags():04x}")
        return out

    # ------------------------------------------------------------------ RAPI

    def _command(self, tokens: list[str], now_s: float) -> tuple[bool, str]:
        name, args = tokens[0], tokens[1:]
        match name, args:
            case "FE", []:
                if self.mode != "enabled":
                    self.mode = "enabled"
                return True, ""
            case "FD", []:
                self.mode = "disabled"
                self.relay_on = False  # panic stop: no waiting for the EV
                return True, ""
            case "FS", []:
                if self.mode != "sleeping":
                    self.mode, self.sleep_since_s = "sleeping", now_s
                return True, ""
            case "SC", [amps] | [amps, _] if amps.isdigit():
                return self._set_current(int(amps), volatile=len(args) == 2)
            case "SY", []:
                self.hs_last_pulse_s = now_s
                return self.hs_triggered != 2, self._hs_text()
            case "SY", [cookie] if cookie.isdigit():
                ok = int(cookie) == HS_ACK_COOKIE
                if ok and self.hs_triggered == 2:
                    self.capacity_A, self.hs_triggered = self.max_A, 1
                return ok, self._hs_text()
            case "SY", [interval, fallback] if interval.isdigit() and fallback.isdigit():
                if int(interval) == 0 and self.hs_triggered:
                    self.capacity_A = self.max_A
                self.hs_interval_s, self.hs_fallback_A = int(interval), int(fallback)
                self.hs_triggered, self.hs_last_pulse_s = 0, now_s
                return True, self._hs_text()
            case "GS", []:
                return True, f"{self.evse_state:02x} 0 {self._pilot_state():02x} {self._vflags():04x}"
            case "GC", []:
                return True, f"{MIN_A} {HARDWARE_MAX_A} {self.capacity_A} {self.max_A}"
            case "GV", []:
                return True, f"{FIRMWARE} {RAPI_VERSION}"
            case "G0", []:
                return True, "2" if self.pilot == "negative" else str(int(self.ev.plugged))
            case "GY", []:
                return True, self._hs_text()
        return False, ""

    def _set_current(self, amps: int, *, volatile: bool) -> tuple[bool, str]:
        # volatile or not makes no difference here (no EEPROM), but the reply is the firmware's.
        del volatile
        ok = MIN_A <= amps <= self.max_A
        self.capacity_A = min(max(amps, MIN_A), self.max_A)
        return ok, str(self.capacity_A)

    def _hs_text(self) -> str:
        return f"{self.hs_interval_s} {self.hs_fallback_A} {self.hs_triggered}"

    def _process(self, line: str, now_s: float) -> bytes:
        """One line between ``$`` and ``\\r``, as ``EvseRapiProcessor::tokenize``/``processCmd`` handle it."""
        body, check, kind = line, None, ""
        for mark in ("^", "*"):
            if mark in line:
                body, _, check = line.partition(mark)
                kind = mark
                break
        valid = True
        if check is not None:
            try:
                received = int(check[:2], 16)
            except ValueError:
                received = -1
            expected = _xor(body) if kind == "^" else sum(body.encode("ascii", errors="replace")) & 0xFF
            valid = received == expected
        tokens = body[1:].split(" ")
        if not valid or not tokens[0]:
            self.bad_frames += 1
            return _frame("$NK")
        seq = None
        if len(tokens) > 1 and tokens[-1].startswith(":"):
            seq = tokens.pop()[1:]
        ok, text = self._command(tokens, now_s)
        self._step(now_s)
        reply = "$OK" if ok else "$NK"
        if text:
            reply += " " + text
        if seq is not None:
            reply += f" :{seq}"
        return _frame(reply)

    # ------------------------------------------------------------------ BoardSim

    def receive(self, data: bytes, now_s: float) -> bytes:
        out = b""
        for char in data.decode("ascii", errors="replace"):
            if char == "$":
                self._buffer = "$"
            elif self._buffer:
                if char == "\r":
                    line, self._buffer = self._buffer, ""
                    out += self._process(line, now_s)
                elif len(self._buffer) < BUFFER_CHARS - 1:
                    self._buffer += char
                else:
                    self._buffer = ""  # too many characters: the firmware drops the line without a word
        return out + self._notifications()

    def tick(self, now_s: float) -> bytes:
        self._step(now_s)
        return self._notifications()

    def stimulus(self, words: list[str], now_s: float) -> None:
        if not self.ev.apply(words, has_pp=False):
            match words:
                case ["fault", "rcd"]:
                    self.faults.add("rcd")
                case ["fault", "diode"]:
                    self.faults.add("diode")
                case ["fault", "weld"]:
                    self.welded = True
                case ["clear"]:
                    self.faults.clear()
                    self.welded = False
                case _:
                    raise ValueError(f"unknown stimulus {' '.join(words)!r}")
        self._step(now_s)

    def outputs(self) -> dict[str, Any]:
        pwm = self.pilot == "pwm"
        return {
            "contactor_closed": self.contactor_closed,
            "duty_percent": (duty_from_current(self.capacity_A) or 0.0) if pwm else 0.0,
            "current_A": self.capacity_A if pwm else 0,
            "pilot": self.pilot,
            "state": f"0x{self.evse_state:02x}",
            "vehicle": self.ev.state(pwm=pwm),
            "heartbeat_missed": self.hs_triggered == 2,
        }
