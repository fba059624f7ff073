"""The one configuration schema: every key, its type, range, default and meaning.

Unknown keys are errors (``extra="forbid"``) so that a typo never silently falls back to a default.
The field descriptions are the reference that ``config/example.toml`` documents.

Size: every key of the one config file is here, so that validation, the reference and the docs come from one place;
splitting the sections over modules would scatter what a technician reads as one file.
"""

from __future__ import annotations

from datetime import date, time
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Serial speeds a UART and the devices on it agree on: a rate a digit off (9601) would garble every frame.
METER_BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400)
BOARD_BAUDRATES: Final = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
AUTHORIZATION_KEY_MIN_CHARS: Final = 16  # OCPP 1.6 security whitepaper: 16 to 40 characters


def _standard_rate(value: int, rates: tuple[int, ...]) -> int:
    if value not in rates:
        raise ValueError(f"{value} is not a standard serial speed: use one of {', '.join(map(str, rates))}")
    return value


class IdentitySettings(_Section):
    """Identity reported to the CSMS."""

    vendor: str = Field("chargepoint", max_length=20, description="ChargePointVendor in BootNotification")
    model: str = Field("CP-AC22", max_length=20, description="ChargePointModel in BootNotification")
    serial_number: str = Field("SIM-0001", max_length=25, description="Charge point serial number")
    firmware_version: str | None = Field(None, max_length=50, description="Defaults to the package version")
    evse_id: str = Field(
        "", max_length=48, pattern=r"^[^|]*$",
        description="EVSE ID (e.g. DE*ABC*E123456*1) a signing meter writes into each signed session (OCMF CI); "
        "empty: the OCPP charge point id"
    )


class ChargerSettings(_Section):
    """Charging policy and installation limits."""

    connectors: int = Field(1, ge=1, le=8, description="Number of connectors (EVSEs)")
    max_current_A: float = Field(32.0, ge=6.0, le=80.0, description="Maximum current per phase the installation allows")
    cable_rating_A: float = Field(32.0, ge=6.0, le=80.0, description="Rating of the tethered cable (tethered_cable)")
    tethered_cable: bool = Field(
        False, description="true: a fixed cable of cable_rating_A; false: a socket outlet, the cable's PP resistor "
        "sets the rating (13/20/32/63 A) and no cable means no charging"
    )
    ventilation_available: bool = Field(
        False, description="The site ventilates the charging area: only then does an EV asking for it (state D) charge"
    )
    phases: Literal[1, 3] = Field(3, description="Phases wired to the connector")
    connection_timeout_s: float = Field(60.0, gt=0, le=3600, description="Plug-in/authorization pairing window")
    free_vend: bool | None = Field(
        None, description="Charge without a card. Default: true without an [ocpp] section, false with one"
    )
    free_vend_id_tag: str = Field("FREEVEND", min_length=1, max_length=20, description="idTag of free-vend sessions")
    allowed_id_tags: list[str] = Field(
        default_factory=list, description="Cards accepted when free vend is off (upper-case hex UIDs)"
    )
    meter_poll_interval_s: float = Field(1.0, ge=0.1, le=60, description="How often the energy meter is read")
    pwm_min_update_interval_s: float = Field(5.0, ge=0, le=60, description="Minimum time between duty changes")
    contactor_feedback_timeout_s: float = Field(0.5, gt=0, le=5, description="Mirror contact must confirm within")
    overcurrent_margin_percent: float = Field(
        10.0, ge=0, le=50, description="Draw above the offer tolerated, in percent of the offer (highest phase)"
    )
    overcurrent_grace_s: float = Field(5.0, ge=1, le=60, description="Time the EV gets to follow a lower offer")
    overcurrent_trip_s: float = Field(
        2.0, ge=0.5, le=30, description="A draw above the tolerated one lasting this long opens the contactor"
    )
    overcurrent_trips_to_latch: int = Field(
        3, ge=1, le=10, description="Over-current trips within an hour that latch the fault (fault clear)"
    )
    rcd_reclose_max: int = Field(
        2, ge=0, le=5, description="Automatic re-closes after RCD trips within an hour; the next trip latches"
    )
    stop_wait_s: float = Field(
        3.0, ge=0, le=10, description="A stop that is not a fault withdraws the PWM, then waits this long at most "
        "for the EV to stop drawing before the contactor opens"
    )
    contactor_closes_per_min_max: int = Field(
        10, ge=1, le=60, description="Contactor closes allowed per minute (a flickering pilot must not chatter it)"
    )
    pilot_timeout_s: float = Field(
        0.1, ge=0.02, le=1.0, description="No valid pilot sample for this long is a fault that opens the contactor"
    )
    pilot_debounce_samples: int = Field(
        3, ge=1, le=20, description="Consecutive samples a pilot state needs before it may close the contactor"
    )


class MeterSettings(_Section):
    """Energy meter on real hardware (Modbus TCP or RTU)."""

    backend: Literal["sdm630", "iskra_wm3m4c"] = Field(
        "sdm630", description="Meter driver: sdm630 (Eastron SDM630), iskra_wm3m4c (Iskra WM3M4C, signs its readings: "
        "OCMF for German calibration law)"
    )
    transport: Literal["tcp", "rtu"] = Field(
        "rtu", description="rtu: Modbus RTU over RS-485 (serial_port); tcp: Modbus TCP (host, port). The default is "
        "the same with or without this table"
    )
    host: str = Field("127.0.0.1", description="TCP host (transport = tcp)")
    port: int = Field(502, ge=1, le=65535, description="TCP port (transport = tcp)")
    serial_port: str = Field("/dev/ttyUSB0", description="Serial device (transport = rtu)")
    baudrate: int = Field(9600, description="Serial speed (transport = rtu): 1200, 2400, 4800, 9600, 19200 or 38400 "
                          "(what the meters offer)")
    parity: Literal["N", "E", "O"] = Field("N", description="Serial parity (transport = rtu)")
    device_id: int | None = Field(
        None, ge=1, le=247, description="Modbus unit id; absent: the meter's factory id (SDM630 1, Iskra WM3M4C 33)"
    )
    timeout_s: float = Field(1.0, gt=0, le=10, description="Answer timeout")
    signing_timeout_s: float = Field(
        10.0, gt=0, le=60, description="How long a signing meter may take to sign a begin or end reading"
    )

    @field_validator("baudrate")
    @classmethod
    def _standard_baudrate(cls, value: int) -> int:
        return _standard_rate(value, METER_BAUDRATES)


