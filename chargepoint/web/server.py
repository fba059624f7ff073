"""The local dashboard and ``/metrics``: an aiohttp server on ``[monitoring] bind:port``, started by the daemon only
when ``[monitoring] enabled`` (see docs/deployment.md, "Dashboard and metrics").

It only reads: the charger's status and records reach it as callables the composition root hands over
(:class:`ChargerReadings`), so this adapter never touches the runtime. Its requests run in aiohttp's own tasks, not in
the charger's task group, and a handler that fails becomes a 500 for that request and a log line: nothing here can
stop the safety path. A port that cannot be bound is logged and the charger runs on without the dashboard.

Routes: ``/`` (the page), ``/metrics``, ``/api/status``, ``/api/sessions``, ``/api/report``, ``/api/faults``,
``/charts/energy.svg``, ``/charts/occupancy.svg``.

Access: with ``password`` set, every route asks for HTTP basic auth (user ``operator``, compared in constant time).
Without one (the schema allows that on loopback only), requests must name a loopback host or the bind address in
their ``Host`` header, so a web page elsewhere cannot read the dashboard through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from chargepoint.config.schema import MonitoringSettings
from chargepoint.web import metrics, svg
from chargepoint.web.page import CONTENT_SECURITY_POLICY, PAGE
from chargepoint.web.report import ReportReader, ReportSettings

log = logging.getLogger(__name__)

USER = "operator"
REALM = 'Basic realm="chargepoint", charset="UTF-8"'
READ_TIMEOUT_S = 5.0  # what a request waits for the store at most
SHUTDOWN_S = 1.0  # requests still running when the daemon stops get this long, then are cancelled
RECENT_SESSIONS = 100  # today's sessions are found among the newest ones
SESSION_FIELDS = ("session_id", "connector_id", "started_at", "stopped_at", "energy_Wh", "duration_s",
                  "stop_reason", "payment_method", "cost", "currency")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class ChargerReadings:
    """What the dashboard reads of the running charger (the composition root takes them from the app and store)."""

    status: Callable[[], dict[str, Any]]  # as ``chargepoint status --json`` shows it
    recent_sessions: Callable[[int], Awaitable[list[dict[str, Any]]]]  # newest first, as ``chargepoint sessions``
    fault_listing: Callable[[int], Awaitable[dict[str, Any]]]  # as ``chargepoint fault list --json``
    outbox_len: Callable[[], Awaitable[int]]
    started_at: datetime
    version: str


def credentials_match(header: str | None, password: str) -> bool:
    """Whether an ``Authorization`` header carries user ``operator`` and ``password``; both compared in constant time
    (as digests, so not even the length of the password shows in the timing)."""
    scheme, _, token = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, colon, given = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError:  # not base64, not UTF-8
        return False

    def same(a: str, b: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(a.encode()).digest(), hashlib.sha256(b.encode()).digest())

    return bool(colon) & same(user, USER) & same(given, password)


def host_allowed(host: str, bind: str) -> bool:
    """Whether a ``Host`` header (with or without port) names a loopback address, ``localhost`` or ``bind``."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1:name.find("]")] if "]" in name else name
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    if name in ("localhost", bind.lower()):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback  # an address, not a name like 127.0.0.1.attacker.example
    except ValueError:
        return False


