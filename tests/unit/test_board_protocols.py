"""EVSE boards without a line: RAPI framing and checksums, Modbus RTU framing, each board's state mapping, the
ports' rules for a board (feedback grace, open at once, link loss), and the settings."""

from __future__ import annotations

import asyncio
import itertools
import struct
from typing import Any

import pytest

from chargepoint.config.schema import BoardSettings as BoardSchema
from chargepoint.core.pilot import PilotOutput, PilotState, classify, duty_from_current
from hal.boards import FEEDBACK_GRACE_S, BoardPorts, BoardSettings, BoardState, board_settings, nominal_reading, offer_A
from hal.drivers import evse_din, openevse_rapi
from hal.drivers.openevse_rapi import (
    RapiFrame,
    RapiProtocolError,
    additive_checksum,
    decode_frame,
    encode_command,
    status_from_at,
    status_from_gs,
    xor_checksum,
)
from hal.errors import HalError
from simulators.boards.evse_din import EvseDinSim, crc16, with_crc
from simulators.boards.openevse import OpenEvseSim

# ---------------------------------------------------------------------- RAPI framing

# Examples printed in the firmware's own protocol description (rapi_proc.h).
XOR_EXAMPLES = ["$GS^30", "$G0^53", "$GC^20", "$GE^26", "$GV^35", "$F0 1^43", "$F0 0^42", "$SK 0^2C", "$ST 0 0 0 0^23"]
ADDITIVE_EXAMPLES = ["$FD*AE", "$FE*AF", "$FS*BD", "$FR*BC", "$S0 0*F7", "$S0 1*F8", "$SL 1*14", "$SL 2*15", "$SL A*24"]


@pytest.mark.parametrize("example", XOR_EXAMPLES)
def test_xor_checksum_matches_the_firmware_documentation(example: str) -> None:
    body, _, check = example.partition("^")
    assert f"{xor_checksum(body):02X}" == check
    assert decode_frame(example).kind == body[1:3]


@pytest.mark.parametrize("example", ADDITIVE_EXAMPLES)
def test_additive_checksum_matches_the_firmware_documentation(example: str) -> None:
    body, _, check = example.partition("*")
    assert f"{additive_checksum(body):02X}" == check
    assert decode_frame(example).kind == body[1:3]


def test_commands_are_encoded_with_the_xor_checksum_and_a_sequence_id() -> None:
    assert encode_command("GS") == b"$GS^30\r"
    frame = encode_command("SC", 16, "V", seq_id=0x2A)
    assert frame.endswith(b"\r")
    line = frame.decode().rstrip("\r")
    assert line.startswith("$SC 16 V :2A^")
    assert decode_frame(line) == RapiFrame("SC", ("16", "V"), 0x2A)


@pytest.mark.parametrize(
    ("command", "args", "seq_id"),
    [("gs", (), None), ("GSX", (), None), ("SC", ("1 6",), None), ("SC", ("",), None), ("SY", (), 0),
     ("SY", (), 256), ("FP", ("x" * 30,), None)],
)
def test_commands_the_board_could_not_parse_are_refused(
    command: str, args: tuple[str, ...], seq_id: int | None
) -> None:
    with pytest.raises(ValueError):
        encode_command(command, *args, seq_id=seq_id)


def test_every_encoded_line_fits_the_boards_32_character_buffer() -> None:
    longest = encode_command("SY", 65535, 80, seq_id=0xFF)
    assert len(longest.rstrip(b"\r")) <= 31


@pytest.mark.parametrize(
    "line",
    ["$OK 03^00", "$OK 03", "OK^12", "$^24", "$OK^4", "$OK^ZZ", "$OK :GG^" + f"{xor_checksum('$OK :GG'):02X}"],
)
def test_frames_with_a_wrong_or_missing_checksum_are_rejected(line: str) -> None:
    with pytest.raises(RapiProtocolError):
        decode_frame(line)


