"""The dashboard's charts (chargepoint/web/svg.py): well-formed SVG whose shapes follow the figures, and every text
escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, timedelta

import pytest

from chargepoint.web.svg import HOURS_PER_WEEK, energy_bars, occupancy_heatmap

NS = {"svg": "http://www.w3.org/2000/svg"}
DAY0 = date(2026, 11, 2)


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(markup)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find("svg:title", NS) is not None]


def tip(rect: ET.Element) -> str:
    title = rect.find("svg:title", NS)
    assert title is not None and title.text is not None
    return title.text


def test_a_bar_per_day_in_order_with_its_day_and_energy_on_hover() -> None:
    days = [(DAY0 + timedelta(days=n), energy) for n, energy in enumerate([10_000, 0, 25_500, 5_000])]
    rects = bars(parse(energy_bars(days)))
    assert [tip(r) for r in rects] == ["2026-11-02: 10.0 kWh", "2026-11-03: 0.0 kWh", "2026-11-04: 25.5 kWh",
                                       "2026-11-05: 5.0 kWh"]
    xs = [float(r.get("x", "")) for r in rects]
    assert xs == sorted(xs)


def test_bar_heights_are_proportional_and_the_largest_day_fills_the_plot() -> None:
    days = [(DAY0, 20_000), (DAY0 + timedelta(days=1), 5_000), (DAY0 + timedelta(days=2), 0)]
    heights = [float(r.get("height", "")) for r in bars(parse(energy_bars(days)))]
    assert heights[0] > 0
    assert heights[1] == pytest.approx(heights[0] / 4, abs=0.01)
    assert heights[2] == 0
    bottoms = {round(float(r.get("y", "")) + float(r.get("height", "")), 2) for r in bars(parse(energy_bars(days)))}
    assert len(bottoms) == 1  # every bar stands on the same axis


def test_the_scale_says_the_largest_day_and_a_month_of_nothing_still_draws() -> None:
    markup = energy_bars([(DAY0, 12_345)])
    assert "12.3 kWh" in markup
    month = [(DAY0 + timedelta(days=n), 0) for n in range(30)]
    rects = bars(parse(energy_bars(month)))
    assert len(rects) == 30
    assert all(float(r.get("height", "")) == 0 for r in rects)
    assert "no days in the period" in energy_bars([])


def test_a_negative_day_draws_as_nothing_rather_than_below_the_axis() -> None:
    [rect] = bars(parse(energy_bars([(DAY0, -500)])))
    assert float(rect.get("height", "")) == 0


def test_titles_are_escaped() -> None:
    hostile = '<script>alert("x")</script> & "quotes"'
    for markup in (energy_bars([(DAY0, 1000)], title=hostile), occupancy_heatmap([0.0] * 168, title=hostile)):
        assert "<script>" not in markup
        root = parse(markup)
        title = root.find("svg:title", NS)
        assert title is not None and title.text == hostile


def test_the_heatmap_has_a_cell_per_hour_of_the_week_monday_midnight_first() -> None:
    profile = [0.0] * HOURS_PER_WEEK
    profile[0] = 1.0  # Monday 00-01
    profile[24 + 1] = 0.5  # Tuesday 01-02
    profile[6 * 24 + 23] = 0.25  # Sunday 23-24
    cells = bars(parse(occupancy_heatmap(profile)))
    assert len(cells) == HOURS_PER_WEEK
    assert tip(cells[0]) == "Mon 00:00-01:00: 100 % occupied"
    assert tip(cells[25]) == "Tue 01:00-02:00: 50 % occupied"
    assert tip(cells[-1]) == "Sun 23:00-00:00: 25 % occupied"
    # Monday's row is above Tuesday's; hours run left to right.
    assert float(cells[0].get("y", "")) < float(cells[24].get("y", ""))
    assert float(cells[0].get("x", "")) < float(cells[1].get("x", ""))


def test_heatmap_shades_run_from_pale_for_never_to_full_for_always_and_clamp() -> None:
    cells = bars(parse(occupancy_heatmap([0.0, 1.0, 1.7, -0.3, 0.5] + [0.0] * (HOURS_PER_WEEK - 5))))
    fills = [c.get("fill") for c in cells[:5]]
    assert fills[0] == "#eef1f5"
    assert fills[1] == "#2f7ebc"
    assert fills[2] == fills[1]  # above 1: as full as full
    assert fills[3] == fills[0]  # below 0: as empty as empty
    assert fills[4] not in (fills[0], fills[1])


def test_a_profile_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="168"):
        occupancy_heatmap([0.0] * 24)
