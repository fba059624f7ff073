"""Configuration keys as dotted names (``hardware.meter.transport``): what the schema knows, the effective value of
each and where it came from (the default, the file, or the CSMS, whose ChangeConfiguration values are kept in the
store and win over the file's), and what a running daemon can take without a restart.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from chargepoint.config.schema import Config

REDACTED: Final = "********"

# File keys whose OCPP configuration key the CSMS may change (ChangeConfiguration): the value it set is kept in the
# store (under CSMS_KV_PREFIX + the OCPP key) and wins over the file's after a restart.
CSMS_KEYS: Final[Mapping[str, str]] = {
    "charger.connection_timeout_s": "ConnectionTimeOut",
    "ocpp.heartbeat_interval_s": "HeartbeatInterval",
    "ocpp.meter_value_sample_interval_s": "MeterValueSampleInterval",
    "ocpp.meter_values_sampled_data": "MeterValuesSampledData",
    "ocpp.cost_and_price": "CustomDisplayCostAndPrice",
    "ocpp.security_profile": "SecurityProfile",
    "ocpp.authorization_key": "AuthorizationKey",
    "pricing.decimals": "NumberOfDecimalsForCostValues",
    "pricing.language": "Language",
}
CSMS_KV_PREFIX: Final = "ocpp.key."

# What a running daemon applies on SIGHUP (chargepoint reload) without ending a session; everything else needs a
# restart. A key here, or a key under a section here (a name ending in "."). Prices apply to sessions that start
# afterwards; a running session keeps the tariff it started with.
LIVE_KEYS: Final = ("logging.level", "charger.allowed_id_tags", "history.", "forecast.", "fraud.", "pricing.")
RESTART_KEYS: Final = ("pricing.currency", "pricing.decimals")  # under a live section, yet not live

Source = Literal["default", "file", "csms"]


class UnknownKey(ValueError):
    """A dotted name that the schema does not have; the message says what is there."""


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> X."""
    if get_origin(annotation) in (Union, types.UnionType):
        inner = [a for a in get_args(annotation) if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return annotation


def field_type(key: str) -> Any:
    """The schema's type of ``key`` (a leaf, not a table); ``UnknownKey`` naming the nearest known table."""
    model: type[BaseModel] = Config
    parts = key.split(".")
    named = False  # the part is a name of the table's own choosing ([pricing.tariffs.<name>])
    for n, part in enumerate(parts):
        fields = model.model_fields
        last = n == len(parts) - 1
        if named:
            named = False
            if last:
                raise UnknownKey(f"{key}: a table, not a key (its keys: {', '.join(sorted(fields))})")
            continue
        if part not in fields:
            where = ".".join(parts[:n]) or "the top level"
            raise UnknownKey(f"{key}: no such key (in {where}: {', '.join(sorted(fields))})")
        annotation = _unwrap(fields[part].annotation)
        if get_origin(annotation) is dict and isinstance(get_args(annotation)[1], type) and issubclass(
                get_args(annotation)[1], BaseModel):
            if last:
                return annotation
            model, named = get_args(annotation)[1], True
            continue
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if last:
                raise UnknownKey(f"{key}: a table, not a key (its keys: {', '.join(sorted(annotation.model_fields))})")
            model = annotation
            continue
        if not last:
            raise UnknownKey(f"{key}: {'.'.join(parts[:n + 1])} is a key, not a table")
        return annotation
    raise UnknownKey(f"{key}: no such key")


def is_text(annotation: Any) -> bool:
    """Whether a value of this type is written as text (a command-line value needs no TOML quotes)."""
    if annotation in (str, Path, SecretStr):
        return True
    if get_origin(annotation) is Literal:
        return all(isinstance(a, str) for a in get_args(annotation))
    return False


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys of the leaves (lists, tables of arrays included, are leaves)."""
    flat: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}{name}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, key + "."))
        else:
            flat[key] = value
    return flat


def plain(config: Config, reveal: bool = False) -> dict[str, Any]:
    """The configuration as JSON-like data: secrets masked (or shown), paths as text."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value() if reveal else REDACTED
        if isinstance(value, Mapping):
            return {k: walk(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, int | float | str | bool) or value is None:
            return value
        return str(value)  # Decimal, time ...

    result = walk(config.model_dump(mode="python"))
    assert isinstance(result, dict)
    return result


def effective(config: Config, file_data: Mapping[str, Any], csms: Mapping[str, str]) -> list[tuple[str, Any, Source]]:
    """Every key of the effective configuration with its value and source, in the schema's order. ``csms``: the
    OCPP keys the CSMS set (as the store keeps them)."""
    in_file = set(flatten(file_data))
    rows: list[tuple[str, Any, Source]] = []
    for key, value in flatten(plain(config)).items():
        ocpp_key = CSMS_KEYS.get(key)
        if ocpp_key is not None and ocpp_key in csms:
            shown = REDACTED if key == "ocpp.authorization_key" else csms[ocpp_key]
            rows.append((key, shown, "csms"))
        else:
            rows.append((key, value, "file" if key in in_file or _under_list_in(key, in_file) else "default"))
    return rows


def _under_list_in(key: str, in_file: set[str]) -> bool:
    return any(key.startswith(f"{k}.") for k in in_file)


def changed_keys(old: Config, new: Config) -> list[str]:
    """The keys whose values differ, secrets compared as they are."""
    a, b = flatten(plain(old, reveal=True)), flatten(plain(new, reveal=True))
    return sorted(k for k in a.keys() | b.keys() if a.get(k, _MISSING) != b.get(k, _MISSING))


_MISSING = object()


def is_live(key: str) -> bool:
    if any(key == k or key.startswith(k + ".") for k in RESTART_KEYS):
        return False
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in LIVE_KEYS)


def split_live(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """(applied without a restart, needing one)."""
    keys = list(keys)
    return [k for k in keys if is_live(k)], [k for k in keys if not is_live(k)]


def with_live_keys(running: Config, new: Config, live: Iterable[str]) -> Config:
    """``running`` with the live keys taken from ``new``: what the daemon runs with after a reload."""
    data = running.model_dump(mode="python")
    source = new.model_dump(mode="python")
    for key in live:
        *tables, name = key.split(".")
        into, src = data, source
        for table in tables:
            if not isinstance(into.get(table), dict):
                into[table] = {}
            into = into[table]
            src = src.get(table) or {}
        if name in src:
            into[name] = src[name]
        else:
            into.pop(name, None)
    return Config.model_validate(data)

