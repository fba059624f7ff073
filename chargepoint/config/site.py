"""What a valid file can still get wrong about the site it runs in. Errors, which stop the file from being used:
certificate files that are not there, a payment simulator on a real charger. Warnings, settings that are allowed
but probably not meant: a current above the cable's or the board's rating, a charger that drives simulators, a
password sent in clear.

Each names the file, the key and the reason, as schema errors do. The loader raises the errors with the schema's;
``chargepoint config validate``, ``config set``, ``doctor`` and the daemon at start show the warnings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from chargepoint.config.schema import Config

INSTALLED_CONFIG_DIR: Final = Path("/etc/chargepoint")
DEVICE_TREE_MODEL: Final = Path("/proc/device-tree/model")
TYPE2_MAX_A: Final = 63.0  # IEC 62196-2: Type 2 sockets and cables, three-phase


def machine_model(path: Path = DEVICE_TREE_MODEL) -> str:
    """The board's model as the device tree names it ("Raspberry Pi 4 Model B Rev 1.5"); empty elsewhere."""
    try:
        return path.read_bytes().rstrip(b"\0").decode("utf-8", "replace")
    except OSError:
        return ""


def errors(config: Config, path: Path) -> list[str]:
    """What stops the file from being used: files it names that do not exist (paths already made absolute), a
    simulator standing in for a device of a real charger."""
    problems = []
    if config.ocpp is not None:
        for key in ("ca_file", "client_cert_file", "client_key_file"):
            named = getattr(config.ocpp, key)
            if named is not None and not Path(named).is_file():
                problems.append(f"{path}: ocpp.{key}: {named}: no such file (the TLS connection to the CSMS needs it)")
    if config.update is not None:
        for key in ("manufacturer_root_file", "public_key_file"):
            named = getattr(config.update, key)
            if named is not None and not Path(named).is_file():
                problems.append(f"{path}: update.{key}: {named}: no such file (releases are checked with it)")
    if config.hardware.backend != "sim" and config.hardware.payment.backend == "sim":
        problems.append(f'{path}: hardware.payment.backend: "sim" with real hardware: card payments would go to the '
                        'terminal simulator (set "zvt", "none" or "auto")')
    return problems


def warnings(config: Config, path: Path, model: str | None = None) -> list[str]:
    """Settings that are valid but probably not meant. ``model``: the machine's (``machine_model()`` if None)."""
    found = []
    charger, hardware = config.charger, config.hardware
    if charger.tethered_cable and charger.max_current_A > charger.cable_rating_A:
        found.append(f"{path}: charger.max_current_A: {charger.max_current_A:g} A is above charger.cable_rating_A "
                     f"{charger.cable_rating_A:g} A: the tethered cable limits every offer to "
                     f"{charger.cable_rating_A:g} A")
    if charger.phases == 3 and charger.max_current_A > TYPE2_MAX_A:
        found.append(f"{path}: charger.max_current_A: {charger.max_current_A:g} A on three phases is above the "
                     f"{TYPE2_MAX_A:g} A of Type 2 sockets and cables (IEC 62196-2)")
    board = hardware.board
    if hardware.backend == "board" and board is not None and board.max_current_A is not None and (
            board.max_current_A < charger.max_current_A):
        found.append(f"{path}: charger.max_current_A: {charger.max_current_A:g} A is above "
                     f"hardware.board.max_current_A {board.max_current_A:g} A: the board's relay limits every offer")
    installed = path.resolve().is_relative_to(INSTALLED_CONFIG_DIR)
    model = machine_model() if model is None else model
    if hardware.backend == "sim" and (installed or model.startswith("Raspberry Pi")):
        where = "an installed charger" if installed else model
        found.append(f'{path}: hardware.backend: "sim" on {where}: the charger drives simulators, not its devices '
                     '(set "rpi" or "board"; see docs/install.md)')
    ocpp = config.ocpp
    if ocpp is not None and ocpp.security_profile == 1 and ocpp.csms_url.startswith("ws://"):
        found.append(f"{path}: ocpp.csms_url: security profile 1 over ws:// sends the authorization key in clear "
                     "(profile 2 uses wss://)")
    return found
