"""Build the charger's application from its config, devices and store, with its adapters attached.

The OCPP adapter is imported only when the config has an ``[ocpp]`` section: the protocol library and its schema
validation cost a standalone charger memory it would never use. Likewise the dashboard (aiohttp, prometheus-client)
only with ``[monitoring] enabled``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from chargepoint import __version__
from chargepoint.composition.devices import station_of
from chargepoint.config.schema import Config
from chargepoint.runtime.app import ChargerApp
from chargepoint.store import Store
from hal.hardware import Hardware

if TYPE_CHECKING:
    from chargepoint.ocpp.file_transfer import FirmwareInstaller
    from chargepoint.web.server import MonitoringServer


def firmware_installer(config: Config, hardware: Hardware | None = None,
                       faults: Callable[[], Mapping[str, Sequence[str]]] | None = None) -> FirmwareInstaller:
    """``[update]``: signed releases with a trial and rollback (on simulated hardware too; ``faults`` gives each
    connector's faults, which a new firmware must not add to). Else sim: the simulated installer (failing while the
    simulators' "install-failure" fault is on); real hardware: ``[ocpp] firmware_install_command``, or none."""
    from chargepoint.ocpp.file_transfer import CommandInstaller, SimulatedInstaller
    from chargepoint.ocpp.v16.firmware import NoInstaller

    if config.update is not None:
        from chargepoint.composition.update_trial import release_installer

        return release_installer(config, faults)
    if config.hardware.backend == "sim":
        station = None if hardware is None else station_of(hardware)
        return SimulatedInstaller(failing=None if station is None else station.install_fails)
    command = None if config.ocpp is None else config.ocpp.firmware_install_command
    return NoInstaller() if command is None else CommandInstaller(command)


def build_charger(config: Config, hardware: Hardware, store: Store,
                  pricing_problems: list[str] | None = None) -> ChargerApp:
    """The charger on ``hardware``; with an ``[ocpp]`` section, connected to its CSMS by the OCPP 1.6J adapter."""
    app = ChargerApp(config, hardware, store, pricing_problems=pricing_problems)
    if config.ocpp is not None:
        from chargepoint.ocpp.v16.client import OcppClient

        app.attach_csms(OcppClient(config, store, app, firmware_installer(config, hardware, _faults_of(app))))
    return app


def _faults_of(app: ChargerApp) -> Callable[[], Mapping[str, Sequence[str]]]:
    """Each connector's active faults, by connector id: what a new firmware on trial must not add to."""

    def faults() -> Mapping[str, Sequence[str]]:
        return {str(c["id"]): list(c.get("faults") or []) for c in app.status()["connectors"]}

    return faults


def build_monitoring(config: Config, app: ChargerApp, store: Store) -> MonitoringServer | None:
    """The local dashboard and /metrics (``[monitoring]``), reading ``app`` and ``store``; None unless enabled.

    Built here, not started: the daemon starts it once the charger is ready and stops it with the charger."""
    if not config.monitoring.enabled:
        return None
    from zoneinfo import ZoneInfo

    from chargepoint.web.report import ReportSettings
    from chargepoint.web.server import ChargerReadings, MonitoringServer

    readings = ChargerReadings(
        status=app.status, recent_sessions=app.recent_sessions, fault_listing=app.fault_listing,
        outbox_len=store.outbox_len, started_at=app.started_at,
        version=config.identity.firmware_version or __version__)
    report = ReportSettings(config.storage.database_path, config.charger.connectors,
                            ZoneInfo(config.pricing.time_zone), config.pricing.currency)
    return MonitoringServer(config.monitoring, readings, report)
