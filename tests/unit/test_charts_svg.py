"""The HTML report's SVG charts and page: well-formed XML, bars and cells that say what the values say, text from the
data escaped, and no failure on a period without data. Also the timeline's buckets they share with the terminal."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from chargepoint.cli import charts_html, charts_svg
from chargepoint.cli.charts_data import (
    EXCLUDED,
    NO_DATA,
    OUTAGE,
    UP,
    Span,
    Timeline,
    TimelineRow,
    band,
    choose_step,
    report_timeline,
    timeline_states,
    week_grid,
)

NS = {"svg": charts_svg.SVG_NS}
H = 3600.0


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{{{charts_svg.SVG_NS}}}svg"
    return root


def rects(root: ET.Element, css_class: str) -> list[ET.Element]:
    return [r for r in root.iter(f"{{{charts_svg.SVG_NS}}}rect") if r.get("class") == css_class]


def test_bars_are_proportional_to_their_values() -> None:
    root = parse(charts_svg.bar_chart(["a", "b", "c", "d"], [1.0, 2.0, 4.0, 0.0], "Energy", "kWh"))
    heights = [float(r.get("height", "nan")) for r in rects(root, "bar")]
    assert len(heights) == 4 and heights[3] == 0
    assert heights[1] == pytest.approx(2 * heights[0], abs=0.02)
    assert heights[2] == pytest.approx(4 * heights[0], abs=0.02)
    # The bars stand on one base line: y + height is the same for all.
    bases = {round(float(r.get("y", "nan")) + float(r.get("height", "nan")), 1) for r in rects(root, "bar")}
    assert len(bases) == 1


def test_text_from_the_data_is_escaped() -> None:
    nasty = "<script>alert('x')</script> & \"quoted\""
    svg = charts_svg.bar_chart([nasty], [3.0], nasty, "k&Wh")
    assert "<script>" not in svg
    root = parse(svg)
    titles = [t.text for t in root.iter(f"{{{charts_svg.SVG_NS}}}title")]
    assert nasty in titles  # the parser gives the text back as it was
    assert f"{nasty}: 3.0 k&Wh" in titles
    page = charts_html.page(nasty, [charts_html.table([nasty], [[nasty]]), charts_html.paragraph(nasty)])
    assert "<script>" not in page
    ET.fromstring(page.removeprefix("<!DOCTYPE html>\n"))


@pytest.mark.parametrize("svg", [
    charts_svg.bar_chart([], [], "Energy", "kWh"),
    charts_svg.bar_chart(["2026-11-02"], [0.0], "Energy", "kWh"),
    charts_svg.heatmap(week_grid([]), "Occupancy"),
    charts_svg.forecast_chart([], [], None, "Sessions", "sessions"),
    charts_svg.timeline(Timeline(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC), H, "1 h",
                                 []), "Availability"),
])
def test_charts_without_data_are_still_well_formed(svg: str) -> None:
    root = parse(svg)
    assert all(float(r.get("height", "0")) >= 0 for r in root.iter(f"{{{charts_svg.SVG_NS}}}rect"))


def test_the_heatmap_has_a_cell_per_hour_of_the_week_shaded_by_its_share_of_the_busiest() -> None:
    values = [0.0] * 168
    values[17] = 0.5  # Monday 17-18
    values[24 * 6 + 10] = 0.25  # Sunday 10-11
    root = parse(charts_svg.heatmap(week_grid(values), "Occupancy"))
    cells = rects(root, "heat")
    assert len(cells) == 168
    opacities = [float(c.get("fill-opacity", "nan")) for c in cells]
    assert opacities[17] == 1 and opacities[24 * 6 + 10] == 0.5
    assert sum(1 for o in opacities if o > 0) == 2
    title = cells[17].find("svg:title", NS)
    assert title is not None and title.text == "Mon 17:00-18:00: 50%"


def test_the_timeline_draws_a_run_of_one_state_as_one_rectangle() -> None:
    t = Timeline(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 3, tzinfo=UTC), H, "1 h",
                 [TimelineRow("connector 1", [NO_DATA] * 2 + [UP] * 10 + [OUTAGE] * 3 + [EXCLUDED] + [UP] * 8)])
    root = parse(charts_svg.timeline(t, "Availability"))
    runs = [(r.get("class"), float(r.get("width", "nan"))) for r in root.iter(f"{{{charts_svg.SVG_NS}}}rect")
            if r.get("class") in (UP, OUTAGE, EXCLUDED, NO_DATA)]
    assert [c for c, _ in runs] == [NO_DATA, UP, OUTAGE, EXCLUDED, UP]
    unit = runs[3][1]
    assert [w / unit for _, w in runs] == pytest.approx([2, 10, 3, 1, 8], abs=0.01)


def test_the_forecast_has_its_band_only_with_a_back_tested_error() -> None:
    history = [("2026-11-01", 3.0), ("2026-11-02", 5.0)]
    ahead = [("2026-11-03", 4.0), ("2026-11-04", 6.0)]
    with_band = parse(charts_svg.forecast_chart(history, ahead, band([4.0, 6.0], 25.0), "Sessions", "sessions"))
    polygons = list(with_band.iter(f"{{{charts_svg.SVG_NS}}}polygon"))
    assert len(polygons) == 1 and polygons[0].get("class") == "band"
    without = parse(charts_svg.forecast_chart(history, ahead, None, "Sessions", "sessions"))
    assert not list(without.iter(f"{{{charts_svg.SVG_NS}}}polygon"))
    lines = {p.get("class") for p in without.iter(f"{{{charts_svg.SVG_NS}}}polyline")}
    assert lines == {"history", "forecast"}


def test_the_band_is_the_forecast_plus_minus_its_error_never_below_zero() -> None:
    assert band([10.0, 0.0], 20.0) == ([8.0, 0.0], [12.0, 0.0])
    assert band([1.0], 150.0) == ([0.0], [2.5])
    assert band([1.0], None) is None


def test_a_timeline_bucket_shows_a_counted_outage_before_an_excluded_one() -> None:
    t0 = 1_000_000 * H
    outages = [Span(t0 + 2 * H, t0 + 4 * H, 0.0),  # counted
               Span(t0 + 6 * H, t0 + 7 * H, H),  # all of it excluded (the grid's)
               Span(t0 + 9.5 * H, t0 + 10.5 * H, 0.5 * H)]  # half counted
    states = timeline_states(t0, t0 + 12 * H, H, t0 + H, outages)
    assert states == [NO_DATA, UP, OUTAGE, OUTAGE, UP, UP, EXCLUDED, UP, UP, OUTAGE, OUTAGE, UP]
    assert timeline_states(t0, t0 + 3 * H, H, None, []) == [NO_DATA] * 3
    assert timeline_states(t0, t0 + 2.5 * H, H, t0, []) == [UP] * 3  # the last bucket is shorter


def test_the_timeline_step_is_the_shortest_that_fits() -> None:
    assert choose_step(24 * H, 80) == (H, "1 h")
    assert choose_step(30 * 24 * H, 66) == (12 * H, "12 h")
    assert choose_step(365 * 24 * H, 66) == (7 * 24 * H, "1 week")


def test_a_reports_timeline_starts_at_its_first_boot() -> None:
    report = {"from": "2026-11-02T00:00:00+00:00", "to": "2026-11-03T00:00:00+00:00", "connectors": [
        {"id": 1, "period_s": 18 * 3600, "outages": [
            {"start": "2026-11-02T10:00:00+00:00", "end": "2026-11-02T12:00:00+00:00", "excluded_s": 0}]}]}
    t = report_timeline(report, 24)
    assert t.step_name == "1 h" and [r.name for r in t.rows] == ["connector 1"]
    assert t.rows[0].states == [NO_DATA] * 6 + [UP] * 4 + [OUTAGE] * 2 + [UP] * 12
