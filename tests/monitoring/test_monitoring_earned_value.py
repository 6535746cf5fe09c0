"""Earned value and Earned Schedule against hand-computed figures, and their undefined cases."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.monitoring.domain.earned_value import (
    Baseline,
    ProgressReport,
    earned_value,
    planned_value_at,
)

pytestmark = pytest.mark.fast

START = date(2026, 1, 1)
FINISH = date(2026, 12, 31)  # planned duration PD = 364 days
LINEAR = Baseline(budget_at_completion=100_000, start=START, planned_finish=FINISH)

# A back-loaded plan (BAC 120,000), anchored at 0 on the start:
#   day 0 (2026-01-01): 0 | day 60 (2026-03-02): 10,000 | day 120 (2026-05-01): 40,000
#   day 210 (2026-07-30): 100,000 | day 364 (2026-12-31): 120,000
CURVE = Baseline(
    budget_at_completion=120_000,
    start=START,
    planned_finish=FINISH,
    curve=(
        (date(2026, 3, 2), 10_000),
        (date(2026, 5, 1), 40_000),
        (date(2026, 7, 30), 100_000),
        (date(2026, 12, 31), 120_000),
    ),
)


def test_linear_plan_half_way_with_30_percent_done() -> None:
    # AT = 2026-01-01 -> 2026-07-02 = 182 days; PV = 100,000 * 182/364 = 50,000
    # EV = 30% of 100,000 = 30,000; AC = 40,000
    # SV = -20,000; CV = -10,000; SPI = 0.6; CPI = 0.75
    # EAC = 100,000 / 0.75 = 133,333.33; ETC = 93,333.33; VAC = -33,333.33
    # TCPI = (100,000 - 30,000) / (100,000 - 40,000) = 1.1667
    # ES: PV(t) = 100,000 * t/364 = 30,000 -> t = 109.2 days; SPI(t) = 109.2/182 = 0.6
    # SV(t) = 109.2 - 182 = -72.8 days; IEAC(t) = 364/0.6 = 606.67 -> 607 days
    # forecast finish = 2026-01-01 + 607 days = 2027-08-31, 243 days after 2026-12-31
    figures = earned_value(LINEAR, ProgressReport(date(2026, 7, 2), 30, 40_000))
    metrics = figures.as_metrics(START, FINISH)
    assert metrics == {
        "bac": 100_000,
        "percent_complete": 30,
        "pv": 50_000,
        "ev": 30_000,
        "ac": 40_000,
        "sv": -20_000,
        "cv": -10_000,
        "spi": 0.6,
        "cpi": 0.75,
        "eac": 133_333.33,
        "etc": 93_333.33,
        "vac": -33_333.33,
        "tcpi": 1.1667,
        "es_days": 109.2,
        "at_days": 182,
        "spi_t": 0.6,
        "sv_t_days": -72.8,
        "planned_duration_days": 364,
        "forecast_duration_days": 606.67,
        "forecast_delay_days": 243,
    }
    assert figures.forecast_finish(START) == date(2027, 8, 31)


def test_planned_value_curve_is_interpolated_and_earned_schedule_read_back_from_it() -> None:
    # as_of 2026-06-15 is day 165 (Jan 31 + Feb 28 + Mar 31 + Apr 30 + May 31 = 151, +14).
    # PV: between day 120 (40,000) and day 210 (100,000): 40,000 + 60,000 * 45/90 = 70,000
    # EV = 25% of 120,000 = 30,000; AC = 33,000
    # ES (Lipke, ES = C + I): PV first exceeds 30,000 in the period from day 60 (10,000) to
    #   day 120 (40,000), so C = 60 and I = 60 * (30,000 - 10,000) / (40,000 - 10,000) = 40;
    #   ES = 100 days. AT = 165 days.
    # SPI(t) = 100/165 = 0.60606 -> 0.6061; SV(t) = 100 - 165 = -65 days
    # SPI = 30,000/70,000 = 0.42857 -> 0.4286; CPI = 30,000/33,000 = 0.90909 -> 0.9091
    # EAC = 120,000 / (30/33) = 132,000; ETC = 99,000; VAC = -12,000
    # TCPI = (120,000 - 30,000) / (120,000 - 33,000) = 90,000/87,000 = 1.03448 -> 1.0345
    # IEAC(t) = 364 * 165/100 = 600.6 -> 601 days: 2027-08-25, 237 days late
    figures = earned_value(CURVE, ProgressReport(date(2026, 6, 15), 25, 33_000))
    metrics = figures.as_metrics(START, FINISH)
    assert metrics["pv"] == 70_000
    assert metrics["ev"] == 30_000
    assert metrics["es_days"] == 100
    assert metrics["at_days"] == 165
    assert metrics["spi_t"] == 0.6061
    assert metrics["sv_t_days"] == -65
    assert metrics["spi"] == 0.4286
    assert metrics["cpi"] == 0.9091
    assert metrics["eac"] == 132_000
    assert metrics["etc"] == 99_000
    assert metrics["vac"] == -12_000
    assert metrics["tcpi"] == 1.0345
    assert metrics["forecast_duration_days"] == 600.6
    assert figures.forecast_finish(START) == date(2027, 8, 25)
    assert metrics["forecast_delay_days"] == 237


def test_curve_points_in_any_order_and_first_point_after_the_start_anchor_at_zero() -> None:
    shuffled = Baseline(120_000, START, FINISH, curve=tuple(reversed(CURVE.curve)))
    # Day 30 is half-way from the anchor (day 0, 0) to (day 60, 10,000).
    assert shuffled.planned_value(START + timedelta(days=30)) == 5_000
    assert shuffled.planned_value(START - timedelta(days=1)) == 0
    assert shuffled.planned_value(date(2027, 6, 1)) == 120_000  # flat after the last point


def test_classic_spi_drifts_back_to_one_for_a_late_project_but_spi_t_does_not() -> None:
    # Two months after the planned finish, 95% done: PV = BAC = 100,000, EV = 95,000
    # SPI = 0.95 (green by the classic index). AT = 365 + 59 = 424 days (2027-03-01).
    # ES = 0.95 * 364 = 345.8 days; SPI(t) = 345.8/424 = 0.81557 -> 0.8156 (red)
    metrics = earned_value(LINEAR, ProgressReport(date(2027, 3, 1), 95, 95_000)).as_metrics(
        START, FINISH
    )
    assert metrics["spi"] == 0.95
    assert metrics["es_days"] == 345.8
    assert metrics["at_days"] == 424
    assert metrics["spi_t"] == 0.8156


def test_percent_complete_100_earns_the_budget_and_forecasts_the_report_date() -> None:
    # Finished a month late: EV = BAC, ES = PD = 364, AT = 394 (2027-01-30).
    # SPI(t) = 364/394 = 0.92386; IEAC(t) = 364/(364/394) = 394 days -> finished on 2027-01-30.
    # Nothing remains: ETC = EAC - AC = 100,000 - 100,000 = 0 and TCPI = 0 (no efficiency needed).
    figures = earned_value(LINEAR, ProgressReport(date(2027, 1, 30), 100, 100_000))
    metrics = figures.as_metrics(START, FINISH)
    assert metrics["ev"] == 100_000
    assert metrics["spi"] == 1.0
    assert metrics["spi_t"] == 0.9239
    assert metrics["etc"] == 0
    assert metrics["tcpi"] == 0
    assert figures.forecast_finish(START) == date(2027, 1, 30)


def test_report_dated_before_the_start_counts_no_time_and_no_plan() -> None:
    metrics = earned_value(LINEAR, ProgressReport(date(2025, 12, 20), 0, 0)).as_metrics(
        START, FINISH
    )
    assert metrics["pv"] == 0
    assert metrics["at_days"] == 0
    assert metrics["es_days"] == 0
    assert metrics["sv_t_days"] == 0
    # Divisions by zero are undefined, not errors and not NaN.
    for undefined in ("spi", "cpi", "spi_t", "eac", "etc", "vac", "forecast_duration_days"):
        assert metrics[undefined] is None, undefined
    assert metrics["tcpi"] == 1.0  # 100,000 of work left, 100,000 of budget left


def test_no_cost_yet_leaves_cost_indices_undefined() -> None:
    # EV = 10,000 earned, nothing booked: CPI = 10,000/0 is undefined, and so is EAC = BAC/CPI.
    # TCPI = (100,000 - 10,000) / (100,000 - 0) = 0.9
    metrics = earned_value(LINEAR, ProgressReport(date(2026, 2, 1), 10, 0)).as_metrics(
        START, FINISH
    )
    assert metrics["cpi"] is None
    assert metrics["eac"] is None
    assert metrics["etc"] is None
    assert metrics["vac"] is None
    assert metrics["tcpi"] == 0.9
    assert metrics["cv"] == 10_000


def test_spent_budget_with_work_remaining_has_no_tcpi_but_says_so() -> None:
    figures = earned_value(LINEAR, ProgressReport(date(2026, 9, 1), 80, 110_000))
    assert figures.tcpi is None
    assert figures.budget_exhausted


def test_nothing_earned_after_time_passed_has_no_forecast_finish() -> None:
    figures = earned_value(LINEAR, ProgressReport(date(2026, 3, 1), 0, 5_000))
    assert figures.spi_t == 0
    assert figures.cpi == 0
    assert figures.forecast_finish(START) is None  # at this rate it never finishes
    assert figures.estimate_at_completion is None  # BAC / 0


def test_zero_length_and_zero_budget_plans_have_defined_figures() -> None:
    same_day = Baseline(50_000, START, START)
    assert same_day.planned_value(START) == 50_000
    assert same_day.planned_value(START - timedelta(days=1)) == 0
    figures = earned_value(same_day, ProgressReport(START + timedelta(days=10), 50, 20_000))
    assert figures.spi_t is None  # no planned duration to measure time against
    assert figures.spi == 0.5

    free = Baseline(0, START, FINISH)
    figures = earned_value(free, ProgressReport(date(2026, 6, 1), 40, 1_000))
    assert (figures.spi, figures.cpi, figures.spi_t) == (None, None, None)


dates = st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1))
money = st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def baselines(draw: st.DrawFn) -> Baseline:
    start = draw(dates)
    finish = start + timedelta(days=draw(st.integers(0, 5000)))
    budget = draw(money)
    if not draw(st.booleans()):
        return Baseline(budget, start, finish)
    days = sorted(draw(st.sets(st.integers(-30, 6000), min_size=1, max_size=8)))
    values = sorted(draw(st.lists(money, min_size=len(days), max_size=len(days))))
    return Baseline(
        budget,
        start,
        finish,
        curve=tuple((start + timedelta(days=d), v) for d, v in zip(days, values, strict=True)),
    )


@settings(max_examples=300, deadline=None)
@given(
    baseline=baselines(),
    as_of=dates,
    percent=st.floats(min_value=0, max_value=100),
    cost=money,
)
def test_every_figure_is_finite_or_none_and_serializes_as_strict_json(
    baseline: Baseline, as_of: date, percent: float, cost: float
) -> None:
    figures = earned_value(baseline, ProgressReport(as_of, percent, cost))
    metrics = figures.as_metrics(baseline.start, baseline.planned_finish)
    for name, value in metrics.items():
        assert value is None or math.isfinite(value), name
    json.dumps(metrics, allow_nan=False)
    figures.forecast_finish(baseline.start)  # never overflows the calendar


@settings(max_examples=300, deadline=None)
@given(baseline=baselines(), share=st.floats(min_value=0, max_value=1))
def test_earned_schedule_is_where_the_plan_reaches_the_earned_value(
    baseline: Baseline, share: float
) -> None:
    points = baseline.plan_points()
    top = points[-1][1]
    earned = share * top
    es = baseline.earned_schedule_days(earned)
    # The plan at ES has reached EV, and a day earlier it had not. A day is resolved to about
    # 1e-16 of itself, which on a steep plan is worth up to ~1e-12 of the budget: hence the
    # tolerance relative to the plan's size.
    # A plan whose points start before the project may reach EV before day 0: ES is then 0.
    tolerance = 1e-9 * max(top, 1.0)
    assert es >= 0
    if earned <= points[0][1]:
        assert es == max(points[0][0], 0)
    elif es > 0:
        assert planned_value_at(points, es) == pytest.approx(earned, abs=tolerance)
        assert planned_value_at(points, es - 1) <= earned + tolerance
    else:
        assert planned_value_at(points, 0) >= earned - tolerance


# --- degenerate baselines (issue 12, item 4): defined figures, null where undefined ----------


def test_a_zero_budget_spent_half_way_has_no_tcpi_and_no_schedule_figures() -> None:
    # BAC = 0, half-way through the plan, 50% done, 5,000 spent: nothing can be earned, so every
    # value-based index is undefined; TCPI is not 0.0 ("no work remains"): half the work does.
    free = Baseline(0, START, FINISH)
    figures = earned_value(free, ProgressReport(date(2026, 7, 2), 50, 5_000))
    metrics = figures.as_metrics(START, FINISH)
    for undefined in ("spi", "cpi", "eac", "etc", "vac", "tcpi", "spi_t", "es_days", "sv_t_days"):
        assert metrics[undefined] is None, undefined
    assert (metrics["pv"], metrics["ev"], metrics["ac"], metrics["cv"]) == (0, 0, 5_000, -5_000)
    assert figures.spent_without_budget
    assert not figures.budget_exhausted  # that is the other rule: a budget, spent
    # Nothing spent on a zero budget is no cost problem; 100% done on it leaves no work.
    assert not earned_value(free, ProgressReport(date(2026, 7, 2), 50, 0)).spent_without_budget
    assert earned_value(free, ProgressReport(date(2026, 7, 2), 100, 10)).tcpi == 0


def test_a_zero_length_plan_has_no_earned_schedule() -> None:
    same_day = Baseline(50_000, START, START)
    figures = earned_value(same_day, ProgressReport(START + timedelta(days=10), 100, 50_000))
    metrics = figures.as_metrics(START, START)
    # Everything was due on day 0: ES and SV(t) say nothing; SPI (EV/PV) does.
    assert (metrics["es_days"], metrics["sv_t_days"], metrics["spi_t"]) == (None, None, None)
    assert (metrics["spi"], metrics["cpi"], metrics["tcpi"]) == (1.0, 1.0, 0.0)
    assert metrics["forecast_duration_days"] is None


def test_a_report_before_the_start_counts_no_time_but_its_cost() -> None:
    figures = earned_value(LINEAR, ProgressReport(date(2025, 12, 1), 5, 10_000))
    metrics = figures.as_metrics(START, FINISH)
    assert (metrics["at_days"], metrics["pv"], metrics["spi"], metrics["spi_t"]) == (
        0,
        0,
        None,
        None,
    )
    assert metrics["cpi"] == 0.5  # 5,000 earned for 10,000 spent: true before the start too
    assert metrics["tcpi"] == pytest.approx(95_000 / 90_000, abs=1e-4)


@pytest.mark.parametrize("end_value", [60_000.0, 100_000.0, 250_000.0])
def test_a_curve_not_ending_at_the_budget_gives_the_plan_its_shape_scaled_to_the_budget(
    end_value: float,
) -> None:
    # The curve says when the value is planned; BAC says how much. Half of the curve's value is
    # planned by 2026-07-02 whatever it ends at, so 50% done then is on plan.
    curve = ((date(2026, 7, 2), end_value / 2), (FINISH, end_value))
    baseline = Baseline(100_000, START, FINISH, curve=curve)
    assert baseline.planned_value(FINISH) == 100_000
    assert baseline.planned_value(date(2026, 7, 2)) == 50_000
    figures = earned_value(baseline, ProgressReport(date(2026, 7, 2), 50, 50_000))
    assert (figures.spi, figures.spi_t) == (1.0, 1.0)
    done = earned_value(baseline, ProgressReport(FINISH, 100, 100_000))
    assert done.spi_t == 1.0  # finishing on the planned day is on time, not late


def test_a_curve_planning_nothing_is_taken_as_linear() -> None:
    flat = Baseline(100_000, START, FINISH, curve=((date(2026, 3, 1), 0.0), (FINISH, 0.0)))
    assert flat.planned_value(FINISH) == 100_000
    assert flat.planned_value(date(2026, 7, 2)) == LINEAR.planned_value(date(2026, 7, 2))
