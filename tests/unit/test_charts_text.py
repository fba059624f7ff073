"""The terminal charts: plain text (no colour codes), the same for the same input and size, within the width, and
drawn (not failing) for a period without data; the size is the terminal's or 80 x 24."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from chargepoint.cli import charts_text
from chargepoint.cli.charts_data import EXCLUDED, NO_DATA, OUTAGE, UP, Timeline, TimelineRow, band, week_grid

DAYS = [f"2026-11-{d:02d}" for d in range(1, 15)]


def test_the_energy_bars_are_the_same_for_the_same_input_and_fit_the_size() -> None:
    values = [float(d % 5) for d in range(14)]
    first = charts_text.bar_chart(DAYS, values, "Energy per day, kWh", 60, 12)
    assert first == charts_text.bar_chart(DAYS, values, "Energy per day, kWh", 60, 12)
    lines = first.splitlines()
    assert len(lines) == 12 and max(len(line) for line in lines) <= 60
    assert "Energy per day, kWh" in lines[0]
    assert "\x1b" not in first
    assert "2026-11-01" in first and "2026-11-14" in first and "█" in first  # the first and last days
    short = charts_text.bar_chart(charts_text.short_dates(DAYS), values, "Energy", 60, 12)
    assert "11-01" in short and "11-14" in short and "2026" not in short


def test_a_taller_value_draws_a_taller_bar() -> None:
    chart = charts_text.bar_chart(["a", "b"], [1.0, 4.0], "t", 40, 14)
    columns = list(zip(*(line.ljust(40) for line in chart.splitlines()[2:-2]), strict=True))
    heights = [sum(1 for ch in col if ch == "█") for col in columns]
    left, right = max(heights[:20]), max(heights[20:])
    assert right >= 3 * left > 0


@pytest.mark.parametrize("values", [[], [0.0], [0.0] * 30])
def test_bars_without_data_do_not_fail(values: list[float]) -> None:
    chart = charts_text.bar_chart(DAYS, values, "Energy", 50, 10)  # fewer values than labels, or more
    assert "Energy" in chart


def test_the_forecast_shows_history_forecast_and_its_band() -> None:
    history = [(d, float(i % 7)) for i, d in enumerate(DAYS[:7])]
    ahead = [(d, 4.0) for d in DAYS[7:]]
    chart = charts_text.forecast_chart(history, ahead, band([4.0] * 7, 50.0), "Sessions", 70, 14)
    assert chart == charts_text.forecast_chart(history, ahead, band([4.0] * 7, 50.0), "Sessions", 70, 14)
    assert "•" in chart and "o" in chart and "·" in chart
    assert chart.splitlines()[-1].strip() == "• history   o forecast   · +- back-tested error"
    assert max(len(line) for line in chart.splitlines()) <= 70
    no_band = charts_text.forecast_chart(history, ahead, None, "Sessions", 70, 14)
    assert "back-tested error" not in no_band
    assert charts_text.forecast_chart([], [], None, "Sessions", 70, 14) == "Sessions: no data"
    assert "Sessions" in charts_text.forecast_chart([], [(d, 0.0) for d in DAYS], None, "Sessions", 70, 14)


def test_short_dates_drop_the_year_only_when_there_is_one() -> None:
    assert charts_text.short_dates(["2026-12-31", "2026-12-30"]) == ["12-31", "12-30"]
    assert charts_text.short_dates(["2026-12-31", "2027-01-01"]) == ["2026-12-31", "2027-01-01"]


def test_the_heatmap_is_seven_days_of_24_hours_shaded_from_the_busiest() -> None:
    values = [0.0] * 168
    values[17] = 0.4  # Monday 17-18: the busiest
    values[24 + 17] = 0.1  # Tuesday 17-18: a quarter of it
    values[24 * 6 + 9] = 0.3  # Sunday 09-10
    chart = charts_text.heatmap(week_grid(values), 60, "Occupancy")
    assert chart == "\n".join([
        "Occupancy (█ = 40% of the connectors in use)",
        "     00    03    06    09    12    15    18    21",
        "Mon  ··································██············",
        "Tue  ··································░░············",
        "Wed  ················································",
        "Thu  ················································",
        "Fri  ················································",
        "Sat  ················································",
        "Sun  ··················▓▓····························",
    ])
    empty = charts_text.heatmap(week_grid([]), 40, "Occupancy")
    assert empty.splitlines()[0] == "Occupancy" and len(empty.splitlines()) == 9


def test_the_timeline_is_a_character_per_bucket() -> None:
    t = Timeline(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC), 3600.0, "1 h", [
        TimelineRow("connector 1", [NO_DATA] * 2 + [UP] * 3 + [OUTAGE] * 2 + [EXCLUDED] + [UP] * 16),
        TimelineRow("connector 2", [UP] * 24)])
    assert charts_text.timeline(t, "Availability") == "\n".join([
        "Availability, one character = 1 h from 2026-11-02T00:00+00:00",
        "█ up  X outage  ░ outage not counted  · not installed",
        "connector 1  ··███XX░████████████████",
        "connector 2  ████████████████████████",
    ])
    assert charts_text.timeline_columns(80, ["connector 1"]) == 67


def test_the_size_is_80_by_24_when_the_output_is_no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_terminal(_fd: int = 1) -> os.terminal_size:
        raise OSError("not a terminal")

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.delenv("LINES", raising=False)
    monkeypatch.setattr(os, "get_terminal_size", no_terminal)
    assert charts_text.terminal_size() == (80, 24)
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("LINES", "50")
    assert charts_text.terminal_size() == (120, 50)
    monkeypatch.setenv("COLUMNS", "5")
    assert charts_text.terminal_size()[0] == charts_text.MIN_WIDTH
    assert charts_text.plot_height(24) == 14 and charts_text.plot_height(100) == 20 and charts_text.plot_height(3) == 8