class MonitoringServer:
    def __init__(self, settings: MonitoringSettings, readings: ChargerReadings, report: ReportSettings) -> None:
        self.settings = settings
        self.readings = readings
        self.report_settings = report
        self._password = None if settings.password is None else settings.password.get_secret_value()
        self._reports: ReportReader | None = None
        self._runner: web.AppRunner | None = None

    # ----------------------------------------------------------------- lifecycle

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """(host, port) of every socket listened on; empty when not running."""
        if self._runner is None:
            return []
        return [(str(a[0]), int(a[1])) for a in self._runner.addresses]

    @property
    def url(self) -> str | None:
        if not self.addresses:
            return None
        host, port = self.addresses[0]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    async def start(self) -> bool:
        """Listen; False (and a log line) if the address cannot be bound: the charger goes on without a dashboard."""
        self._reports = ReportReader(self.report_settings)
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.settings.bind, self.settings.port).start()
        except OSError as exc:
            log.error("monitoring: cannot listen on %s:%d (%s); the dashboard and /metrics are off, the charger runs "
                      "on", self.settings.bind, self.settings.port, exc.strerror or exc)
            await runner.cleanup()
            self._reports.close()
            self._reports = None
            return False
        self._runner = runner
        log.info("monitoring: dashboard and /metrics on %s (%s)", self.url,
                 "basic auth, user operator" if self._password else "no password: loopback only")
        return True

    async def stop(self) -> None:
        """Stop listening, end the requests still running (after at most ``SHUTDOWN_S``) and the report thread."""
        if self._reports is not None:
            self._reports.close()  # a report still computing is interrupted, its request gets a 500
            self._reports = None
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
            log.info("monitoring: stopped")

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._access])
        app.on_response_prepare.append(_security_headers)
        app.router.add_get("/", self._page)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/status", self._status)
        app.router.add_get("/api/sessions", self._sessions)
        app.router.add_get("/api/report", self._report)
        app.router.add_get("/api/faults", self._faults)
        app.router.add_get("/charts/energy.svg", self._energy_chart)
        app.router.add_get("/charts/occupancy.svg", self._occupancy_chart)
        return app

    # ----------------------------------------------------------------- middlewares

    @web.middleware
    async def _errors(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        """A failing handler is that request's 500 and a log line, never more."""
        try:
            return await handler(request)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("monitoring: %s %s failed", request.method, request.path)
            return web.Response(status=500, text="internal error (logged by the charger)\n")

    @web.middleware
    async def _access(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if self._password is not None:
            if not credentials_match(request.headers.get("Authorization"), self._password):
                return web.Response(status=401, text="the dashboard needs the operator's password\n",
                                    headers={"WWW-Authenticate": REALM})
        elif not host_allowed(request.host, self.settings.bind):
            return web.Response(status=403, text="open the dashboard as http://localhost:PORT/ (or set "
                                "[monitoring] password to reach it by another name)\n")
        return await handler(request)

    # ----------------------------------------------------------------- routes

    async def _page(self, _request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    async def _metrics(self, _request: web.Request) -> web.Response:
        outbox: int | None = None
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                outbox = await self.readings.outbox_len()
        except (TimeoutError, OSError) as exc:  # a busy or damaged store: the rest is still worth scraping
            log.warning("monitoring: outbox depth unknown (%r); left out of /metrics", exc)
        uptime_s = (datetime.now(UTC) - self.readings.started_at).total_seconds()
        body = metrics.render(metrics.Snapshot(self.readings.status(), uptime_s, outbox, self.readings.version))
        return web.Response(body=body, headers={"Content-Type": metrics.CONTENT_TYPE})

    async def _status(self, _request: web.Request) -> web.Response:
        return _json(self.readings.status())

    async def _sessions(self, _request: web.Request) -> web.Response:
        zone = self.report_settings.zone
        today = datetime.now(zone).date()
        async with asyncio.timeout(READ_TIMEOUT_S):
            rows = await self.readings.recent_sessions(RECENT_SESSIONS)
        todays = [{name: row.get(name) for name in SESSION_FIELDS} for row in rows
                  if row.get("stopped_at") is None or datetime.fromisoformat(row["started_at"]).astimezone(
                      zone).date() == today]
        return _json({"day": today.isoformat(), "sessions": todays})

    async def _faults(self, _request: web.Request) -> web.Response:
        async with asyncio.timeout(READ_TIMEOUT_S):
            return _json(await self.readings.fault_listing(100))

    async def _period(self) -> dict[str, Any]:
        if self._reports is None:
            raise web.HTTPServiceUnavailable(text="the dashboard is stopping\n")
        return await self._reports.report()

    async def _report(self, _request: web.Request) -> web.Response:
        return _json(await self._period())

    async def _energy_chart(self, _request: web.Request) -> web.Response:
        days = [(date.fromisoformat(d["date"]), int(d["energy_Wh"])) for d in (await self._period())["usage"]["days"]]
        return _svg(svg.energy_bars(days[-30:]))

    async def _occupancy_chart(self, _request: web.Request) -> web.Response:
        return _svg(svg.occupancy_heatmap((await self._period())["usage"]["hour_of_week_occupancy"]))


async def _security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"


def _json(data: Mapping[str, Any]) -> web.Response:
    return web.Response(text=json.dumps(data), content_type="application/json")


def _svg(markup: str) -> web.Response:
    return web.Response(text=markup, content_type="image/svg+xml")