def test_replies_and_notifications_decode() -> None:
    body = "$OK 03 120 03 0140 :07"
    reply = decode_frame(f"{body}^{xor_checksum(body):02X}\r")
    assert reply == RapiFrame("OK", ("03", "120", "03", "0140"), 7)
    status = status_from_gs(reply.args)
    assert (status.evse_state, status.pilot_state, status.vflags) == (3, 3, 0x140)
    at, capacity_A = status_from_at(("fe", "02", "16", "0100"))
    assert (at.evse_state, at.vflags, capacity_A) == (0xFE, 0x100, 16)
    with pytest.raises(RapiProtocolError):
        status_from_gs(("03", "x", "zz", "0140"))


# ---------------------------------------------------------------------- OpenEVSE states


@pytest.mark.parametrize(
    ("evse_state", "vflags", "vehicle", "pilot", "relay", "rcd", "welded"),
    [
        (0x01, 0x0000, PilotState.A, PilotOutput.HIGH, False, False, False),
        (0x02, 0x0100, PilotState.B, PilotOutput.PWM, False, False, False),
        (0x03, 0x0140, PilotState.C, PilotOutput.PWM, True, False, False),
        (0x03, 0x0100, PilotState.C, PilotOutput.PWM, False, False, False),  # C before the relay closed
        (0x04, 0x0100, PilotState.D, PilotOutput.PWM, False, False, False),
        (0xFE, 0x0100, PilotState.B, PilotOutput.HIGH, False, False, False),  # sleeping, EV connected
        (0xFE, 0x0140, PilotState.B, PilotOutput.HIGH, True, False, False),  # sleeping, EV not yet out of C
        (0xFE, 0x0000, PilotState.A, PilotOutput.HIGH, False, False, False),
        (0xFF, 0x0000, PilotState.F, PilotOutput.NEGATIVE, False, False, False),
        (0x06, 0x0180, PilotState.B, PilotOutput.NEGATIVE, False, True, False),  # GFCI
        (0x09, 0x0000, PilotState.A, PilotOutput.NEGATIVE, False, True, False),  # GFI self-test failed
        (0x08, 0x0100, PilotState.B, PilotOutput.NEGATIVE, True, False, True),  # stuck relay
        (0x05, 0x0100, PilotState.DIODE_FAILURE, PilotOutput.NEGATIVE, False, False, False),
        (0x07, 0x0100, PilotState.E, PilotOutput.NEGATIVE, False, False, False),  # no ground
        (0x0B, 0x0100, PilotState.E, PilotOutput.NEGATIVE, False, False, False),  # over current
        (0x0D, 0x0100, PilotState.E, PilotOutput.NEGATIVE, False, False, False),  # a fault we do not know
    ],
)
def test_openevse_states_map_onto_the_ports(
    evse_state: int, vflags: int, vehicle: PilotState, pilot: PilotOutput, relay: bool, rcd: bool, welded: bool
) -> None:
    state = openevse_rapi.board_state(openevse_rapi.RapiStatus(evse_state, 0, vflags), 32)
    assert (state.vehicle, state.pilot, state.relay_closed, state.rcd_tripped, state.welded) == (
        vehicle, pilot, relay, rcd, welded
    )
    assert state.offered_A == (32 if pilot is PilotOutput.PWM else 0)
    assert (state.fault is not None) == (evse_state not in (0x01, 0x02, 0x03, 0x04, 0xFE, 0xFF))


# ---------------------------------------------------------------------- EVSE-DIN registers


def din(vehicle: int, evse_state: int, bits: int | None, output_A: int = 16, pp_A: int = 32) -> evse_din.DinStatus:
    registers = [16, output_A, vehicle, pp_A, 0, 18, evse_state] + ([] if bits is None else [bits])
    return evse_din.status_from_registers(registers)


