"""Read, validate and show the TOML configuration. Every problem names the file, the key and the reason."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from chargepoint.config import site
from chargepoint.config.schema import Config
from chargepoint.errors import ConfigError

REDACTED = "********"
SECRET_KEYS = frozenset({"authorization_key"})


def _key_of(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts) or "(top level)"


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; see config/example.toml for every key)"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    message = message.removeprefix("Value error, ")
    value = error.get("input")
    # A whole table as "input" would echo every value in it, secrets included: name only scalar inputs.
    if "input" in error and not isinstance(value, dict | list) and kind not in ("model_type", "dict_type"):
        secret = any(str(part) in SECRET_KEYS for part in error["loc"])
        message += f" (got {REDACTED if secret else repr(value)})"
    return message


def parse_config(data: dict[str, Any], path: Path) -> Config:
    """Validate already-parsed TOML ``data`` read from ``path`` (used for messages and relative paths)."""
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [f"{path}: {_key_of(err['loc'])}: {_reason(err)}" for err in exc.errors()]
        raise ConfigError(str(path), problems) from None
    config = _resolve_paths(config, path.parent)
    problems = site.errors(config, path)
    if problems:
        raise ConfigError(str(path), problems)
    return config


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(str(path), [f"{path}: file not found"]) from None
    except OSError as exc:
        raise ConfigError(str(path), [f"{path}: cannot read: {exc.strerror}"]) from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(str(path), [f"{path}: not UTF-8 text"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [f"{path}: invalid TOML: {exc}"]) from None


def load_config(path: Path) -> Config:
    return parse_config(_read_toml(path), path)


def load_config_for_service(path: Path) -> tuple[Config, list[str]]:
    """The daemon's load. Problems confined to ``[pricing]`` must not take a charger out of service: the rest of
    the file is used and the problems are returned, so the runtime keeps the last valid prices and says why.
    Any other problem raises ``ConfigError`` as ``load_config`` does."""
    data = _read_toml(path)
    try:
        return parse_config(data, path), []
    except ConfigError as exc:
        if not exc.problems or not all(p.startswith(f"{path}: pricing") for p in exc.problems):
            raise
        data.pop("pricing", None)
        return parse_config(data, path), exc.problems


def _resolve_paths(config: Config, base: Path) -> Config:
    """Relative paths in the file are relative to the file, not to wherever the daemon was started."""
    storage = config.storage
    updates: dict[str, Path | None] = {"dir": _absolute(storage.dir, base)}
    for name in ("database", "control_socket"):
        value = getattr(storage, name)
        updates[name] = None if value is None else _absolute(value, base)
    new_storage = storage.model_copy(update=updates)
    new_config = config.model_copy(update={"storage": new_storage})
    if config.ocpp is not None:
        ocpp_updates = {
            name: _absolute(getattr(config.ocpp, name), base)
            for name in ("ca_file", "client_cert_file", "client_key_file")
            if getattr(config.ocpp, name) is not None
        }
        new_config = new_config.model_copy(update={"ocpp": config.ocpp.model_copy(update=ocpp_updates)})
    if config.update is not None:
        update_paths = {name: _absolute(getattr(config.update, name), base)
                        for name in ("install_root", "manufacturer_root_file", "public_key_file")
                        if getattr(config.update, name) is not None}
        new_config = new_config.model_copy(update={"update": config.update.model_copy(update=update_paths)})
    return new_config


def _absolute(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else (base / path).resolve()


def redacted(config: Config) -> dict[str, Any]:
    """The effective configuration as plain data, with every secret replaced."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return REDACTED
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        if isinstance(value, Path):
            return str(value)
        return value

    data = walk(config.model_dump(mode="python"))
    assert isinstance(data, dict)
    data["effective"] = {"free_vend": config.free_vend}
    return data


def redacted_json(config: Config) -> str:
    return json.dumps(redacted(config), indent=2, sort_keys=False, default=str)
