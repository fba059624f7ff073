"""Build the charger's application from its config, devices and store, with its adapters attached."""

from __future__ import annotations

from chargepoint.config.schema import Config
from chargepoint.runtime.app import ChargerApp
from chargepoint.store import Store
from hal.hardware import Hardware


def build_charger(config: Config, hardware: Hardware, store: Store,
                  pricing_problems: list[str] | None = None) -> ChargerApp:
    return ChargerApp(config, hardware, store, pricing_problems=pricing_problems)