@pytest.mark.parametrize(
    ("status", "vehicle", "pilot", "relay", "rcd", "cable_A"),
    [
        (din(1, 1, 0, output_A=0, pp_A=0), PilotState.A, PilotOutput.HIGH, False, False, None),
        (din(2, 2, 0), PilotState.B, PilotOutput.PWM, False, False, 32.0),
        (din(3, 2, 1), PilotState.C, PilotOutput.PWM, True, False, 32.0),
        (din(3, 3, 0, output_A=0), PilotState.C, PilotOutput.HIGH, False, False, 32.0),  # turned off
        (din(4, 2, 1, pp_A=20), PilotState.D, PilotOutput.PWM, True, False, 20.0),
        (din(5, 1, 0x20), PilotState.B, PilotOutput.HIGH, False, True, 32.0),  # RCD error
        (din(5, 1, 0x02), PilotState.DIODE_FAILURE, PilotOutput.HIGH, False, False, 32.0),
        (din(5, 1, 0x04), PilotState.E, PilotOutput.HIGH, False, False, 32.0),  # ventilation failed
        (din(3, 2, None), PilotState.C, PilotOutput.PWM, True, False, 32.0),  # firmware < 17: relay inferred
        (din(2, 2, None), PilotState.B, PilotOutput.PWM, False, False, 32.0),
    ],
)
def test_evse_din_registers_map_onto_the_ports(
    status: evse_din.DinStatus, vehicle: PilotState, pilot: PilotOutput, relay: bool, rcd: bool,
    cable_A: float | None,
) -> None:
    state = evse_din.board_state(status)
    assert (state.vehicle, state.pilot, state.relay_closed, state.rcd_tripped, state.cable_max_A) == (
        vehicle, pilot, relay, rcd, cable_A
    )
    assert state.offered_A == (status.output_A if pilot is PilotOutput.PWM else 0)


def test_evse_din_status_needs_seven_or_eight_registers() -> None:
    with pytest.raises(ValueError):
        evse_din.status_from_registers([0] * 6)


# ---------------------------------------------------------------------- readings and offers


@pytest.mark.parametrize("state", [PilotState.A, PilotState.B, PilotState.C, PilotState.D, PilotState.E])
@pytest.mark.parametrize("output", [PilotOutput.HIGH, PilotOutput.PWM])
def test_nominal_readings_classify_as_the_boards_state(state: PilotState, output: PilotOutput) -> None:
    assert classify(nominal_reading(state, 0.0), output) is state


def test_a_diode_fault_reads_as_one_under_pwm_and_state_f_as_f() -> None:
    assert classify(nominal_reading(PilotState.DIODE_FAILURE, 0.0), PilotOutput.PWM) is PilotState.DIODE_FAILURE
    assert classify(nominal_reading(PilotState.F, 0.0), PilotOutput.HIGH) is PilotState.F


@pytest.mark.parametrize("current_A", range(6, 81))
def test_a_board_is_told_the_whole_amperes_the_duty_advertises_never_more(current_A: int) -> None:
    duty = duty_from_current(current_A)
    assert duty is not None
    told_A = offer_A(duty)
    assert told_A <= current_A
    assert told_A >= current_A - 1 if 51 < current_A < 53 else told_A == current_A


# ---------------------------------------------------------------------- Modbus RTU (the simulator's responder)


def test_modbus_crc_matches_the_specifications_example() -> None:
    # "01 03 00 00 00 0A C5 CD": the read request every Modbus primer shows.
    assert with_crc(bytes.fromhex("01030000000A")) == bytes.fromhex("01030000000AC5CD")
    assert crc16(bytes.fromhex("01030000000AC5CD")) == 0  # a frame with its CRC checks to zero


def rtu(pdu: str) -> bytes:
    return with_crc(bytes.fromhex(pdu))


