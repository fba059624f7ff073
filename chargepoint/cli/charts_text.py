"""Charts for the terminal: the report's daily energy (plotext bars), its hour-of-week occupancy (block shades, 7 rows
of 24 hours), its availability timeline (a character per bucket), and the forecast with its error band (plotext).

Each function takes the data and the size and returns plain text (no colour codes: the output may go to a pipe, a
file or a mail), the same text for the same input. ``terminal_size`` gives the size to draw at: the terminal's, or
80 x 24 when the output is not a terminal. plotext is imported only when a chart is drawn, so the other commands
never load it.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from typing import Any

from chargepoint.cli.charts_data import EXCLUDED, NO_DATA, OUTAGE, UP, WEEKDAYS, Timeline

FALLBACK_SIZE = (80, 24)
MIN_WIDTH = 40
MAX_WIDTH = 160

TIMELINE_CHARS = {UP: "█", OUTAGE: "X", EXCLUDED: "░", NO_DATA: "·"}
SHADES = "·░▒▓█"  # no use at all, then four steps up to the busiest hour


def terminal_size() -> tuple[int, int]:
    """(columns, lines) to draw at: the terminal's (or $COLUMNS/$LINES), 80 x 24 when not a terminal."""
    size = shutil.get_terminal_size(fallback=FALLBACK_SIZE)
    columns = size.columns if size.columns > 0 else FALLBACK_SIZE[0]
    lines = size.lines if size.lines > 0 else FALLBACK_SIZE[1]
    return max(MIN_WIDTH, min(MAX_WIDTH, columns)), max(10, lines)


def plot_height(lines: int) -> int:
    """A plot's height for a terminal of ``lines``: about half of it, from 8 to 20 lines."""
    return max(8, min(20, lines // 2 + 2))


def short_dates(days: Sequence[str]) -> list[str]:
    """ISO dates as MM-DD when they are all of one year (the title or the text says which)."""
    return [d[5:] for d in days] if len({d[:4] for d in days}) <= 1 else list(days)


def _ticks(count: int, labels: Sequence[str], width: int) -> tuple[list[float], list[str]]:
    """Up to one tick label every 12 columns, first and last included, evenly spread (x = 1 .. count)."""
    if count == 0:
        return [], []
    wanted = max(2, min(count, width // 12))
    if count == 1:
        return [1.0], [labels[0] if labels else ""]
    positions = sorted({round(i * (count - 1) / (wanted - 1)) for i in range(wanted)})
    return [float(p + 1) for p in positions], [labels[p] if p < len(labels) else "" for p in positions]


def _x_axis(f: Any, count: int, labels: Sequence[str], width: int) -> None:
    positions, names = _ticks(count, labels, width)
    # Room at either end for half a label, so that the first and last labels fit (plotext drops one that does not).
    half_label = max((len(n) for n in names), default=0) / 2 + 1
    pad = max(1.0, half_label * count / max(1, width - 8))
    f.ruler("x").lim(1 - pad, count + pad)
    f.ruler("x").ticks(positions, names)


def _text(built: str) -> str:
    return "\n".join(line.rstrip() for line in built.splitlines()).strip("\n")


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, width: int, height: int) -> str:
    """Vertical bars, one per label (the x axis labelled with some of them)."""
    if not values:
        return f"{title}: no data"
    import plotext  # only when drawing (see the module's docstring)

    f = plotext.figure
    f.clear()
    f.plot_size(width, height)
    f.theme("clear")
    xs = list(range(1, len(values) + 1))
    f.draw(f.bar(xs, [float(v) for v in values]))
    f.ruler("y").lim(0, max([1.0, *values]))
    _x_axis(f, len(values), labels, width)
    f.title(title)
    return _text(f.build().string(colorless=True))


def forecast_chart(history: Sequence[tuple[str, float]], forecast: Sequence[tuple[str, float]],
                   band: tuple[Sequence[float], Sequence[float]] | None, title: str, width: int, height: int) -> str:
    """The last days of history (•), the forecast after them (o) and its +- band (·), one point per day."""
    if not history and not forecast:
        return f"{title}: no data"
    import plotext  # only when drawing

    f = plotext.figure
    f.clear()
    f.plot_size(width, height)
    f.theme("clear")
    n_history = len(history)
    labels = [day for day, _ in history] + [day for day, _ in forecast]
    top = 1.0
    if history:
        xs = list(range(1, n_history + 1))
        values = [float(v) for _, v in history]
        f.draw(f.signal(xs, values, marker="•").lines())
        top = max([top, *values])
    if forecast:
        xs = list(range(n_history + 1, n_history + len(forecast) + 1))
        values = [float(v) for _, v in forecast]
        if band is not None:
            low, high = [float(v) for v in band[0]], [float(v) for v in band[1]]
            f.draw(f.signal(xs, high, marker="·").lines())
            f.draw(f.signal(xs, low, marker="·").lines())
            top = max([top, *high])
        f.draw(f.signal(xs, values, marker="o").lines())
        top = max([top, *values])
    f.ruler("y").lim(0, top)
    _x_axis(f, len(labels), labels, width)
    f.title(title)
    key = "• history   o forecast" + ("   · +- back-tested error" if band is not None else "")
    return _text(f.build().string(colorless=True)) + "\n" + key.center(width).rstrip()


def heatmap(grid: Sequence[Sequence[float]], width: int, title: str) -> str:
    """7 rows (Monday first) of 24 hours, each cell a shade from none (·) to the busiest hour's (█)."""
    top = max((v for row in grid for v in row), default=0.0)
    cell = max(1, min(3, (width - 5) // 24))
    header = [" "] * (24 * cell)
    step = 3 if cell >= 2 else 6
    for hour in range(0, 24, step):
        label = f"{hour:02d}"
        for i, ch in enumerate(label):
            if hour * cell + i < len(header):
                header[hour * cell + i] = ch
    lines = [title + ("" if top <= 0 else f" (█ = {top:.0%} of the connectors in use)"), "     " + "".join(header)]
    for name, row in zip(WEEKDAYS, grid, strict=False):
        # Any use at all shows: a quarter of the busiest hour or less is the first shade.
        cells = [SHADES[0 if v <= 0 or top <= 0 else min(4, max(1, math.ceil(v * 4 / top)))] * cell for v in row]
        lines.append(f"{name}  " + "".join(cells))
    return "\n".join(line.rstrip() for line in lines)


def timeline(t: Timeline, title: str) -> str:
    """A line per connector, a character per bucket: █ up, X outage, ░ outage that does not count, · not yet
    installed."""
    head = [f"{title}, one character = {t.step_name} from {t.start.isoformat(timespec='minutes')}",
            f"{TIMELINE_CHARS[UP]} up  {TIMELINE_CHARS[OUTAGE]} outage  {TIMELINE_CHARS[EXCLUDED]} outage not counted  "
            f"{TIMELINE_CHARS[NO_DATA]} not installed"]
    if not t.rows:
        return "\n".join([*head, "no connectors"])
    name_width = max(len(r.name) for r in t.rows) + 2
    return "\n".join([*head, *(f"{r.name:<{name_width}}" + "".join(TIMELINE_CHARS[s] for s in r.states)
                              for r in t.rows)])


def timeline_columns(width: int, names: Sequence[str]) -> int:
    """How many buckets fit beside the connectors' names."""
    return max(1, width - (max((len(n) for n in names), default=0) + 2))