class GpioContactorSettings(_Section):
    """Contactor on GPIO lines (rpi backend). The coil driver needs a pull-down: a released line means open."""

    chip: int = Field(-1, ge=-1, description="gpiochip number (/dev/gpiochipN); -1: the 40-pin header's, by label")
    relay_pin: int = Field(17, ge=0, description="Output that drives the contactor coil (active high)")
    feedback_pin: int = Field(27, ge=0, description="Input of the mirror contact (high = closed)")
    debounce_s: float = Field(0.01, ge=0, le=1, description="Debounce of the mirror contact input")
    persistent_gpio_acknowledged: bool = Field(
        False, description="Start even though the kernel keeps released outputs driven (no dtparam=strict_gpiod=on): "
        "only where a watchdog relay also cuts the coil when the daemon dies (docs/hardware.md)"
    )


class PwmPilotSettings(_Section):
    """Control pilot on a kernel PWM channel (dtoverlay=pwm) with an MCP3008 ADC sampling it (rpi backend)."""

    pwm_chip: int = Field(-1, ge=-1, description="PWM chip number (/sys/class/pwm/pwmchipN); -1: GPIO 18's, found")
    pwm_channel: int = Field(-1, ge=-1, description="PWM channel on that chip (pwmM); -1: GPIO 18's (Pi 5: 2, else 0)")
    sysfs_root: str = Field("/sys/class/pwm", min_length=1, description="Kernel PWM sysfs directory")
    spi_bus: int = Field(0, ge=0, description="SPI bus of the MCP3008 (/dev/spidevB.D: B)")
    spi_device: int = Field(0, ge=0, description="SPI chip select of the MCP3008 (/dev/spidevB.D: D)")
    adc_channel: int = Field(0, ge=0, le=7, description="MCP3008 input that sees the scaled pilot voltage")
    volts_per_count: float = Field(
        24.0 / 1023.0, gt=0, description="Pilot volts per ADC count (calibrate: default maps 0..1023 to -12..+12 V)"
    )
    offset_V: float = Field(-12.0, ge=-20, le=20, description="Pilot voltage at ADC count 0")
    poll_interval_s: float = Field(0.01, ge=0.001, le=0.1, description="How often the pilot levels are sampled")


class GpioLockSettings(_Section):
    """Socket-outlet plug lock: motor outputs pulsed to lock/unlock, and a position sensor. Absent = tethered cable."""

    chip: int = Field(-1, ge=-1, description="gpiochip number (/dev/gpiochipN); -1: the 40-pin header's, by label")
    lock_pin: int = Field(5, ge=0, description="Output that drives the motor towards locked (active high)")
    unlock_pin: int = Field(6, ge=0, description="Output that drives the motor towards unlocked (active high)")
    sense_pin: int = Field(13, ge=0, description="Input of the position sensor (active = locked)")
    sense_active_low: bool = Field(False, description="The position sensor pulls low when locked")
    pulse_s: float = Field(0.3, gt=0, le=5, description="How long the motor output is driven")
    timeout_s: float = Field(1.0, gt=0, le=10, description="The sensor must confirm the position within (from start)")


class GpioInputSettings(_Section):
    """One digital input on a GPIO line."""

    chip: int = Field(-1, ge=-1, description="gpiochip number (/dev/gpiochipN); -1: the 40-pin header's, by label")
    pin: int = Field(22, ge=0, description="Line offset on that chip")
    active_low: bool = Field(False, description="The signal is asserted when the line is low")


class RcdInputSettings(GpioInputSettings):
    """Fault output of the RDC-DD (6 mA DC) module, wired fail-safe: the module holds the line high while healthy
    (its relay contact closed to 3.3 V), the pull-down makes a trip, a dead module and a broken wire all read low."""

    pin: int = Field(22, ge=0, description="Line offset on that chip")
    active_low: bool = Field(True, description="A trip is a low line (with the pull-down: so is a broken wire)")
    pull_down: bool = Field(True, description="Enable the Pi's pull-down on the input (fail-safe wiring)")
    test_pin: int = Field(-1, ge=-1, description="Output to the module's TEST input; -1: none (no self-test)")
    test_active_low: bool = Field(False, description="The module's TEST input is asserted by a low line")


class MainsInputSettings(GpioInputSettings):
    """Mains-present detector (optocoupler) input."""

    pin: int = Field(23, ge=0, description="Line offset on that chip")
    active_low: bool = Field(False, description="Mains present is signalled by a low line")


class PpInputSettings(_Section):
    """Proximity pilot through an MCP3008 channel (rpi backend): PP to a pull-up resistor, the ADC reads the divider
    the cable's PP resistor makes with it (1.5 kOhm 13 A, 680 Ohm 20 A, 220 Ohm 32 A, 100 Ohm 63 A, open: none)."""

    spi_bus: int = Field(0, ge=0, description="SPI bus of the MCP3008")
    spi_device: int = Field(0, ge=0, description="SPI chip select of the MCP3008")
    adc_channel: int = Field(1, ge=0, le=7, description="MCP3008 input wired to PP")
    pullup_ohm: float = Field(330.0, gt=0, description="Pull-up resistor from PP to the supply")
    supply_V: float = Field(3.3, gt=0, le=5.5, description="Voltage the pull-up is tied to")
    volts_per_count: float = Field(3.3 / 1023.0, gt=0, description="ADC volts per count")
    poll_interval_s: float = Field(0.1, ge=0.01, le=1, description="How often PP is read")


