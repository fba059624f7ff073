"""The dashboard's charts as inline SVG, drawn here rather than in the browser: pure functions of the report's
figures, so they are tested like any other code and the page needs no charting library (a charger has no internet).

Every text and attribute value that goes into the markup is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

HOURS_PER_WEEK = 168
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_BAR = "#2f7ebc"
_AXIS = "#6b7280"
_TEXT = "#1f2937"
_FONT = "system-ui, sans-serif"


def _attrs(**values: object) -> str:
    return " ".join(f'{name.rstrip("_").replace("_", "-")}="{escape(str(value), quote=True)}"'
                    for name, value in values.items())


def _num(value: float) -> str:
    """Coordinates with at most two decimals, no exponent."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def _text(x: float, y: float, content: str, *, anchor: str = "start", size: int = 11) -> str:
    return (f"<text {_attrs(x=_num(x), y=_num(y), text_anchor=anchor, font_size=size, fill=_TEXT)}>"
            f"{escape(content)}</text>")


def _svg(width: int, height: int, label: str, body: list[str]) -> str:
    head = _attrs(xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {width} {height}", width="100%", role="img",
                  font_family=_FONT)
    return f"<svg {head}><title>{escape(label)}</title>{''.join(body)}</svg>"


def _kwh(energy_Wh: int) -> str:
    return f"{energy_Wh / 1000:.1f} kWh"


def energy_bars(days: Sequence[tuple[date, int]], title: str = "Energy per day") -> str:
    """A bar per day (oldest first) of the energy its sessions delivered; each bar says its day and value on hover.

    ``days``: (local date, energy in Wh). The scale starts at 0 and ends at the largest day (1 kWh if all are 0)."""
    width, height = 720, 240
    left, right, top, bottom = 56, 8, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((max(0, energy) for _, energy in days), default=0) or 1000
    body = [f"<line {_attrs(x1=left, y1=top + plot_h, x2=width - right, y2=top + plot_h, stroke=_AXIS)}/>",
            f"<line {_attrs(x1=left, y1=top, x2=left, y2=top + plot_h, stroke=_AXIS)}/>",
            _text(left - 6, top + 4, _kwh(peak), anchor="end", size=10),
            _text(left - 6, top + plot_h, "0", anchor="end", size=10)]
    if not days:
        body.append(_text(left + plot_w / 2, top + plot_h / 2, "no days in the period", anchor="middle"))
        return _svg(width, height, title, body)
    step = plot_w / len(days)
    label_every = max(1, round(len(days) / 6))
    for n, (day, energy_Wh) in enumerate(days):
        bar_h = plot_h * max(0, energy_Wh) / peak
        x = left + n * step
        tip = f"{day.isoformat()}: {_kwh(energy_Wh)}"
        bar = _attrs(x=_num(x + step * 0.1), y=_num(top + plot_h - bar_h), width=_num(step * 0.8),
                     height=_num(bar_h), fill=_BAR)
        body.append(f"<rect {bar}><title>{escape(tip)}</title></rect>")
        if n % label_every == 0 or n == len(days) - 1:
            body.append(_text(x + step / 2, height - bottom + 16, day.strftime("%d %b"), anchor="middle", size=10))
    return _svg(width, height, title, body)


_EMPTY = (0xEE, 0xF1, 0xF5)
_FULL = (0x2F, 0x7E, 0xBC)


def _shade(share: float) -> str:
    """Pale grey (0, an hour never occupied) to the bar colour (1, every connector always occupied)."""
    share = min(1.0, max(0.0, share))
    return "#" + "".join(f"{round(a + (b - a) * share):02x}" for a, b in zip(_EMPTY, _FULL, strict=True))


def occupancy_heatmap(hour_of_week: Sequence[float], title: str = "Occupancy by hour of week") -> str:
    """7 rows (Monday first) by 24 hours, each cell shaded by the share of connectors occupied then (0 to 1), with
    the exact share on hover. ``hour_of_week``: 168 values, Monday 00-01 first (as the usage figures give them)."""
    if len(hour_of_week) != HOURS_PER_WEEK:
        raise ValueError(f"an hour-of-week profile has {HOURS_PER_WEEK} values, not {len(hour_of_week)}")
    width, height = 720, 220
    left, top, cell_h = 40, 20, 24
    cell_w = (width - left - 8) / 24
    body = [_text(left + hour * cell_w + cell_w / 2, top - 6, f"{hour:02d}", anchor="middle", size=9)
            for hour in range(0, 24, 3)]
    for row, weekday in enumerate(WEEKDAYS):
        y = top + row * cell_h
        body.append(_text(left - 6, y + cell_h / 2 + 4, weekday, anchor="end", size=10))
        for hour in range(24):
            share = hour_of_week[row * 24 + hour]
            tip = f"{weekday} {hour:02d}:00-{(hour + 1) % 24:02d}:00: {share * 100:.0f} % occupied"
            cell = _attrs(x=_num(left + hour * cell_w), y=y, width=_num(cell_w - 1), height=cell_h - 1,
                          fill=_shade(share))
            body.append(f"<rect {cell}><title>{escape(tip)}</title></rect>")
    legend_y = top + 7 * cell_h + 12
    body.append(_text(left, legend_y + 10, "occupied:", size=10))
    for n, share in enumerate((0.0, 0.25, 0.5, 0.75, 1.0)):
        x = left + 60 + n * 56
        body.append(f"<rect {_attrs(x=x, y=legend_y, width=14, height=14, fill=_shade(share))}/>")
        body.append(_text(x + 18, legend_y + 11, f"{share * 100:.0f} %", size=10))
    return _svg(width, height, title, body)
