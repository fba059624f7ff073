"""The effective configuration at start-up as one log line, secrets masked.

The whole configuration is a few hundred keys (``chargepoint config show`` prints them); the log gets what a reader
of the journal needs: the main facts, then every key whose value is not its default, as ``section.key=value``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from chargepoint.config.loader import REDACTED
from chargepoint.config.schema import Config

VALUE_MAX_CHARS = 200
LINE_MAX_CHARS = 4000


def config_summary(config: Config) -> str:
    """``configuration: hardware sim, 1 connector(s), ...; not at their defaults: storage.dir=... (every key: ...)``"""
    ocpp = config.ocpp
    facts = [
        f"hardware {config.hardware.backend}",
        f"{config.charger.connectors} connector(s)",
        "standalone" if ocpp is None else
        f"OCPP {ocpp.csms_url} as {ocpp.charge_point_id} (security profile {ocpp.security_profile})",
        f"free vend {'on' if config.free_vend else 'off'}",
        f"storage {config.storage.dir}",
        f"log level {config.logging.level}",
    ]
    changed = [f"{key}={_text(value)}"
               for key, value in _flatten(config.model_dump(mode="python", exclude_defaults=True))]
    line = "configuration: " + ", ".join(facts)
    tail = " (every key: chargepoint config show)"
    if not changed:
        return line + "; every other key at its default" + tail
    line += "; not at their defaults:"
    room = LINE_MAX_CHARS - len(tail) - len(f" ... and {len(changed)} more")
    for n, item in enumerate(changed):
        if len(line) + 1 + len(item) > room:
            return f"{line} ... and {len(changed) - n} more{tail}"
        line += f" {item}"
    return line + tail


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            items += _flatten(value, f"{name}.")
        else:
            items.append((name, value))
    return items


def _text(value: Any) -> str:
    def plain(item: Any) -> Any:
        if isinstance(item, SecretStr):
            return REDACTED
        if isinstance(item, dict):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        if isinstance(item, Path):
            return str(item)
        return item

    shown = plain(value)
    text = shown if isinstance(shown, str) else json.dumps(shown, default=str, ensure_ascii=False)
    text = " ".join(text.split())  # one line, whatever a value holds
    return text if len(text) <= VALUE_MAX_CHARS else text[:VALUE_MAX_CHARS] + "..."
