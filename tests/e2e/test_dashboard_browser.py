"""The dashboard in a real browser: headless Chromium, driven over the Chrome DevTools Protocol, loads the page the
daemon (``chargepoint run``, simulated hardware, ``[monitoring] enabled``) serves, and shows the connector going from
Available to Charging as the simulated EV plugs in and charges. The page's own script runs under its own
Content-Security-Policy there, so a policy that blocked it, or a script error, fails this test.

Needs ``chromium`` (Debian: ``apt-get install chromium``; ``CHARGEPOINT_CHROMIUM`` names another binary); skipped
without it. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.integration.test_cli import CONFIG as DAEMON_CONFIG
from tests.integration.test_cli import Daemon

STEP_S = 20.0  # the longest any one step may take (a loaded 2-core runner starting a browser)


def find_browser() -> str | None:
    named = os.environ.get("CHARGEPOINT_CHROMIUM")
    if named:
        return shutil.which(named)
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class DevTools:
    """One page target over the Chrome DevTools Protocol: commands by id, events kept for the test to look at."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.events: list[dict[str, Any]] = []
        self._id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        sent = self._id
        await self.ws.send(json.dumps({"id": sent, "method": method, "params": params}))
        async with asyncio.timeout(STEP_S):
            while True:
                message = json.loads(await self.ws.recv())
                if message.get("id") != sent:
                    self.events.append(message)
                    continue
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def evaluate(self, expression: str) -> Any:
        reply = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise AssertionError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for_text(self, element_id: str, wanted: str, timeout_s: float = STEP_S) -> str:
        deadline = time.monotonic() + timeout_s
        shown = None
        while time.monotonic() < deadline:
            shown = await self.evaluate(f"document.getElementById({json.dumps(element_id)})?.textContent ?? null")
            if shown == wanted:
                return str(shown)
            await asyncio.sleep(0.1)
        raise AssertionError(f"#{element_id} showed {shown!r}, not {wanted!r}, within {timeout_s} s")


@asynccontextmanager
async def headless_browser(binary: str, profile: Path) -> AsyncIterator[DevTools]:
    args = [binary, "--headless", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1", f"--user-data-dir={profile}", "--window-size=1200,1400",
            "about:blank"]
    if os.geteuid() == 0:
        args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    log_path = profile.parent / "chromium.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(*args, stdin=subprocess.DEVNULL, stdout=log,
                                                       stderr=subprocess.STDOUT)
    try:
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + STEP_S
        while not (active.exists() and active.read_text().count("\n") >= 1):
            assert process.returncode is None, f"chromium exited {process.returncode}: {log_path.read_text()}"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            await asyncio.sleep(0.1)
        port = int(active.read_text().split("\n")[0])
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(STEP_S):
                while True:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as response:
                        pages = [t for t in await response.json() if t.get("type") == "page"]
                    if pages:
                        break
                    await asyncio.sleep(0.1)
        async with connect(pages[0]["webSocketDebuggerUrl"], max_size=64 * 2**20, open_timeout=STEP_S) as ws:
            devtools = DevTools(ws)
            await devtools.call("Runtime.enable")
            await devtools.call("Log.enable")
            await devtools.call("Page.enable")
            yield devtools
    finally:
        if process.returncode is None:
            process.terminate()  # Chromium ends its own helper processes on SIGTERM
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await asyncio.wait_for(process.wait(), 10)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


async def test_the_dashboard_shows_the_connector_charging_in_a_real_browser(tmp_path: Path) -> None:
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium: apt-get install chromium")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(DAEMON_CONFIG.format(dir=tmp_path) + f"[monitoring]\nenabled = true\nport = {port}\n")
    daemon = Daemon(config)
    await asyncio.to_thread(daemon.start)
    try:
        deadline = time.monotonic() + STEP_S
        while f"on http://127.0.0.1:{port}/" not in daemon.log():
            assert time.monotonic() < deadline, daemon.log()
            await asyncio.sleep(0.05)
        profile = tmp_path / "profile"
        profile.mkdir()
        async with headless_browser(browser, profile) as page:
            await page.call("Page.navigate", url=f"http://127.0.0.1:{port}/")
            await page.wait_for_text("status-1", "Available")

            assert (await asyncio.to_thread(daemon.sim, "plug")).returncode == 0
            assert (await asyncio.to_thread(daemon.sim, "charge")).returncode == 0
            await page.wait_for_text("status-1", "Charging")
            await page.wait_for_text("offered-1", "32.0 A")
            # A new session reads today's sessions again (soon, not at the next half-minute poll).
            deadline = time.monotonic() + STEP_S
            while await page.evaluate("document.querySelectorAll('#sessions tbody tr').length") != 1:
                assert time.monotonic() < deadline, "the running session did not appear among today's sessions"
                await asyncio.sleep(0.1)
            # The rest of the page came too: today's session, the charts drawn as inline SVG.
            await page.wait_for_text("sessions-day", time.strftime("%Y-%m-%d", time.gmtime()))
            deadline = time.monotonic() + STEP_S
            while await page.evaluate("document.querySelectorAll('#chart-energy svg rect title').length") != 30:
                assert time.monotonic() < deadline, "the energy chart did not appear"
                await asyncio.sleep(0.1)
            assert await page.evaluate("document.querySelectorAll('#chart-occupancy svg rect title').length") == 168
            assert await page.evaluate("document.getElementById('banner').dataset.shown") != "yes"

            shot = base64.b64decode((await page.call("Page.captureScreenshot", format="png"))["data"])
            path = tmp_path / "dashboard.png"
            path.write_bytes(shot)
            width, height = png_size(path.read_bytes())
            assert width > 0 and height > 0 and path.stat().st_size > 1000

            errors = [e for e in page.events if e.get("method") == "Runtime.exceptionThrown"
                      or (e.get("method") == "Log.entryAdded"
                          and e["params"]["entry"].get("source") in ("security", "javascript"))]
            assert not errors, errors  # no script error, no Content-Security-Policy violation
    finally:
        with contextlib.suppress(AssertionError):
            await asyncio.to_thread(daemon.stop)
