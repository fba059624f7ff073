"""The dashboard: one self-contained HTML page (its style and script inline, nothing from elsewhere: a charger has no
internet), and the Content-Security-Policy that allows exactly that page's own script and style, by their hashes.

The script polls the JSON endpoints and builds the page with DOM calls only (``textContent``, ``setAttribute``): no
value from the charger is ever parsed as HTML. The charts come as SVG drawn by the server
(:mod:`chargepoint.web.svg`, escaped there), parsed as XML and inserted as inline SVG.
"""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { color-scheme: light; --ok: #1d7f3a; --busy: #2f7ebc; --warn: #b7791f; --bad: #b42318; --mute: #6b7280; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.4 system-ui, sans-serif; color: #1f2937; background: #f3f4f6; }
header { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; align-items: baseline; padding: 0.8rem 1.2rem;
         background: #111827; color: #f9fafb; }
header h1 { margin: 0; font-size: 1.2rem; }
header span { color: #d1d5db; }
main { padding: 1rem 1.2rem; display: grid; gap: 1rem; }
section.panel { background: #fff; border-radius: 8px; padding: 0.8rem 1rem; box-shadow: 0 1px 2px #0002; }
h2 { margin: 0 0 0.6rem; font-size: 1.05rem; }
#connectors { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(260px, 1fr)); }
.connector { background: #fff; border-radius: 8px; padding: 0.8rem 1rem; border-left: 6px solid var(--mute);
             box-shadow: 0 1px 2px #0002; }
.connector .status { font-size: 1.6rem; font-weight: 600; }
.connector[data-status="Available"] { border-color: var(--ok); }
.connector[data-status="Charging"] { border-color: var(--busy); }
.connector[data-status="Preparing"], .connector[data-status="SuspendedEV"],
.connector[data-status="SuspendedEVSE"], .connector[data-status="Finishing"],
.connector[data-status="Reserved"] { border-color: var(--warn); }
.connector[data-status="Faulted"], .connector[data-status="Unavailable"] { border-color: var(--bad); }
dl { display: grid; grid-template-columns: auto 1fr; gap: 0.15rem 0.8rem; margin: 0.5rem 0 0; }
dt { color: var(--mute); }
dd { margin: 0; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #e5e7eb; }
th { color: var(--mute); font-weight: 500; }
.empty { color: var(--mute); }
#banner { display: none; padding: 0.5rem 1.2rem; background: var(--bad); color: #fff; }
#banner[data-shown="yes"] { display: block; }
.chart svg { display: block; max-width: 100%; height: auto; }
footer { padding: 0 1.2rem 1rem; color: var(--mute); font-size: 0.85rem; }
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
const DASH = "\\u2013";

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
function text(value) { return value === null || value === undefined || value === "" ? DASH : String(value); }
function num(value, digits, unit) {
  return value === null || value === undefined ? DASH : Number(value).toFixed(digits) + " " + unit;
}
function kwh(wh) { return wh === null || wh === undefined ? DASH : (wh / 1000).toFixed(2) + " kWh"; }
function hours(seconds) {
  if (seconds === null || seconds === undefined) return DASH;
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60);
  return h > 0 ? h + " h " + m + " min" : m + " min";
}
function clock(iso) { return iso ? new Date(iso).toLocaleTimeString() : DASH; }
function stamp(iso) { return iso ? new Date(iso).toLocaleString() : DASH; }

async function getJson(url) {
  const response = await fetch(url, {cache: "no-store", credentials: "same-origin"});
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  return response.json();
}
function problem(message) {
  const banner = $("banner");
  banner.textContent = message || "";
  banner.dataset.shown = message ? "yes" : "no";
}
function table(id, headings, rows, emptyText) {
  const body = rows.map((cells) => el("tr", {}, ...cells.map((cell) => el("td", {}, text(cell)))));
  const head = el("tr", {}, ...headings.map((h) => el("th", {}, h)));
  $(id).replaceChildren(rows.length ? el("table", {}, el("thead", {}, head), el("tbody", {}, ...body))
                                    : el("p", {class: "empty"}, emptyText));
}

const FIELDS = [["offered", "Offered"], ["power", "Power"], ["energy", "Meter"], ["faults", "Faults"],
                ["session", "Session"]];
function connectorCard(c) {
  let card = $("connector-" + c.id);
  if (!card) {
    const list = el("dl", {});
    for (const [key, label] of FIELDS) list.append(el("dt", {}, label), el("dd", {id: key + "-" + c.id}, DASH));
    card = el("article", {class: "connector", id: "connector-" + c.id},
              el("h2", {}, "Connector " + c.id), el("div", {class: "status", id: "status-" + c.id}, DASH), list);
    $("connectors").append(card);
  }
  card.dataset.status = c.status;
  $("status-" + c.id).textContent = c.error_code && c.error_code !== "NoError"
    ? c.status + " (" + c.error_code + ")" : c.status;
  $("offered-" + c.id).textContent = num(c.offered_current_A, 1, "A");
  $("power-" + c.id).textContent = num(c.power_W === null ? null : c.power_W / 1000, 2, "kW");
  $("energy-" + c.id).textContent = kwh(c.meter_energy_Wh);
  $("faults-" + c.id).textContent = c.faults.length ? c.faults.join(", ") : "none";
  const s = c.session;
  $("session-" + c.id).textContent = s
    ? kwh(s.energy_Wh) + " since " + clock(s.started_at) + (s.cost ? ", " + s.cost + " " + text(s.currency) : "")
    : "none";
}

let seen = null;  // the sessions and faults last shown: when they change, their tables are read again soon
async function refreshStatus() {
  const s = await getJson("/api/status");
  for (const c of s.connectors) connectorCard(c);
  const now = JSON.stringify(s.connectors.map((c) => [c.session && c.session.session_id, c.faults]));
  if (seen !== null && now !== seen) {
    setTimeout(() => { refreshSessions().catch(() => {}); refreshFaults().catch(() => {}); }, 1000);
  }
  seen = now;
  $("link").textContent = s.csms_connected ? "CSMS connected" : "CSMS not connected";
  $("since").textContent = "running since " + stamp(s.started_at);
  const storage = s.storage || {};
  $("storage").textContent = "storage " + text(storage.state)
    + (storage.free_bytes === null || storage.free_bytes === undefined
       ? "" : ", " + (storage.free_bytes / 1e9).toFixed(1) + " GB free");
  $("updated").textContent = "updated " + new Date().toLocaleTimeString();
}

async function refreshSessions() {
  const data = await getJson("/api/sessions");
  $("sessions-day").textContent = data.day;
  table("sessions", ["Connector", "Started", "Ended", "Energy", "Payment", "Cost", "Stop reason"],
        data.sessions.map((s) => [s.connector_id, clock(s.started_at), s.stopped_at ? clock(s.stopped_at) : "running",
                                  kwh(s.energy_Wh), s.payment_method, s.cost === null ? null : s.cost + " "
                                  + text(s.currency), s.stop_reason]),
        "No sessions today.");
}

async function refreshReport() {
  const r = await getJson("/api/report");
  const row = (name, f) => [name, f.uptime_percent === null ? null : f.uptime_percent.toFixed(2) + " %",
                            hours(f.outage_s), f.faults, f.mtbf_h === null ? null : f.mtbf_h + " h",
                            f.mttr_min === null ? null : f.mttr_min + " min", f.sessions, kwh(f.energy_Wh)];
  table("availability", ["", "Uptime", "Outage", "Faults", "MTBF", "MTTR", "Sessions", "Energy"],
        [...r.connectors.map((c) => row("Connector " + c.id, c)), row("Charger", r.charger)], "No history yet.");
  $("period").textContent = stamp(r.from) + " to " + stamp(r.to);
}

async function refreshFaults() {
  const f = await getJson("/api/faults");
  const where = (id) => id === 0 ? "charger" : "connector " + id;
  table("faults-active", ["Where", "Fault", "Latched"],
        f.active.map((a) => [where(a.connector_id), a.code, a.latched ? "yes" : "no"]), "No active faults.");
  table("faults-history", ["When", "Where", "Fault", "What", "Source"],
        f.history.slice().reverse().map((h) => [stamp(h.at), where(h.connector_id), h.code, h.action, h.source]),
        "No faults recorded.");
}

async function refreshChart(url, id) {
  const response = await fetch(url, {cache: "no-store", credentials: "same-origin"});
  if (!response.ok) throw new Error(url + ": HTTP " + response.status);
  const doc = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
  if (doc.documentElement.localName !== "svg") throw new Error(url + ": not an SVG image");
  $(id).replaceChildren(document.importNode(doc.documentElement, true));
}

const failing = new Map();
function every(ms, name, work) {
  const run = async () => {
    try { await work(); failing.delete(name); }
    catch (error) { failing.set(name, error.message || String(error)); }
    problem(failing.size ? "Cannot read the charger: " + [...failing.values()].join("; ") : "");
    setTimeout(run, ms);
  };
  run();
}
every(1000, "status", refreshStatus);
every(30000, "sessions", refreshSessions);
every(30000, "faults", refreshFaults);
every(300000, "report", refreshReport);
every(300000, "energy", () => refreshChart("/charts/energy.svg", "chart-energy"));
every(300000, "occupancy", () => refreshChart("/charts/occupancy.svg", "chart-occupancy"));
"""

BODY = """
<header><h1>Charger</h1><span id="link">&ndash;</span><span id="since"></span><span id="storage"></span></header>
<div id="banner" role="alert"></div>
<main>
  <div id="connectors" aria-live="polite"></div>
  <section class="panel"><h2>Today's sessions (<span id="sessions-day"></span>)</h2><div id="sessions"></div></section>
  <section class="panel"><h2>Availability, last 30 days</h2><p id="period" class="empty"></p>
    <div id="availability"></div></section>
  <section class="panel"><h2>Energy per day, last 30 days</h2><div class="chart" id="chart-energy"></div></section>
  <section class="panel"><h2>Occupancy by hour of the week, last 30 days</h2>
    <div class="chart" id="chart-occupancy"></div></section>
  <section class="panel"><h2>Active faults</h2><div id="faults-active"></div>
    <h2>Fault history</h2><div id="faults-history"></div></section>
</main>
<footer><span id="updated"></span></footer>
"""

PAGE = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>Charger dashboard</title><style>{STYLE}</style></head>"
        f"<body>{BODY}<script>{SCRIPT}</script></body></html>\n")


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# Only this page's own script and style run; it reaches nothing but its own server; nothing may frame it.
CONTENT_SECURITY_POLICY = (f"default-src 'none'; script-src {_sha256(SCRIPT)}; style-src {_sha256(STYLE)}; "
                           "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