class TamperInputSettings(_Section):
    """The enclosure's tamper switch (door or cover contact), closed while the enclosure is shut (rpi backend)."""

    chip: int = Field(-1, ge=-1, description="gpiochip number (/dev/gpiochipN); -1: the 40-pin header's, by label")
    pin: int = Field(25, ge=0, description="Line offset of the tamper contact")
    active_low: bool = Field(False, description="The contact reads closed as a low line")


class ShuntTripSettings(_Section):
    """Output to the shunt-trip release of the upstream breaker: driven when the contactor welds (rpi backend)."""

    chip: int = Field(-1, ge=-1, description="gpiochip number (/dev/gpiochipN); -1: the 40-pin header's, by label")
    pin: int = Field(24, ge=0, description="Line offset of the shunt-trip driver")
    active_low: bool = Field(False, description="The driver is switched on by a low line")


class NfcSettings(_Section):
    """RFID/NFC card reader (rpi backend)."""

    backend: Literal["nfc", "none"] = Field("nfc", description="nfc: an nfcpy reader; none: no reader (free vend)")
    device: str = Field("usb", min_length=1, description="nfcpy device path: usb, usb:072f:2200, tty:S0:pn532 ...")


class BoardSettings(_Section):
    """EVSE controller board that drives pilot, relay and RCD itself (backend "board"); see docs/hardware.md."""

    kind: Literal["openevse", "evse-din"] = Field(
        "openevse", description="openevse: OpenEVSE controller over RAPI; evse-din: EVSE-DIN/SimpleEVSE over Modbus RTU"
    )
    link: str = Field("/dev/serial0", min_length=1, description="Serial device of the board (UART or RS-485 adapter)")
    baudrate: int | None = Field(
        None, description="Serial speed; default: the board's (openevse 115200, evse-din 9600); a standard rate from "
        "1200 to 115200"
    )
    device_id: int = Field(1, ge=1, le=247, description="Modbus unit id (evse-din)")
    supervision_s: int | None = Field(
        None, ge=1, le=65_535, description="openevse: heartbeat supervision interval ($SY), default 10; evse-din has "
        "no supervision: leave it out"
    )
    fallback_current_A: float = Field(
        6.0, ge=6.0, le=80.0, description="openevse: current the board falls back to when heartbeats stop (it keeps "
        "charging; the firmware never goes below 6 A)"
    )
    poll_interval_s: float | None = Field(
        None, ge=0.02, le=5, description="How often the board's state is read; default: openevse 0.1, evse-din 0.2"
    )
    timeout_s: float = Field(0.5, gt=0, le=5, description="The board must answer one request within")
    link_timeout_s: float = Field(
        2.0, ge=0.2, le=30, description="No answer from the board for this long is a lost link (connector faulted)"
    )
    max_current_A: float | None = Field(
        None, ge=6.0, le=80.0, description="Most the board and its relay may switch (openevse also reads its own)"
    )

    @field_validator("baudrate")
    @classmethod
    def _standard_baudrate(cls, value: int | None) -> int | None:
        return None if value is None else _standard_rate(value, BOARD_BAUDRATES)

    @model_validator(mode="after")
    def _supervision(self) -> BoardSettings:
        if self.kind == "evse-din" and self.supervision_s is not None:
            raise ValueError("supervision_s: the EVSE-DIN board has no link supervision (see docs/hardware.md)")
        return self


class PaymentSettings(_Section):
    """Card payment terminal (ZVT over TCP or a serial line); see docs/hardware.md "Payment terminal (ZVT)"."""

    backend: Literal["auto", "none", "zvt", "sim"] = Field(
        "auto", description="zvt: a real terminal at host:port; sim: the ZVT terminal simulator on loopback; none: no "
        "terminal; auto: sim with hardware.backend = \"sim\", none otherwise"
    )
    transport: Literal["tcp", "serial"] = Field(
        "tcp", description="ZVT over TCP/IP, or over a serial line (RS-232, DLE/STX framing with CRC)"
    )
    host: str = Field("", description="Terminal's IP address or host name (backend zvt, transport tcp)")
    port: int = Field(20007, ge=1, le=65535, description="Terminal's ECR port (ZVT over TCP)")
    serial_port: str = Field("/dev/ttyUSB1", min_length=1, description="Serial device (transport serial)")
    baudrate: Literal[9600, 19200, 38400, 57600, 115200] = Field(
        9600, description="Serial speed (transport serial; ZVT's default is 9600, 8N2)"
    )
    password: SecretStr | None = Field(None, description="Terminal's ECR password, six digits; absent: 000000, the "
                                       "terminals' factory setting")
    currency: Literal["EUR", "CHF", "GBP", "USD", "DKK", "SEK", "NOK", "PLN", "CZK", "HUF"] = Field(
        "EUR", description="Currency the terminal works in (ISO 4217)"
    )
    timeout_s: float = Field(120.0, ge=5, le=600, description="Longest one terminal request may take, the card "
                             "presentation included")
    capture_command: Literal["book-total", "partial-reversal"] = Field(
        "book-total", description="How a pre-authorisation is booked: Book Total (06 24) or Partial-Reversal (06 23, "
        "as Feig cVEND terminals expect)"
    )

    @field_validator("password")
    @classmethod
    def _six_digits(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) != 6 or not secret.isdigit():
            raise ValueError("the ZVT password is six digits")
        return value

    @model_validator(mode="after")
    def _host(self) -> PaymentSettings:
        if self.backend == "zvt" and self.transport == "tcp" and not self.host:
            raise ValueError('backend = "zvt" over tcp needs the terminal\'s host (hardware.payment.host)')
        return self