def test_the_simulated_evse_din_answers_reads_and_writes_as_a_modbus_slave() -> None:
    board = EvseDinSim(0.0)
    reply = board.receive(rtu("0103 03E8 0008"), 0.0)
    assert crc16(reply) == 0 and reply[:3] == bytes((1, 3, 16))
    registers = struct.unpack(">8H", reply[3:19])
    assert registers[0] == 16 and registers[5] == 18  # 1000 from 2000 at boot; firmware 18
    write = rtu("0110 03E8 0001 02 0020")  # 1000 := 32 with function 16
    assert board.receive(write, 0.0) == rtu("0110 03E8 0001")
    assert board.configured_A == 32
    assert board.receive(rtu("0106 03EC 0001"), 0.0) == rtu("0106 03EC 0001")  # 1004 := turn off, function 06
    assert board.outputs()["turned_off"] is True


@pytest.mark.parametrize(
    ("request_hex", "reply_hex"),
    [
        ("0103 0BB8 0001", "0183 02"),  # 3000: outside the map
        ("0110 03E9 0001 02 0005", "0190 02"),  # 1001 is read-only
        ("0110 03E8 0001 02 0051", "0190 03"),  # 81 A
        ("0103 03E8 0000", "0183 03"),  # count 0
        ("0105 0000 FF00", "0185 01"),  # coils: no such function
    ],
)
def test_the_simulated_evse_din_refuses_with_modbus_exceptions(request_hex: str, reply_hex: str) -> None:
    assert EvseDinSim(0.0).receive(rtu(request_hex), 0.0) == rtu(reply_hex)


def test_the_simulated_evse_din_is_silent_on_a_bad_crc_or_another_unit() -> None:
    board = EvseDinSim(0.0)
    corrupt = bytearray(rtu("0103 03E8 0001"))
    corrupt[-1] ^= 0xFF
    assert board.receive(bytes(corrupt), 0.0) == b""
    assert board.receive(rtu("0203 03E8 0001"), 1.0) == b""
    assert board.bad_frames == 1


def test_the_simulated_openevse_answers_a_bad_checksum_with_nk_and_echoes_sequence_ids() -> None:
    board = OpenEvseSim(0.0)
    board.receive(b"", 0.0)  # its boot notification and first $AT
    assert board.receive(b"$GS^31\r", 0.0).startswith(b"$NK^")
    reply = board.receive(encode_command("GV", seq_id=9), 0.0)
    frame = decode_frame(reply.decode().split("\r")[0])
    assert (frame.kind, frame.seq_id) == ("OK", 9)


def test_the_simulated_openevse_supervision_lowers_the_current_and_keeps_charging() -> None:
    board = OpenEvseSim(0.0)
    board.receive(encode_command("SY", 2, 0), 0.0)
    board.stimulus(["plug"], 0.0)
    board.stimulus(["charge"], 0.0)
    assert board.outputs()["contactor_closed"] and board.outputs()["current_A"] == 32
    board.tick(1.9)
    assert board.outputs()["current_A"] == 32
    board.tick(2.1)
    outputs = board.outputs()
    assert outputs["contactor_closed"] and outputs["current_A"] == 6 and outputs["duty_percent"] == 10.0
    assert board.receive(encode_command("SY"), 2.2).startswith(b"$NK")  # until acknowledged
    assert board.receive(encode_command("SY", 165), 2.3).startswith(b"$OK")
    assert board.outputs()["current_A"] == 32


# ---------------------------------------------------------------------- the ports' rules


class RecordingDriver:
    """A ``BoardDriver`` that records its orders; the test plays the board by calling ``ports.update``."""

    name = "test board"
    board_max_current_A: float | None = None

    def __init__(self, *, can_drive_negative: bool = True) -> None:
        self.can_drive_negative = can_drive_negative
        self.orders: list[tuple[str, Any]] = []

    async def start(self, ports: BoardPorts) -> None:
        self.orders.append(("start", None))

    async def offer(self, current_A: int) -> None:
        self.orders.append(("offer", current_A))

    async def pause(self) -> None:
        self.orders.append(("pause", None))

    async def stop_now(self) -> None:
        self.orders.append(("stop_now", None))

    async def disable(self) -> None:
        self.orders.append(("disable", None))

    async def aclose(self) -> None:
        self.orders.append(("aclose", None))


