"""Charts as inline SVG for the HTML report: daily bars, the hour-of-week heatmap, the availability timeline, and the
forecast with its error band.

Each function returns one well-formed ``<svg>`` element (XML: it parses with ``xml.etree``), sized by its
``viewBox`` and scaling to the page's width, with no script, no external reference and no font file; every text from
the data is escaped. Values show on hover (a ``<title>`` per bar or cell), so the file needs no JavaScript.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from chargepoint.cli.charts_data import EXCLUDED, NO_DATA, OUTAGE, UP, WEEKDAYS, Timeline

SVG_NS = "http://www.w3.org/2000/svg"
WIDTH = 720
BAR_COLOUR = "#2f6f9f"
STATE_COLOURS = {UP: "#3a9a4a", OUTAGE: "#d0342c", EXCLUDED: "#a8a8a8", NO_DATA: "#eeeeee"}
STATE_NAMES = {UP: "up", OUTAGE: "outage", EXCLUDED: "outage not counted", NO_DATA: "not installed"}
MAX_X_LABELS = 8


def esc(text: object) -> str:
    """Text for an XML (or HTML) element or attribute."""
    return html.escape(str(text), quote=True)


def _n(x: float) -> str:
    """A coordinate, short: 2 decimals at most, no trailing zeros."""
    text = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _svg(width: float, height: float, title: str, body: Sequence[str]) -> str:
    return (f'<svg xmlns="{SVG_NS}" viewBox="0 0 {_n(width)} {_n(height)}" width="100%" role="img" '
            f'style="max-width:{_n(width)}px" font-family="sans-serif" font-size="11">'
            f"<title>{esc(title)}</title>"
            f'<text x="{_n(width / 2)}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{esc(title)}'
            "</text>" + "".join(body) + "</svg>")


def _label_indices(count: int) -> list[int]:
    if count <= 0:
        return []
    if count <= MAX_X_LABELS:
        return list(range(count))
    return sorted({round(i * (count - 1) / (MAX_X_LABELS - 1)) for i in range(MAX_X_LABELS)})


def _value(v: float) -> str:
    return f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, unit: str, width: float = WIDTH,
              height: float = 260) -> str:
    """One bar per label, its height proportional to its value (the tallest reaching the top of the plot)."""
    left, right, top_margin, bottom = 56.0, 12.0, 28.0, 34.0
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    base = top_margin + plot_h
    body = [f'<line x1="{_n(left)}" y1="{_n(base)}" x2="{_n(width - right)}" y2="{_n(base)}" stroke="#444"/>']
    if not values:
        body.append(f'<text x="{_n(width / 2)}" y="{_n(top_margin + plot_h / 2)}" text-anchor="middle">no data</text>')
        return _svg(width, height, title, body)
    top = max([0.0, *values])
    slot = plot_w / len(values)
    body.append(f'<text x="{_n(left - 4)}" y="{_n(base + 4)}" text-anchor="end">0</text>')
    if top > 0:
        body.append(f'<text x="{_n(left - 4)}" y="{_n(top_margin + 4)}" text-anchor="end">{esc(_value(top))}</text>')
        body.append(f'<line x1="{_n(left)}" y1="{_n(top_margin)}" x2="{_n(width - right)}" y2="{_n(top_margin)}" '
                    'stroke="#ddd"/>')
    body.append(f'<text x="12" y="{_n(top_margin + plot_h / 2)}" text-anchor="middle" '
                f'transform="rotate(-90 12 {_n(top_margin + plot_h / 2)})">{esc(unit)}</text>')
    for i, (label, v) in enumerate(zip(labels, values, strict=False)):
        h = 0.0 if top <= 0 else max(0.0, v) / top * plot_h
        x = left + i * slot + slot * 0.1
        body.append(f'<rect class="bar" x="{_n(x)}" y="{_n(base - h)}" width="{_n(slot * 0.8)}" height="{_n(h)}" '
                    f'fill="{BAR_COLOUR}"><title>{esc(label)}: {esc(_value(v))} {esc(unit)}</title></rect>')
    for i in _label_indices(len(values)):
        x = left + (i + 0.5) * slot
        body.append(f'<text x="{_n(x)}" y="{_n(base + 16)}" text-anchor="middle">{esc(labels[i])}</text>')
    return _svg(width, height, title, body)


def heatmap(grid: Sequence[Sequence[float]], title: str, width: float = WIDTH) -> str:
    """7 rows (Monday first) of 24 hours; a cell's opacity is its share of the busiest hour's value."""
    left, top_margin, cell_h = 40.0, 40.0, 20.0
    cell_w = (width - left - 8) / 24
    height = top_margin + 7 * cell_h + 24
    peak = max((v for row in grid for v in row), default=0.0)
    body = []
    for hour in range(0, 24, 3):
        body.append(f'<text x="{_n(left + hour * cell_w + 2)}" y="{_n(top_margin - 6)}">{hour:02d}</text>')
    for d, (name, row) in enumerate(zip(WEEKDAYS, grid, strict=False)):
        y = top_margin + d * cell_h
        body.append(f'<text x="{_n(left - 6)}" y="{_n(y + cell_h * 0.7)}" text-anchor="end">{name}</text>')
        for hour, v in enumerate(row[:24]):
            opacity = 0.0 if peak <= 0 else max(0.0, min(1.0, v / peak))
            body.append(f'<rect class="cell" x="{_n(left + hour * cell_w)}" y="{_n(y)}" width="{_n(cell_w - 1)}" '
                        f'height="{_n(cell_h - 1)}" fill="#eeeeee"/>')
            body.append(f'<rect class="heat" x="{_n(left + hour * cell_w)}" y="{_n(y)}" width="{_n(cell_w - 1)}" '
                        f'height="{_n(cell_h - 1)}" fill="{BAR_COLOUR}" fill-opacity="{_n(opacity)}">'
                        f"<title>{name} {hour:02d}:00-{(hour + 1) % 24:02d}:00: {v:.0%}</title></rect>")
    note = "no use recorded" if peak <= 0 else f"darkest: {peak:.0%} of the connectors in use"
    body.append(f'<text x="{_n(left)}" y="{_n(height - 6)}">{esc(note)}</text>')
    return _svg(width, height, title, body)


def timeline(t: Timeline, title: str, width: float = WIDTH) -> str:
    """A row per connector, coloured per bucket: up, outage, outage that does not count, not yet installed."""
    left, top_margin, row_h = 90.0, 28.0, 22.0
    buckets = max((len(r.states) for r in t.rows), default=0)
    plot_w = width - left - 8
    height = top_margin + max(1, len(t.rows)) * row_h + 44
    body = []
    for r_i, row in enumerate(t.rows):
        y = top_margin + r_i * row_h
        body.append(f'<text x="{_n(left - 6)}" y="{_n(y + row_h * 0.65)}" text-anchor="end">{esc(row.name)}</text>')
        i = 0
        while i < len(row.states):  # a run of one state is one rectangle
            j = i
            while j < len(row.states) and row.states[j] == row.states[i]:
                j += 1
            state = row.states[i]
            x, w = left + i * plot_w / buckets, (j - i) * plot_w / buckets
            body.append(f'<rect class="{state}" x="{_n(x)}" y="{_n(y)}" width="{_n(w)}" height="{_n(row_h - 4)}" '
                        f'fill="{STATE_COLOURS[state]}"><title>{esc(row.name)}: {STATE_NAMES[state]}, '
                        f"{j - i} x {esc(t.step_name)}</title></rect>")
            i = j
    if not t.rows:
        body.append(f'<text x="{_n(left)}" y="{_n(top_margin + 14)}">no connectors</text>')
    y = top_margin + max(1, len(t.rows)) * row_h + 12
    body.append(f'<text x="{_n(left)}" y="{_n(y)}">{esc(t.start.isoformat(timespec="minutes"))}</text>')
    body.append(f'<text x="{_n(width - 8)}" y="{_n(y)}" text-anchor="end">'
                f'{esc(t.end.isoformat(timespec="minutes"))}</text>')
    x = left
    for state in (UP, OUTAGE, EXCLUDED, NO_DATA):
        body.append(f'<rect x="{_n(x)}" y="{_n(y + 10)}" width="10" height="10" fill="{STATE_COLOURS[state]}"/>')
        body.append(f'<text x="{_n(x + 14)}" y="{_n(y + 19)}">{STATE_NAMES[state]}</text>')
        x += 130
    body.append(f'<text x="{_n(width - 8)}" y="{_n(y + 19)}" text-anchor="end">a cell = {esc(t.step_name)}</text>')
    return _svg(width, height, title, body)


def forecast_chart(history: Sequence[tuple[str, float]], forecast: Sequence[tuple[str, float]],
                   band: tuple[Sequence[float], Sequence[float]] | None, title: str, unit: str,
                   width: float = WIDTH, height: float = 260) -> str:
    """History as a line, the forecast as a dashed line after it, and its +- band as a shaded area."""
    left, right, top_margin, bottom = 56.0, 12.0, 28.0, 34.0
    plot_w, plot_h = width - left - right, height - top_margin - bottom
    base = top_margin + plot_h
    labels = [d for d, _ in history] + [d for d, _ in forecast]
    body = [f'<line x1="{_n(left)}" y1="{_n(base)}" x2="{_n(width - right)}" y2="{_n(base)}" stroke="#444"/>']
    if not labels:
        body.append(f'<text x="{_n(width / 2)}" y="{_n(top_margin + plot_h / 2)}" text-anchor="middle">no data</text>')
        return _svg(width, height, title, body)
    values = [v for _, v in history] + [v for _, v in forecast] + (list(band[1]) if band is not None else [])
    top = max([0.0, *values])
    scale = 0.0 if top <= 0 else plot_h / top
    step = plot_w / max(1, len(labels) - 1)

    def point(i: int, v: float) -> str:
        return f"{_n(left + i * step)},{_n(base - max(0.0, v) * scale)}"

    n = len(history)
    if band is not None and forecast:
        low, high = list(band[0]), list(band[1])
        outline = [point(n + i, v) for i, v in enumerate(high)] + [point(n + i, v) for i, v in reversed(
            list(enumerate(low)))]
        body.append(f'<polygon class="band" points="{" ".join(outline)}" fill="{BAR_COLOUR}" fill-opacity="0.2">'
                    "<title>+- the back-tested error</title></polygon>")
    if history:
        body.append(f'<polyline class="history" points="{" ".join(point(i, v) for i, (_, v) in enumerate(history))}" '
                    'fill="none" stroke="#444" stroke-width="1.5"/>')
    if forecast:
        # From the last day of history, so the two lines join.
        start = [point(n - 1, history[-1][1])] if history else []
        points = start + [point(n + i, v) for i, (_, v) in enumerate(forecast)]
        body.append(f'<polyline class="forecast" points="{" ".join(points)}" fill="none" stroke="{BAR_COLOUR}" '
                    'stroke-width="2" stroke-dasharray="5 3"/>')
    body.append(f'<text x="{_n(left - 4)}" y="{_n(base + 4)}" text-anchor="end">0</text>')
    if top > 0:
        body.append(f'<text x="{_n(left - 4)}" y="{_n(top_margin + 4)}" text-anchor="end">{esc(_value(top))}</text>')
    body.append(f'<text x="12" y="{_n(top_margin + plot_h / 2)}" text-anchor="middle" '
                f'transform="rotate(-90 12 {_n(top_margin + plot_h / 2)})">{esc(unit)}</text>')
    indices = _label_indices(len(labels))
    for i in indices:
        anchor = "start" if i == 0 and len(indices) > 1 else "end" if i == len(labels) - 1 else "middle"
        body.append(f'<text x="{_n(left + i * step)}" y="{_n(base + 16)}" text-anchor="{anchor}">{esc(labels[i])}'
                    "</text>")
    return _svg(width, height, title, body)