class HardwareSettings(_Section):
    """Which backend drives the devices."""

    backend: Literal["sim", "rpi", "board"] = Field(
        "sim", description="sim: simulators for every device; rpi: real drivers on the Pi's GPIO; board: an EVSE "
        "controller board ([hardware.board]) with the meter, card reader and lock below"
    )
    board: BoardSettings | None = Field(None, description="EVSE controller board (board backend)")
    meter: MeterSettings | None = Field(
        None, description="Energy meter (rpi and board backends; absent: an SDM630 over RS-485 on /dev/ttyUSB0, as a "
        "table with every key left out); sim uses its own Modbus server"
    )
    contactor: GpioContactorSettings = Field(
        default_factory=lambda: GpioContactorSettings(), description="Contactor relay and mirror contact (rpi backend)"
    )
    pilot: PwmPilotSettings = Field(
        default_factory=lambda: PwmPilotSettings(), description="Control pilot PWM output and ADC (rpi backend)"
    )
    lock: GpioLockSettings | None = Field(None, description="Plug lock (rpi backend); absent = tethered cable, no lock")
    rcd: RcdInputSettings = Field(
        default_factory=lambda: RcdInputSettings(), description="Residual-current (RDC-DD) fault input (rpi backend)"
    )
    mains: MainsInputSettings = Field(
        default_factory=lambda: MainsInputSettings(), description="Mains-present input (rpi backend)"
    )
    rfid: NfcSettings = Field(default_factory=lambda: NfcSettings(), description="Card reader (rpi backend)")
    pp: PpInputSettings | None = Field(
        None, description="Proximity-pilot input (rpi backend); absent: none, so only a tethered cable can charge"
    )
    shunt_trip: ShuntTripSettings | None = Field(
        None, description="Shunt-trip output, the second means of disconnection (rpi backend); absent: none wired"
    )
    tamper: TamperInputSettings | None = Field(
        None, description="Enclosure tamper switch (rpi backend): opening it is the TamperDetectionActivated security "
        "event; absent: none wired"
    )
    watchdog_device: str = Field(
        "auto", description="Hardware watchdog fed from the safety loop; auto: /dev/watchdog on rpi and board, none "
        "on sim; empty: none"
    )
    watchdog_timeout_s: int = Field(10, ge=1, le=60, description="Hardware watchdog timeout (bcm2835: at most 15)")
    payment: PaymentSettings = Field(
        default_factory=lambda: PaymentSettings(), description="Card payment terminal"
    )

    @model_validator(mode="after")
    def _board_needs(self) -> HardwareSettings:
        if self.backend == "board" and self.board is None:
            raise ValueError('backend = "board" needs a [hardware.board] table (hardware.board.kind, '
                             "hardware.board.link)")
        meter = self.meter or MeterSettings()
        if self.backend == "board" and self.board is not None and meter.transport == "rtu" and (
                self.board.link == meter.serial_port):
            raise ValueError(f"hardware.board.link {meter.serial_port} is the energy meter's serial port too: give "
                             "the board a line of its own")
        return self


class SimulatorSettings(_Section):
    """Simulated EV and devices (hardware backend "sim")."""

    ev_max_current_A: float = Field(32.0, gt=0, le=80, description="Simulated EV's maximum current per phase")
    ev_phases: Literal[1, 3] = Field(3, description="Phases the simulated EV charges on")
    ev_follow_s: float = Field(2.0, ge=0, le=10, description="Time the EV takes to follow a new offer")
    ev_battery_Wh: int = Field(60_000, gt=0, description="Simulated battery capacity")
    ev_soc_percent: float = Field(50.0, ge=0, le=100, description="State of charge at start")
    voltage_V: float = Field(230.0, gt=0, le=400, description="Simulated phase voltage")
    contactor_feedback_delay_s: float = Field(0.02, ge=0, le=1, description="Mirror contact delay")
    lock_delay_s: float = Field(0.05, ge=0, le=2, description="Lock actuator travel time")
    meter_port: int = Field(0, ge=0, le=65535, description="Modbus TCP port of the simulated meter, 0 = any free")
    meter_model: Literal["sdm630", "iskra_wm3m4c"] = Field(
        "sdm630", description="Simulated meter: sdm630, or iskra_wm3m4c (signs each session's readings, OCMF)"
    )
    time_scale: float = Field(1.0, gt=0, le=3600, description="Simulated charging seconds per real second")


class StorageSettings(_Section):
    """Where state lives."""

    dir: Path = Field(Path("/var/lib/chargepoint"), description="Holds the database and the control socket")
    database: Path | None = Field(None, description="SQLite file; default {dir}/chargepoint.db")
    control_socket: Path | None = Field(None, description="Unix socket for the CLI; default {dir}/control.sock")
    reserve_bytes: int = Field(
        8 * 1024 * 1024, ge=0,
        description="Reserve file kept beside the database: released when the disk fills, so the records of "
        "running sessions still fit",
    )
    min_free_bytes: int = Field(
        32 * 1024 * 1024, ge=0, description="Below this much free disk space no new session starts"
    )

    @property
    def database_path(self) -> Path:
        return self.database or self.dir / "chargepoint.db"

    @property
    def control_socket_path(self) -> Path:
        return self.control_socket or self.dir / "control.sock"