def charging(relay: bool = True) -> BoardState:
    return BoardState(PilotState.C, PilotOutput.PWM, 16.0, relay)


async def test_a_relay_the_board_closes_itself_is_reported_once_the_contactor_was_commanded() -> None:
    ports = BoardPorts(RecordingDriver(), link_timeout_s=1.0)
    await ports.set_pwm(26.6)
    ports.update(charging())  # the board closed its relay as the EV went to C
    assert not ports.feedback_closed()
    await ports.close()  # the runtime saw C and commanded the contactor
    assert ports.feedback_closed()


async def test_a_relay_closed_without_command_is_reported_after_the_grace() -> None:
    ports = BoardPorts(RecordingDriver(), link_timeout_s=5.0)
    ports.update(charging())
    await asyncio.sleep(FEEDBACK_GRACE_S + 0.1)
    assert ports.feedback_closed()


async def test_open_stops_a_closed_relay_at_once_and_a_later_close_offers_again() -> None:
    driver = RecordingDriver()
    ports = BoardPorts(driver, link_timeout_s=1.0)
    await ports.set_pwm(26.6)
    ports.update(charging())
    await ports.close()
    await ports.open()
    assert ports.output() == (PilotOutput.HIGH, 0.0)  # the board is at +12 V now
    await ports.close()
    assert driver.orders == [("offer", 16), ("stop_now", None), ("offer", 16)]


async def test_open_leaves_a_board_alone_whose_relay_is_open_and_ev_not_asking() -> None:
    driver = RecordingDriver()
    ports = BoardPorts(driver, link_timeout_s=1.0)
    await ports.set_pwm(26.6)
    ports.update(BoardState(PilotState.B, PilotOutput.PWM, 16.0, False))
    await ports.open()  # the EV paused: the PWM must stay for it to resume
    assert driver.orders == [("offer", 16)]


async def test_set_negative_on_a_board_without_minus_12_v_reports_what_the_line_carries() -> None:
    driver = RecordingDriver(can_drive_negative=False)
    ports = BoardPorts(driver, link_timeout_s=1.0)
    await ports.set_negative()
    assert driver.orders == [("disable", None)]
    assert ports.output() == (PilotOutput.HIGH, 0.0)


async def test_readings_come_every_few_milliseconds_and_raise_once_the_board_is_silent() -> None:
    ports = BoardPorts(RecordingDriver(), link_timeout_s=0.2)
    ports.update(BoardState(PilotState.B, PilotOutput.HIGH, 0.0, False))
    readings = ports.readings()
    times = []
    for _ in range(5):
        times.append((await anext(readings)).measured_at_s)
    assert max(b - a for a, b in itertools.pairwise(times)) < 0.05
    with pytest.raises(HalError):
        async with asyncio.timeout(1.0):
            while True:
                await anext(readings)
    await ports.aclose()


# ---------------------------------------------------------------------- settings


def test_board_settings_defaults_agree_with_the_schema() -> None:
    schema = BoardSchema()
    assert board_settings({}) == BoardSettings(**schema.model_dump())
    assert BoardSettings._fields == tuple(BoardSchema.model_fields)


def test_board_settings_read_raw_toml_and_refuse_wrong_types() -> None:
    settings = board_settings({"kind": "evse-din", "link": "/dev/ttyUSB1", "timeout_s": 1, "device_id": 3})
    assert (settings.kind, settings.timeout_s, settings.device_id) == ("evse-din", 1.0, 3)
    for table in ({"kind": "keba"}, {"device_id": "1"}, {"timeout_s": True}, {"supervision_s": 2.5}):
        with pytest.raises((TypeError, ValueError)):
            board_settings(table)
