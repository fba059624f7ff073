"""A demand forecast from the charger's daily history, its back-tested error, and capacity advice.

The model is small on purpose (it must run in seconds on a Pi Zero 2 W, with no scientific stack):

- **Trend:** a least-squares line through the means of the whole weeks among the last ``FIT_WEEKS`` (a week's mean
  holds each weekday once, so the weekly pattern does not bend it).
- **Weekly seasonality:** a factor per weekday, what that weekday drew over the trend level on average (public
  holidays left out, and given their own factor instead of their weekday's; the Sunday factor while no holiday has
  been seen).
- **Forecast:** trend level x weekday (or holiday) factor, never below zero; sessions and energy each on their own.

Its error is measured the way it will be used: from each of the last ``BACKTEST_WEEKS`` week starts, fit on what came
before and forecast the next 7 days; the mean absolute percentage error over days with demand, next to that of the
seasonal-naive baseline (each day as the same weekday a week before). A model that does not beat the baseline says
so in the numbers.

**Capacity:** a driver arriving in the busiest hour of the week finds every connector busy with the Erlang-B
probability of the offered load A = arrivals per hour x mean plugged-in time (a loss system: who finds no free
connector leaves), for c connectors. The load grows with the trend; the advice is the first date the probability
passes the operator's threshold (looking up to two years ahead), with the figures behind it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

FIT_WEEKS = 12
BACKTEST_WEEKS = 4
HORIZON_LIMIT_DAYS = 730


@dataclass(frozen=True, slots=True)
class DayDemand:
    day: date
    sessions: float
    energy_Wh: float


@dataclass(frozen=True, slots=True)
class Model:
    intercept: float  # level at ``origin``
    slope_per_day: float
    origin: date
    weekday: tuple[float, ...]  # 7 factors, Monday first
    holiday: float

    def level(self, day: date) -> float:
        return max(0.0, self.intercept + self.slope_per_day * (day - self.origin).days)

    def predict(self, day: date, holidays: Collection[date]) -> float:
        factor = self.holiday if day in holidays else self.weekday[day.weekday()]
        return max(0.0, self.level(day) * factor)


def fit(days: Sequence[tuple[date, float]], holidays: Collection[date]) -> Model | None:
    """The model of a daily series (oldest first, consecutive days); None with less than a week of it."""
    series = list(days)[-FIT_WEEKS * 7:]
    if len(series) < 7:
        return None
    origin = series[-1][0]
    # 1. The trend: a least-squares line through the means of whole weeks, counted back from the last day (a week's
    #    mean holds every weekday once, so the weekly pattern does not bend the line); holidays left out.
    xs: list[float] = []
    ys: list[float] = []
    for end in range(len(series), 6, -7):
        week = series[end - 7:end]
        values = [y for d, y in week if d not in holidays]
        if values:
            xs.append((week[3][0] - origin).days)
            ys.append(sum(values) / len(values))
    if not ys:
        return None
    x_mean, y_mean = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - x_mean) ** 2 for x in xs)
    slope = 0.0 if spread == 0 else sum((x - x_mean) * (y - y_mean) for x, y in zip(xs, ys, strict=True)) / spread
    intercept = y_mean - slope * x_mean

    def level(d: date) -> float:
        return max(0.0, intercept + slope * (d - origin).days)

    # 2. Each weekday's factor: what its days drew over the trend level, on average, the seven averaging one.
    weekday: list[float] = []
    for k in range(7):
        ratios = [y / level(d) for d, y in series if d.weekday() == k and d not in holidays and level(d) > 0]
        weekday.append(sum(ratios) / len(ratios) if ratios else 1.0)
    norm = sum(weekday) / 7
    weekday = [f / norm for f in weekday] if norm > 0 else [1.0] * 7
    # 3. Holidays stand in for their weekday: what they drew over the level of their days.
    seen = [(d, y) for d, y in series if d in holidays and level(d) > 0]
    holiday = sum(y / level(d) for d, y in seen) / len(seen) if seen else weekday[6]
    return Model(intercept, slope, origin, tuple(weekday), holiday)


def _mape(pairs: Sequence[tuple[float, float]]) -> float | None:
    """Mean absolute percentage error over the pairs (actual, predicted) with an actual above zero."""
    errors = [abs(actual - predicted) / actual for actual, predicted in pairs if actual > 0]
    return None if not errors else round(100.0 * sum(errors) / len(errors), 1)


@dataclass(frozen=True, slots=True)
class Backtest:
    mape_percent: float | None
    baseline_mape_percent: float | None
    weeks: int


def backtest(days: Sequence[tuple[date, float]], holidays: Collection[date]) -> Backtest:
    series = list(days)
    model_pairs: list[tuple[float, float]] = []
    naive_pairs: list[tuple[float, float]] = []
    weeks = 0
    for back in range(BACKTEST_WEEKS, 0, -1):
        cut = len(series) - back * 7
        if cut < 14:  # at least two weeks to fit on, and one for the naive baseline
            continue
        model = fit(series[:cut], holidays)
        if model is None:
            continue
        weeks += 1
        for i in range(cut, min(cut + 7, len(series))):
            d, actual = series[i]
            model_pairs.append((actual, model.predict(d, holidays)))
            naive_pairs.append((actual, series[i - 7][1]))
    return Backtest(_mape(model_pairs), _mape(naive_pairs), weeks)


def erlang_b(load: float, servers: int) -> float:
    """The probability that an arrival finds all ``servers`` busy under ``load`` Erlangs (no queue)."""
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return blocking


@dataclass(frozen=True, slots=True)
class Capacity:
    connectors: int
    peak_hour_of_week: int | None  # 0 = Monday 00-01 local
    arrivals_per_hour_at_peak: float
    mean_plugged_h: float
    offered_load_erlang: float
    busy_probability_at_peak: float
    threshold: float
    exceeded_on: date | None


def capacity(hour_of_week_arrivals: Sequence[float], mean_plugged_h: float, connectors: int, threshold: float,
             today: date, growth: Callable[[date], float]) -> Capacity:
    """``growth(day)``: the demand expected on ``day`` over today's (from the forecast's trend)."""
    if not any(hour_of_week_arrivals) or mean_plugged_h <= 0:
        return Capacity(connectors, None, 0.0, mean_plugged_h, 0.0, 0.0, threshold, None)
    peak = max(range(len(hour_of_week_arrivals)), key=lambda h: hour_of_week_arrivals[h])
    rate = hour_of_week_arrivals[peak]
    load = rate * mean_plugged_h
    now = erlang_b(load, connectors)
    exceeded_on: date | None = today if now > threshold else None
    if exceeded_on is None:
        for ahead in range(1, HORIZON_LIMIT_DAYS + 1):
            day = today + timedelta(days=ahead)
            if erlang_b(load * growth(day), connectors) > threshold:
                exceeded_on = day
                break
    return Capacity(connectors, peak, round(rate, 3), round(mean_plugged_h, 3), round(load, 3), round(now, 4),
                    threshold, exceeded_on)


@dataclass(frozen=True, slots=True)
class Forecast:
    daily: list[DayDemand]
    sessions_backtest: Backtest
    energy_backtest: Backtest
    capacity: Capacity
    hour_of_week_occupancy: list[float]


def forecast(history: Sequence[DayDemand], holidays: Collection[date], weeks: int, hour_of_week_arrivals:
             Sequence[float], hour_of_week_occupancy: Sequence[float], mean_plugged_h: float, connectors: int,
             threshold: float) -> Forecast:
    """Forecast ``weeks`` weeks after the last day of ``history`` (consecutive days, oldest first)."""
    if weeks < 1:
        raise ValueError(f"weeks = {weeks}: forecast at least one week")
    sessions = [(d.day, d.sessions) for d in history]
    energy = [(d.day, d.energy_Wh) for d in history]
    first = (history[-1].day if history else date.today()) + timedelta(days=1)
    s_model, e_model = fit(sessions, holidays), fit(energy, holidays)
    daily = [DayDemand(day, round(0.0 if s_model is None else s_model.predict(day, holidays), 2),
                       round(0.0 if e_model is None else e_model.predict(day, holidays), 1))
             for day in (first + timedelta(days=n) for n in range(weeks * 7))]

    def growth(day: date) -> float:
        if s_model is None or s_model.level(first) <= 0:
            return 1.0
        return s_model.level(day) / s_model.level(first)

    horizon_growth = growth(first + timedelta(days=weeks * 7 - 1))
    return Forecast(
        daily=daily, sessions_backtest=backtest(sessions, holidays), energy_backtest=backtest(energy, holidays),
        capacity=capacity(hour_of_week_arrivals, mean_plugged_h, connectors, threshold, first, growth),
        hour_of_week_occupancy=[round(min(1.0, x * horizon_growth), 4) for x in hour_of_week_occupancy],
    )