class LoggingSettings(_Section):
    """The daemon's log (journald's own protocol under systemd, one text line per record on stderr otherwise) and
    the OCPP message log."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level (journald/stderr)")
    ocpp_log: bool = Field(
        True, description="Write every OCPP frame in and out (secrets masked) to ocpp.log in the storage directory; "
        "read it with 'chargepoint logs ocpp [--follow]'"
    )
    ocpp_log_max_bytes: int = Field(
        2_097_152, ge=65_536, le=1_073_741_824,
        description="Size at which ocpp.log is rotated: it becomes ocpp.log.1, .1 becomes .2 and so on"
    )
    ocpp_log_backups: int = Field(
        4, ge=0, le=100,
        description="Rotated OCPP logs kept besides ocpp.log (0: none); the disk holds at most (1 + backups) x "
        "ocpp_log_max_bytes"
    )


class OcppSettings(_Section):
    """Connection to the operator's backend (CSMS). Leave out to run standalone."""

    csms_url: str = Field(..., pattern=r"^wss?://", description="CSMS endpoint; the charge point id is appended")
    charge_point_id: str = Field(..., min_length=1, max_length=48, pattern=r"^[A-Za-z0-9_.:-]+$")
    security_profile: Literal[0, 1, 2, 3] = Field(0, description="OCPP security profile")
    authorization_key: SecretStr | None = Field(None, description="Basic-auth password (profiles 1 and 2)")
    ca_file: Path | None = Field(None, description="PEM CA that issued the CSMS certificate (profiles 2, 3)")
    client_cert_file: Path | None = Field(None, description="Client certificate (profile 3)")
    client_key_file: Path | None = Field(None, description="Client private key (profile 3)")
    heartbeat_interval_s: int = Field(
        300, ge=0, le=86_400, description="Initial HeartbeatInterval (the CSMS may change it)"
    )
    meter_value_sample_interval_s: int = Field(
        60, ge=0, le=86_400, description="Initial MeterValueSampleInterval (0 = no sampled meter values)"
    )
    meter_values_sampled_data: str = Field(
        "Energy.Active.Import.Register,Power.Active.Import,Current.Import",
        description="Initial MeterValuesSampledData (comma-separated measurands)",
    )
    cost_and_price: bool = Field(
        True, description="Take prices from the CSMS (California Pricing, CustomDisplayCostAndPrice)"
    )
    allow_insecure_uploads: bool = Field(
        False,
        description="At security profiles 2 and 3, let diagnostics and logs go to plain http:// and ftp:// "
        "locations too (by default only https:// and ftps://)",
    )
    kpi_vendor_id: str = Field(
        "", max_length=255, description="Send a daily summary (availability, sessions, energy, faults) to the CSMS "
        "as a DataTransfer with this vendorId, queued while offline; empty: none"
    )
    allow_unsigned_firmware_updates: bool = Field(
        False,
        description="Accept OCPP UpdateFirmware (unsigned) besides SignedUpdateFirmware: only with an installer "
        "that checks signatures of its own (RAUC, SWUpdate)",
    )
    firmware_install_command: list[str] | None = Field(
        None,
        min_length=1,
        description="Real hardware: program (and arguments) that installs a firmware image from UpdateFirmware; "
        "the image path is appended, e.g. [\"rauc\", \"install\"]. Absent: updates are downloaded but reported "
        "InstallationFailed",
    )

    @field_validator("meter_values_sampled_data")
    @classmethod
    def _measurands(cls, value: str) -> str:
        from chargepoint.core.measurands import UnsupportedMeasurands, parse_measurands

        try:
            return parse_measurands(value)
        except UnsupportedMeasurands as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _profile_needs(self) -> OcppSettings:
        if self.security_profile >= 2 and not self.csms_url.startswith("wss://"):
            raise ValueError("security_profile 2 and 3 need a wss:// csms_url")
        if self.security_profile == 3 and (self.client_cert_file is None or self.client_key_file is None):
            raise ValueError("security_profile 3 needs client_cert_file and client_key_file")
        if self.security_profile in (1, 2) and self.authorization_key is None:
            raise ValueError("security_profile 1 and 2 need authorization_key")
        if self.security_profile in (1, 2) and self.authorization_key is not None and not (
                AUTHORIZATION_KEY_MIN_CHARS <= len(self.authorization_key.get_secret_value()) <= 40):
            raise ValueError(f"authorization_key: security profiles 1 and 2 need {AUTHORIZATION_KEY_MIN_CHARS} to 40 "
                             f"characters (OCPP 1.6 security whitepaper), got "
                             f"{len(self.authorization_key.get_secret_value())}")
        return self


