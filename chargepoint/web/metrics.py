"""``/metrics``: the charger's state in the Prometheus text format.

Every scrape renders a snapshot (the status ``chargepoint status --json`` shows, and a few charger figures) on a
registry made for it alone, never the process-wide default one: nothing is kept between scrapes, so what is exported is
always what the charger says now, and nothing else in the process can add metrics to it.

Names follow Prometheus' conventions: the ``chargepoint_`` prefix, base units in the name, ``_total`` for the meter's
counter, ``_info`` for the build.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from chargepoint.core.commands import ConnectorStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = tuple(str(s) for s in ConnectorStatus)


@dataclass(frozen=True, slots=True)
class Snapshot:
    status: Mapping[str, Any]  # as ChargerApp.status() gives it
    uptime_s: float
    outbox_messages: int | None  # None: the store could not say in time (the metric is left out)
    version: str


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        s = self.snapshot
        per = ["connector"]
        status = GaugeMetricFamily("chargepoint_connector_status",
                                   "1 for the connector's current OCPP status, 0 for the others",
                                   labels=["connector", "status"])
        offered = GaugeMetricFamily("chargepoint_connector_offered_current_amperes",
                                    "Current offered to the EV on the control pilot", labels=per)
        power = GaugeMetricFamily("chargepoint_connector_power_watts", "Active power measured by the meter",
                                  labels=per)
        energy = CounterMetricFamily("chargepoint_connector_meter_energy_watt_hours",
                                     "The meter's imported energy register", labels=per)
        faults = GaugeMetricFamily("chargepoint_connector_active_faults", "Faults active on the connector",
                                   labels=per)
        session = GaugeMetricFamily("chargepoint_connector_session_active", "1 while a session runs", labels=per)
        for c in s.status.get("connectors", []):
            connector = str(c["id"])
            current = str(c["status"])
            for name in (*STATUSES, *(() if current in STATUSES else (current,))):
                status.add_metric([connector, name], 1.0 if name == current else 0.0)
            offered.add_metric([connector], float(c["offered_current_A"]))
            if c.get("power_W") is not None:
                power.add_metric([connector], float(c["power_W"]))
            if c.get("meter_energy_Wh") is not None:
                energy.add_metric([connector], float(c["meter_energy_Wh"]))
            faults.add_metric([connector], float(len(c.get("faults") or ())))
            session.add_metric([connector], 0.0 if c.get("session") is None else 1.0)
        yield from (status, offered, power, energy, faults, session)
        yield GaugeMetricFamily("chargepoint_uptime_seconds", "Seconds since the charger's firmware started",
                                value=max(0.0, s.uptime_s))
        yield GaugeMetricFamily("chargepoint_csms_link_up", "1 while the link to the CSMS is up (0 without a CSMS)",
                                value=1.0 if s.status.get("csms_connected") else 0.0)
        if s.outbox_messages is not None:
            yield GaugeMetricFamily("chargepoint_outbox_messages",
                                    "Transaction messages waiting to be delivered to the CSMS",
                                    value=float(s.outbox_messages))
        free = (s.status.get("storage") or {}).get("free_bytes")
        if free is not None:
            yield GaugeMetricFamily("chargepoint_storage_free_bytes", "Free space on the database's file system",
                                    value=float(free))
        yield InfoMetricFamily("chargepoint_build", "The firmware's version", value={"version": s.version})


def render(snapshot: Snapshot) -> bytes:
    """The snapshot in the Prometheus text exposition format (0.0.4)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
