"""The demand forecast, its back-test against the seasonal-naive baseline, and the capacity advice, on synthetic
histories whose true pattern is known."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from chargepoint.analytics.forecast import DayDemand, capacity, erlang_b, fit, forecast

START = date(2026, 6, 1)  # a Monday


def weekly(days: int, growth_per_day: float = 0.0, holidays: frozenset[date] = frozenset(),
           holiday_value: float = 1.0) -> list[DayDemand]:
    """Weekdays 10 sessions, weekends 4, growing by ``growth_per_day`` of that each day; 7 kWh a session."""
    out = []
    for n in range(days):
        day = START + timedelta(days=n)
        base = 4.0 if day.weekday() >= 5 else 10.0
        sessions = holiday_value if day in holidays else base * (1 + growth_per_day * n)
        out.append(DayDemand(day, sessions, sessions * 7000))
    return out


def test_a_flat_weekly_pattern_is_forecast_exactly() -> None:
    result = forecast(weekly(84), frozenset(), 2, [0.0] * 168, [0.0] * 168, 1.0, 2, 0.2)
    assert len(result.daily) == 14 and result.daily[0].day == START + timedelta(days=84)
    assert [d.sessions for d in result.daily[:7]] == pytest.approx([10, 10, 10, 10, 10, 4, 4], abs=0.01)
    assert result.daily[0].energy_Wh == pytest.approx(70_000, abs=1)
    assert result.sessions_backtest.mape_percent == 0.0 and result.sessions_backtest.weeks == 4


def test_a_trend_is_followed_and_beats_the_seasonal_naive_baseline() -> None:
    history = weekly(84, growth_per_day=0.01)  # demand grows by 1 % of the first week's each day
    result = forecast(history, frozenset(), 1, [0.0] * 168, [0.0] * 168, 1.0, 2, 0.2)
    monday, saturday = result.daily[0], result.daily[5]
    assert monday.day.weekday() == 0
    assert monday.sessions == pytest.approx(10 * 1.84, rel=0.02)  # the true values of those days
    assert saturday.sessions == pytest.approx(4 * 1.89, rel=0.02)
    back = result.sessions_backtest
    assert back.mape_percent is not None and back.baseline_mape_percent is not None
    assert back.mape_percent < back.baseline_mape_percent  # naive lags a week behind a growing demand


def test_public_holidays_get_their_own_factor() -> None:
    holidays = frozenset({START + timedelta(days=16), START + timedelta(days=44)})  # two Wednesdays, 1 session each
    history = weekly(70, holidays=holidays, holiday_value=1.0)
    coming = START + timedelta(days=72)  # a Wednesday after the history
    result = forecast(history, holidays | {coming}, 1, [0.0] * 168, [0.0] * 168, 1.0, 1, 0.2)
    by_day = {d.day: d.sessions for d in result.daily}
    assert by_day[coming] == pytest.approx(1.0, rel=0.02)
    assert by_day[coming + timedelta(days=1)] == pytest.approx(10.0, rel=0.02)  # the Thursday after, as usual


def test_without_a_week_of_history_there_is_no_model_and_no_backtest() -> None:
    assert fit([(START, 3.0)] * 3, frozenset()) is None
    result = forecast(weekly(5), frozenset(), 1, [0.0] * 168, [0.0] * 168, 1.0, 1, 0.2)
    assert all(d.sessions == 0.0 for d in result.daily)
    assert result.sessions_backtest.mape_percent is None and result.sessions_backtest.weeks == 0


@pytest.mark.parametrize(("load", "servers", "blocking"), [(1.0, 1, 0.5), (2.0, 2, 0.4), (5.0, 5, 0.2849),
                                                           (0.0, 3, 0.0)])
def test_erlang_b_matches_its_tables(load: float, servers: int, blocking: float) -> None:
    assert erlang_b(load, servers) == pytest.approx(blocking, abs=1e-4)


def test_capacity_names_the_first_day_the_peak_hour_gets_too_busy() -> None:
    arrivals = [0.0] * 168
    arrivals[8] = 1.0
    arrivals[17] = 2.0  # Monday 17-18: the peak
    today = date(2026, 12, 7)
    # Two connectors, an hour plugged in: load 2, P(all busy) = 0.4 today. Past 0.5 once the load exceeds
    # 1 + sqrt(3) = 2.732 Erlangs: with 1 % growth a day, after 37 days.
    advice = capacity(arrivals, 1.0, 2, 0.5, today, lambda day: 1 + 0.01 * (day - today).days)
    assert (advice.peak_hour_of_week, advice.offered_load_erlang, advice.busy_probability_at_peak) == (17, 2.0, 0.4)
    assert advice.exceeded_on == today + timedelta(days=37)
    assert capacity(arrivals, 1.0, 2, 0.3, today, lambda day: 1.0).exceeded_on == today  # already past it
    assert capacity(arrivals, 1.0, 2, 0.5, today, lambda day: 1.0).exceeded_on is None  # flat demand: never


def test_a_week_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one week"):
        forecast(weekly(14), frozenset(), 0, [0.0] * 168, [0.0] * 168, 1.0, 1, 0.2)