_WEEKDAYS = {"mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6, "sun": 7}


class TaxRateSettings(_Section):
    """A tax on the prices (prices are configured excluding tax)."""

    name: str = Field("VAT", min_length=1, max_length=20, description="Shown on the display and the receipt")
    percent: Decimal = Field(..., ge=0, le=100, description="Rate in percent, e.g. \"19\"")
    stack: int = Field(0, ge=0, le=3, description="0: on the net price; 1: also on the stack-0 taxes (tax on tax)")


class PriceConditionSettings(_Section):
    """When a price applies; all that are set must hold. Times are local (pricing.time_zone)."""

    start_time: time | None = Field(None, description="Local time of day from which it applies, \"HH:MM\"")
    end_time: time | None = Field(None, description="Local time of day until which it applies (before start: wraps)")
    days: list[str] | None = Field(None, description="Weekdays it applies on: mon, tue, wed, thu, fri, sat, sun")
    from_date: date | None = Field(None, description="First day it applies (local date)")
    to_date: date | None = Field(None, description="First day it no longer applies (local date)")
    min_energy_kWh: Decimal | None = Field(None, ge=0, description="Applies once the session delivered this much")
    max_energy_kWh: Decimal | None = Field(None, ge=0, description="Applies until the session delivered this much")
    min_power_kW: Decimal | None = Field(None, ge=0, description="Applies while charging at least this fast")
    max_power_kW: Decimal | None = Field(None, ge=0, description="Applies while charging slower than this")
    min_duration_min: Decimal | None = Field(None, ge=0, description="Applies from this long after session start")
    max_duration_min: Decimal | None = Field(None, ge=0, description="Applies until this long after session start")

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        unknown = [day for day in value if day.lower() not in _WEEKDAYS]
        if unknown or not value:
            raise ValueError(f"days must be a non-empty list of {', '.join(_WEEKDAYS)}; got {unknown or value}")
        return [day.lower() for day in value]

    def to_conditions(self) -> Any:
        from chargepoint.pricing.tariff import Conditions

        def wh(kwh: Decimal | None) -> int | None:
            return None if kwh is None else int(kwh * 1000)

        def watts(kw: Decimal | None) -> float | None:
            return None if kw is None else float(kw * 1000)

        def seconds(minutes: Decimal | None) -> int | None:
            return None if minutes is None else int(minutes * 60)

        return Conditions(
            start_time_of_day=self.start_time,
            end_time_of_day=self.end_time,
            days_of_week=None if self.days is None else frozenset(_WEEKDAYS[d] for d in self.days),
            valid_from_date=self.from_date,
            valid_to_date=self.to_date,
            min_energy_Wh=wh(self.min_energy_kWh),
            max_energy_Wh=wh(self.max_energy_kWh),
            min_power_W=watts(self.min_power_kW),
            max_power_W=watts(self.max_power_kW),
            min_duration_s=seconds(self.min_duration_min),
            max_duration_s=seconds(self.max_duration_min),
        )


class EnergyPriceSettings(PriceConditionSettings):
    """A price per kWh, and when it applies."""

    price_per_kWh: Decimal = Field(..., description="Price per kWh, excluding tax")


class TimePriceSettings(PriceConditionSettings):
    """A price per minute or per hour (give exactly one), and when it applies."""

    price_per_minute: Decimal | None = Field(None, description="Price per minute, excluding tax")
    price_per_hour: Decimal | None = Field(None, description="Price per hour, excluding tax")

    @model_validator(mode="after")
    def _one_price(self) -> TimePriceSettings:
        if (self.price_per_minute is None) == (self.price_per_hour is None):
            raise ValueError("give exactly one of price_per_minute and price_per_hour")
        return self

    @property
    def per_hour(self) -> Decimal:
        return self.price_per_hour if self.price_per_hour is not None else (self.price_per_minute or Decimal(0)) * 60


class FixedPriceSettings(PriceConditionSettings):
    """A fee charged once per session, and when (at session start) it applies."""

    price: Decimal = Field(..., description="Fee per session, excluding tax")


class TariffSettings(_Section):
    """One tariff. The first price of a list whose conditions hold applies; lists must cover every hour."""

    description: dict[str, str] = Field(default_factory=dict, description="Text per language, e.g. {en = \"...\"}")
    tax_rates: list[TaxRateSettings] = Field(default_factory=list, description="Taxes on every component")
    energy: list[EnergyPriceSettings] = Field(default_factory=list, description="Energy prices")
    charging_time: list[TimePriceSettings] = Field(default_factory=list, description="Prices for time charging")
    idle_time: list[TimePriceSettings] = Field(
        default_factory=list, description="Prices for time plugged in without charging, after the grace period"
    )
    idle_grace_min: Decimal = Field(Decimal(0), ge=0, description="Idle minutes per session that are free")
    fixed_fee: list[FixedPriceSettings] = Field(default_factory=list, description="Fee per session")
    min_cost: Decimal | None = Field(None, description="Minimum cost of a session, excluding tax")
    max_cost: Decimal | None = Field(None, description="Maximum cost of a session, excluding tax")
    charge_without_energy: bool = Field(
        False, description="Charge fixed_fee and min_cost also for a session that delivered no energy (a session "
        "the charger ended by its own fault before energy flowed is free in any case)"
    )
    idle_before_energy: bool = Field(
        True, description="Count the wait before the first energy (EV plugged in, not drawing yet) as idle time; "
        "time in which the charger, a charging limit or a fault holds power back is never idle. Stated on the "
        "price display"
    )
    tax_method: Literal["per_line", "on_total"] | None = Field(
        None, description="per_line: each receipt line taxed and rounded; on_total: each tax computed once on the "
        "total net. Unset: [pricing] tax_method"
    )

    def to_tariff(self, tariff_id: str, currency: str, tax_method: str = "per_line") -> Any:
        from chargepoint.pricing.tariff import Component, PriceElement, Tariff, TaxMethod, TaxRate

        def taxes(items: list[TaxRateSettings]) -> tuple[TaxRate, ...]:
            return tuple(TaxRate(t.name, t.percent, t.stack) for t in items)

        def component(elements: list[tuple[Decimal, PriceConditionSettings]]) -> Component | None:
            if not elements:
                return None
            return Component(tuple(PriceElement(price, cond.to_conditions()) for price, cond in elements))

        return Tariff(
            tariff_id=tariff_id,
            currency=currency,
            energy=component([(e.price_per_kWh, e) for e in self.energy]),
            charging_time=component([(e.per_hour, e) for e in self.charging_time]),
            idle_time=component([(e.per_hour, e) for e in self.idle_time]),
            fixed_fee=component([(e.price, e) for e in self.fixed_fee]),
            idle_grace_s=int(self.idle_grace_min * 60),
            min_cost=self.min_cost,
            max_cost=self.max_cost,
            tax_rates=taxes(self.tax_rates),
            description=tuple(self.description.items()),
            charge_without_energy=self.charge_without_energy,
            idle_before_energy=self.idle_before_energy,
            tax_method=TaxMethod(self.tax_method or tax_method),
        )


class PackageSettings(_Section):
    """A price package: the tariff and limits for a customer group or a set of cards."""

    name: str = Field(..., min_length=1, max_length=40, description="Shown in logs and session records")
    tariff: str = Field(..., description="Name of a tariff in [pricing.tariffs]")
    groups: list[str] = Field(
        default_factory=list, description="Group ids (parentIdTag from the local list or the CSMS) it applies to"
    )
    id_tags: list[str] = Field(
        default_factory=list, description="Card patterns it applies to (shell style: \"04A1*\", \"FLEET-??\")"
    )
    language: str | None = Field(None, description="Display language for these drivers (en, de, fr, nl)")
    max_cost: Decimal | None = Field(None, ge=0, description="Stop a session at this cost, including tax")
    max_energy_kWh: Decimal | None = Field(None, gt=0, description="Stop a session after this much energy")
    max_duration_min: Decimal | None = Field(None, gt=0, description="Stop a session after this long")


class PricingSettings(_Section):
    """Prices: tariffs, price packages per customer group, limits. The CSMS's California Pricing prices win."""

    currency: str = Field("EUR", description="ISO 4217 currency of every price")
    decimals: int = Field(
        2, ge=0, le=6, description="Decimals of every money amount shown, stored and sent; unset: the currency's "
        "minor unit (ISO 4217: EUR 2, JPY 0, KWD 3), never more"
    )
    rounding: Literal["half_up", "half_even", "up", "down"] = Field("half_up", description="Rounding of money")
    time_zone: str = Field("UTC", description="IANA time zone of time-of-day prices, e.g. Europe/Berlin")
    language: Literal["en", "de", "fr", "nl"] = Field("en", description="Default display language")
    default_tariff: str | None = Field(None, description="Tariff for ad hoc and unknown cards; none: unpriced")
    display_interval_s: float = Field(10.0, ge=1, le=600, description="How often the running cost is redrawn")
    receipt_display_s: float = Field(
        30.0, ge=0, le=3600, description="How long the receipt stays on the display before the idle price"
    )
    message_display_s: float = Field(
        10.0, ge=1, le=600, description="How long a short message (card accepted or refused) stays on the display"
    )
    tax_method: Literal["per_line", "on_total"] | None = Field(
        None, description="How taxes are rounded, stated on the receipt. per_line: each line taxed and rounded on "
        "its own; on_total: each tax computed once on the total net and shared over the lines. Unset: on_total "
        "where time_zone is in the EU (VAT on the invoice total), else per_line"
    )
    tariffs: dict[str, TariffSettings] = Field(default_factory=dict, description="Tariffs by name")
    packages: list[PackageSettings] = Field(default_factory=list, description="Price packages, first match wins")

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str) -> str:
        from chargepoint.pricing.currencies import ISO_4217

        if value not in ISO_4217:
            raise ValueError(f"unknown currency {value!r} (expected an ISO 4217 code such as EUR)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _decimals_of_the_currency(cls, data: Any) -> Any:
        from chargepoint.pricing.currencies import minor_units

        if isinstance(data, dict) and data.get("decimals") is None and isinstance(data.get("currency", "EUR"), str):
            data = {**data, "decimals": minor_units(data.get("currency", "EUR"))}
        return data

    @field_validator("time_zone")
    @classmethod
    def _time_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (expected an IANA name such as Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PricingSettings:
        from chargepoint.pricing.currencies import minor_units
        from chargepoint.pricing.tariff import TariffError
        from chargepoint.pricing.validation import validate_tariff

        problems = []
        if self.decimals > minor_units(self.currency):
            problems.append(f"decimals {self.decimals}: {self.currency} has {minor_units(self.currency)} (ISO 4217 "
                            "minor unit); amounts with more decimals cannot be paid")
        for name, settings in self.tariffs.items():
            try:
                validate_tariff(settings.to_tariff(name, self.currency, self.effective_tax_method))
            except TariffError as exc:
                problems.append(f"tariff {name!r}: {exc}")
        if self.default_tariff is not None and self.default_tariff not in self.tariffs:
            problems.append(f"default_tariff {self.default_tariff!r} is not in [pricing.tariffs]")
        for package in self.packages:
            if package.tariff not in self.tariffs:
                problems.append(f"package {package.name!r}: tariff {package.tariff!r} is not in [pricing.tariffs]")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_tax_method(self) -> str:
        """``tax_method``, or where it is unset the method of the charger's country (by its time zone)."""
        from chargepoint.pricing.tariff import default_tax_method

        return self.tax_method or str(default_tax_method(self.time_zone))

    def tariff(self, name: str) -> Any:
        return self.tariffs[name].to_tariff(name, self.currency, self.effective_tax_method)


class QrSettings(_Section):
    """Dynamic QR codes for mobile payment: shown on each free connector while the charger is online."""

    enabled: bool = Field(False, description="Show a payment QR code on free connectors (needs [ocpp])")
    payment_url: str = Field("", description="The operator's payment page (https://); the code adds the charge "
                             "point, connector, nonce, expiry and signature as query parameters")
    key: SecretStr | None = Field(None, description="HMAC-SHA256 key shared with the payment backend (at least 16 "
                                  "characters): signs each code and derives the idTag that starts its session")
    validity_s: int = Field(300, ge=30, le=3600, description="How long one code may be paid for before it is "
                            "replaced")

    @model_validator(mode="after")
    def _complete(self) -> QrSettings:
        if not self.enabled:
            return self
        if not self.payment_url.startswith("https://"):
            raise ValueError("qr.payment_url must be an https:// URL when qr.enabled")
        if self.key is None or len(self.key.get_secret_value()) < 16:
            raise ValueError("qr.key must be at least 16 characters when qr.enabled")
        return self


class CardPaymentSettings(_Section):
    """Ad hoc payment by card at the payment terminal ([hardware.payment]); docs/payments.md."""

    enabled: bool = Field(True, description="Offer card payment on a plugged connector when a terminal is present "
                          "and the charger is not free vend")
    preauthorize_amount: Decimal = Field(Decimal("50.00"), gt=0, description="Amount reserved on the card before "
                                         "the session; the session stops when its cost reaches what was approved")
    card_wait_s: float = Field(120.0, ge=10, le=600, description="How long the terminal waits for a card each time")
    end_of_day_at: time | None = Field(time(3, 0), description="Local time of the daily end-of-day at the terminal "
                                       "(none: never)")


class FraudSettings(_Section):
    """Fraud controls: patterns that suggest abuse, each recorded as a security event (docs/payments.md)."""

    unknown_card_taps_max: int = Field(5, ge=2, le=100, description="Rejected taps on one connector within "
                                       "unknown_card_window_s that lock its reader")
    unknown_card_window_s: float = Field(60.0, gt=0, le=3600, description="Window for unknown_card_taps_max")
    unknown_card_lockout_s: float = Field(60.0, ge=0, le=3600, description="How long a locked reader ignores taps")
    refuse_card_in_use: bool = Field(False, description="Refuse a card that is charging on another connector "
                                     "(a cloned card); always a security event")
    idle_energy_threshold_Wh: int = Field(10, ge=1, description="Energy through the meter with no session that "
                                          "is reported (EnergyWithoutSession)")
    clock_jump_threshold_s: float = Field(120.0, ge=1, description="A wall-clock jump this large is reported "
                                          "(SettingSystemTime)")


class HistorySettings(_Section):
    """The event history that availability and usage reports read (chargepoint report, forecast)."""

    keep_days: int = Field(400, ge=7, le=3660, description="Events older than this are dropped")
    max_events: int = Field(
        1_000_000, ge=10_000, description="At most this many events are kept (the oldest go first)"
    )


class ForecastSettings(_Section):
    """Demand forecast and capacity advice (chargepoint forecast)."""

    country: str = Field(
        "", pattern=r"^([A-Z]{2}(-[A-Z0-9]{1,3})?)?$",
        description="ISO 3166 country (and optional subdivision, e.g. DE-BY) whose public holidays shape the "
        "forecast; empty: none"
    )
    busy_threshold: float = Field(
        0.2, gt=0, lt=1, description="Advise more connectors once a driver arriving in the busiest hour of the week "
        "finds every connector busy with at least this probability"
    )


class MonitoringSettings(_Section):
    """The local dashboard and Prometheus metrics (opt-in): http://<bind>:<port>/ and /metrics."""

    enabled: bool = Field(False, description="Serve the dashboard and /metrics")
    bind: str = Field("127.0.0.1", min_length=1, description="Address to listen on; anything but loopback needs a "
                      "password")
    port: int = Field(8080, ge=1, le=65535, description="TCP port")
    password: SecretStr | None = Field(None, description="HTTP basic-auth password (user 'operator'); required when "
                                       "bind is not a loopback address")

    @model_validator(mode="after")
    def _password_off_loopback(self) -> MonitoringSettings:
        loopback = self.bind in ("localhost", "::1") or self.bind.startswith("127.")
        if self.enabled and not loopback and (self.password is None or len(self.password.get_secret_value()) < 8):
            raise ValueError(f"monitoring.bind = {self.bind!r} is not a loopback address: set monitoring.password "
                             "(at least 8 characters)")
        return self


class UpdateSettings(_Section):
    """Firmware updates from signed releases (UpdateFirmware, SignedUpdateFirmware, chargepoint update): installed
    beside the running firmware, switched to at the next start by the update guard, kept once healthy, rolled back
    otherwise (docs/install.md, "Updates and rollback"). Leave out to keep [ocpp] firmware_install_command."""

    install_root: Path = Field(Path("/opt/chargepoint"), description="Where install.sh put the firmware: venvs/, "
                               ".venv and .venv-previous")
    manufacturer_root_file: Path | None = Field(
        None, description="PEM certificate(s) of the manufacturer's root that issues release signing certificates; "
        "ManufacturerRootCertificates the CSMS installs count too"
    )
    public_key_file: Path | None = Field(
        None, description="PEM public key (ECDSA P-256 or RSA) that signs releases, for releases without a "
        "certificate"
    )
    health_timeout_s: int = Field(
        120, ge=10, le=3600, description="A new firmware must be up with every meter read, no new fault and the "
        "CSMS connected (with [ocpp]) within this many seconds of its start, or the previous one comes back"
    )
    start_attempts: int = Field(
        3, ge=1, le=10, description="Starts a new firmware gets to pass its health check before the update guard "
        "switches back (a firmware that crashes at start never passes)"
    )
    allow_downgrade: bool = Field(
        False, description="Install a release older than the running firmware (an old signed release may have known "
        "flaws: off by default)"
    )


class Config(_Section):
    identity: IdentitySettings = Field(default_factory=lambda: IdentitySettings())
    charger: ChargerSettings = Field(default_factory=lambda: ChargerSettings())
    hardware: HardwareSettings = Field(default_factory=lambda: HardwareSettings())
    simulator: SimulatorSettings = Field(default_factory=lambda: SimulatorSettings())
    storage: StorageSettings = Field(default_factory=lambda: StorageSettings())
    logging: LoggingSettings = Field(default_factory=lambda: LoggingSettings())
    pricing: PricingSettings = Field(default_factory=lambda: PricingSettings())
    ocpp: OcppSettings | None = None
    qr: QrSettings = Field(default_factory=lambda: QrSettings())
    fraud: FraudSettings = Field(default_factory=lambda: FraudSettings())
    history: HistorySettings = Field(default_factory=lambda: HistorySettings())
    forecast: ForecastSettings = Field(default_factory=lambda: ForecastSettings())
    monitoring: MonitoringSettings = Field(default_factory=lambda: MonitoringSettings())
    card_payment: CardPaymentSettings = Field(default_factory=lambda: CardPaymentSettings())
    update: UpdateSettings | None = None

    @model_validator(mode="after")
    def _qr_needs_ocpp(self) -> Config:
        if self.qr.enabled and self.ocpp is None:
            raise ValueError("qr.enabled needs an [ocpp] section: a paid code starts its session by "
                             "RemoteStartTransaction from the CSMS")
        return self

    @model_validator(mode="after")
    def _one_installer(self) -> Config:
        if self.update is not None and self.ocpp is not None and self.ocpp.firmware_install_command is not None:
            raise ValueError("update and ocpp.firmware_install_command both install firmware: keep one")
        if self.update is not None and self.ocpp is None and (
                self.update.manufacturer_root_file is None and self.update.public_key_file is None):
            raise ValueError("update needs manufacturer_root_file or public_key_file to check releases with "
                             "(without [ocpp] no CSMS installs a ManufacturerRootCertificate)")
        return self

    @model_validator(mode="after")
    def _board_cable(self) -> Config:
        board = self.hardware.board
        if self.hardware.backend == "board" and board is not None and board.kind == "openevse" and not (
            self.charger.tethered_cable
        ):
            raise ValueError("an OpenEVSE board has no proximity-pilot input: it needs charger.tethered_cable = true "
                             "(a fixed cable of charger.cable_rating_A)")
        if self.hardware.backend == "rpi" and self.hardware.pp is None and not self.charger.tethered_cable:
            raise ValueError("a socket outlet reads the cable's rating from its PP resistor: wire it and add a "
                             "[hardware.pp] table, or set charger.tethered_cable = true for a fixed cable")
        return self

    @property
    def free_vend(self) -> bool:
        if self.charger.free_vend is not None:
            return self.charger.free_vend
        return self.ocpp is None
