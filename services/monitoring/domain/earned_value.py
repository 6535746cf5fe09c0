"""Earned-value figures of a project at a status date (PMI's definitions, plus Earned Schedule).

Every figure is a finite number or None: None means "undefined here" (a division by zero, no
time elapsed yet, no cost booked yet), never NaN or infinity, so nothing undefined can reach the
database or an event as a number.

Time is counted in calendar days from the baseline's start date. The planned-value curve is
piecewise linear between its points, which makes Earned Schedule (Lipke's ES = C + I, with
I interpolated inside the period) the exact inverse of that curve.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import NamedTuple

Metrics = dict[str, float | None]

MONEY_DIGITS = 2
INDEX_DIGITS = 4
DAYS_DIGITS = 2


@dataclass(frozen=True)
class Baseline:
    """What the project promised: budget at completion, planned dates, planned value over time.

    `curve` holds the cumulative planned value on given dates; empty means the plan spends the
    budget evenly from start to planned finish.
    """

    budget_at_completion: float
    start: date
    planned_finish: date
    curve: tuple[tuple[date, float], ...] = ()

    @property
    def planned_duration_days(self) -> int:
        return (self.planned_finish - self.start).days

    def plan_points(self) -> tuple[tuple[int, float], ...]:
        """The plan as (days since start, cumulative planned value), in time order: `_points`,
        worked out once per baseline (a batch assesses several reports against one)."""
        return self._points

    @functools.cached_property
    def _points(self) -> tuple[tuple[int, float], ...]:
        """The plan as (days since start, cumulative planned value), in time order.

        A curve whose first point comes after the start is anchored at zero on the start date:
        nothing can have been planned before the project began.
        A curve that does not end at the budget gives the plan's shape over time, scaled so
        that it ends at BAC (by definition the planned value at completion); a curve that
        plans nothing at all while there is a budget is taken as linear.
        """
        budget = self.budget_at_completion
        points = sorted(((day - self.start).days, value) for day, value in self.curve)
        top = points[-1][1] if points else 0.0
        if not points or (top <= 0 < budget):
            if self.planned_duration_days <= 0:
                return ((0, budget),)
            return ((0, 0.0), (self.planned_duration_days, budget))
        if top != budget:
            points = [(day, value * budget / top) for day, value in points]
        if points[0][0] > 0:
            points.insert(0, (0, 0.0))
        return tuple(points)

    def planned_value(self, as_of: date) -> float:
        """PV: the budgeted cost of the work scheduled up to `as_of`."""
        return planned_value_at(self.plan_points(), (as_of - self.start).days)

    def earned_schedule_days(self, earned: float) -> float:
        """ES: the time (days since start) at which the plan scheduled the value earned so far."""
        return earned_schedule(self.plan_points(), earned)


def planned_value_at(points: Sequence[tuple[int, float]], day: float) -> float:
    """Cumulative planned value on a piecewise-linear plan; flat after its last point."""
    if day < points[0][0]:
        return 0.0
    for (day_0, value_0), (day_1, value_1) in itertools.pairwise(points):
        if day <= day_1 and day_1 > day_0:
            return value_0 + (value_1 - value_0) * (day - day_0) / (day_1 - day_0)
    return points[-1][1]


def earned_schedule(points: Sequence[tuple[int, float]], earned: float) -> float:
    """The earliest time at which the plan's planned value reaches `earned`.

    Lipke's ES: the last period whose PV does not exceed EV, plus the fraction of the next
    period needed to reach EV. Flat stretches of the plan are skipped (no value was scheduled
    there, so reaching EV cannot happen inside them). Value beyond the whole plan is earned
    no later than the plan's end. Never before the start: time is counted from there.
    """
    return max(_plan_time_of(points, earned), 0.0)


def _plan_time_of(points: Sequence[tuple[int, float]], earned: float) -> float:
    if earned <= points[0][1]:
        return float(points[0][0])
    for (day_0, value_0), (day_1, value_1) in itertools.pairwise(points):
        if value_0 < earned <= value_1:
            return day_0 + (day_1 - day_0) * (earned - value_0) / (value_1 - value_0)
    top = points[-1][1]
    return float(next(day for day, value in points if value >= top))


class ProgressReport(NamedTuple):
    """What a status report says: at `as_of`, this share done at this cost.

    A named tuple rather than a frozen dataclass, as the other figures of one report here: one
    is made for every report assessed, and a frozen dataclass's `__init__` costs several times
    as much."""

    as_of: date
    percent_complete: float
    actual_cost: float


def _ratio(numerator: float, denominator: float) -> float | None:
    if denominator == 0:
        return None
    value = numerator / denominator
    return value if math.isfinite(value) else None


def _rounded(value: float | None, digits: int) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value, digits)


class EarnedValueFigures(NamedTuple):
    """The earned-value and earned-schedule figures of one report, unrounded (a named tuple:
    see `ProgressReport`)."""

    budget_at_completion: float
    planned_value: float
    earned_value: float
    actual_cost: float
    percent_complete: float
    earned_schedule_days: float
    actual_time_days: int
    planned_duration_days: int

    @property
    def schedule_variance(self) -> float:
        """SV = EV - PV (money)."""
        return self.earned_value - self.planned_value

    @property
    def cost_variance(self) -> float:
        """CV = EV - AC (money)."""
        return self.earned_value - self.actual_cost

    @property
    def has_budget(self) -> bool:
        """A zero budget earns no value whatever is done: value-based indices say nothing."""
        return self.budget_at_completion > 0

    @property
    def spi(self) -> float | None:
        """SPI = EV / PV; undefined while nothing was planned yet."""
        return _ratio(self.earned_value, self.planned_value) if self.has_budget else None

    @property
    def cpi(self) -> float | None:
        """CPI = EV / AC; undefined while nothing was spent."""
        return _ratio(self.earned_value, self.actual_cost) if self.has_budget else None

    @property
    def estimate_at_completion(self) -> float | None:
        """EAC = BAC / CPI; undefined when CPI is undefined or zero."""
        return _estimate_at_completion(self.budget_at_completion, self.cpi)

    @property
    def estimate_to_complete(self) -> float | None:
        """ETC = EAC - AC."""
        eac = self.estimate_at_completion
        return None if eac is None else eac - self.actual_cost

    @property
    def variance_at_completion(self) -> float | None:
        """VAC = BAC - EAC."""
        eac = self.estimate_at_completion
        return None if eac is None else self.budget_at_completion - eac

    @property
    def remaining_work(self) -> float:
        """BAC - EV: the budgeted value still to earn."""
        return self.budget_at_completion - self.earned_value

    @property
    def remaining_budget(self) -> float:
        """BAC - AC: the money left in the budget (negative when overspent)."""
        return self.budget_at_completion - self.actual_cost

    @property
    def work_remains(self) -> bool:
        """Less than 100% is done (judged by progress, so that it holds for a zero budget too)."""
        return self.percent_complete < 100

    @property
    def budget_exhausted(self) -> bool:
        """Work remains but the budget is spent: no efficiency can finish within BAC."""
        return self.has_budget and self.work_remains and self.remaining_budget <= 0

    @property
    def spent_without_budget(self) -> bool:
        """Money was spent on a project with no budget (BAC = 0): every cost index is
        undefined, and that is itself the cost problem."""
        return not self.has_budget and self.actual_cost > 0

    @property
    def tcpi(self) -> float | None:
        """TCPI = (BAC - EV) / (BAC - AC): the cost efficiency the rest of the work needs.

        Zero when no work remains (100% done); undefined when the budget is exhausted with
        work remaining (it would be infinite or negative; `budget_exhausted` says so instead)
        and for a zero budget (no value to measure the remaining work in).
        """
        if not self.work_remains:
            return 0.0
        if not self.has_budget or self.remaining_budget <= 0:
            return None
        return _ratio(self.remaining_work, self.remaining_budget)

    @property
    def spi_t(self) -> float | None:
        """SPI(t) = ES / AT; undefined before any time has elapsed, for a zero-length plan or
        a zero budget."""
        if self.actual_time_days <= 0 or self.planned_duration_days <= 0 or not self.has_budget:
            return None
        return self.earned_schedule_days / self.actual_time_days

    @property
    def earned_schedule(self) -> float | None:
        """ES in days, where it means something: undefined for a zero budget (nothing is ever
        earned) and for a zero-length plan (everything was scheduled on day 0)."""
        if not self.has_budget or self.planned_duration_days <= 0:
            return None
        return self.earned_schedule_days

    @property
    def schedule_variance_t_days(self) -> float | None:
        """SV(t) = ES - AT, in days (negative: behind the plan); undefined with ES."""
        es = self.earned_schedule
        return None if es is None else es - self.actual_time_days

    @property
    def forecast_duration_days(self) -> float | None:
        """IEAC(t) = PD / SPI(t): the duration the project is on course to take."""
        return _forecast_duration(self.planned_duration_days, self.spi_t)

    def forecast_finish(self, start: date) -> date | None:
        """When the project will finish at its schedule performance so far (SPI(t)).

        None while SPI(t) is undefined or zero (nothing earned: no finish in sight), or when the
        forecast falls beyond the calendar.
        """
        return _finish_date(start, self.forecast_duration_days)

    def as_metrics(self, start: date, planned_finish: date) -> Metrics:
        """The figures as published and stored: rounded, None where undefined."""
        return self.metrics_and_forecast(start, planned_finish)[0]

    def metrics_and_forecast(
        self, start: date, planned_finish: date
    ) -> tuple[Metrics, date | None]:
        """`as_metrics` and `forecast_finish` at once, for the rules.

        Each derived figure is worked out once here with the properties' own formulas, from
        local values (the properties build on one another: EAC on CPI, ETC and VAC on EAC, the
        forecast on SPI(t)), and rounded inline: this runs for every status report, and a
        property or a call per figure was most of its time.
        """
        bac, ac, at = self.budget_at_completion, self.actual_cost, self.actual_time_days
        pv, ev, pd = self.planned_value, self.earned_value, self.planned_duration_days
        esd, percent = self.earned_schedule_days, self.percent_complete
        has_budget = bac > 0
        spi = _ratio(ev, pv) if has_budget else None
        cpi = _ratio(ev, ac) if has_budget else None
        eac = None if not cpi else _ratio(bac, cpi)
        if percent >= 100:  # as `tcpi`: no work remains
            tcpi: float | None = 0.0
        elif not has_budget or bac - ac <= 0:
            tcpi = None
        else:
            tcpi = _ratio(bac - ev, bac - ac)
        spi_t = None if at <= 0 or pd <= 0 or not has_budget else esd / at
        es = None if not has_budget or pd <= 0 else esd
        duration = None if not spi_t else _ratio(pd, spi_t)
        forecast = _finish_date(start, duration)
        finite = math.isfinite
        sv, cv = ev - pv, ev - ac
        etc = None if eac is None else eac - ac
        vac = None if eac is None else bac - eac
        sv_t = None if es is None else es - at
        # Rounded as `_rounded` does (None where undefined or not finite), written out.
        metrics: Metrics = {
            "bac": round(bac, MONEY_DIGITS) if finite(bac) else None,
            "percent_complete": round(percent, MONEY_DIGITS) if finite(percent) else None,
            "pv": round(pv, MONEY_DIGITS) if finite(pv) else None,
            "ev": round(ev, MONEY_DIGITS) if finite(ev) else None,
            "ac": round(ac, MONEY_DIGITS) if finite(ac) else None,
            "sv": round(sv, MONEY_DIGITS) if finite(sv) else None,
            "cv": round(cv, MONEY_DIGITS) if finite(cv) else None,
            "spi": None if spi is None else round(spi, INDEX_DIGITS),
            "cpi": None if cpi is None else round(cpi, INDEX_DIGITS),
            "eac": None if eac is None else round(eac, MONEY_DIGITS),
            "etc": None if etc is None or not finite(etc) else round(etc, MONEY_DIGITS),
            "vac": None if vac is None or not finite(vac) else round(vac, MONEY_DIGITS),
            "tcpi": None if tcpi is None else round(tcpi, INDEX_DIGITS),
            "es_days": None if es is None or not finite(es) else round(es, DAYS_DIGITS),
            "at_days": float(at),
            "spi_t": None if spi_t is None or not finite(spi_t) else round(spi_t, INDEX_DIGITS),
            "sv_t_days": None if sv_t is None or not finite(sv_t) else round(sv_t, DAYS_DIGITS),
            "planned_duration_days": float(pd),
            "forecast_duration_days": None if duration is None else round(duration, DAYS_DIGITS),
            "forecast_delay_days": (
                None if forecast is None else float((forecast - planned_finish).days)
            ),
        }
        return metrics, forecast


def _estimate_at_completion(budget_at_completion: float, cpi: float | None) -> float | None:
    return None if not cpi else _ratio(budget_at_completion, cpi)


def _forecast_duration(planned_duration_days: int, spi_t: float | None) -> float | None:
    return None if not spi_t else _ratio(planned_duration_days, spi_t)


def _finish_date(start: date, duration_days: float | None) -> date | None:
    if duration_days is None:
        return None
    days = math.floor(duration_days + 0.5)
    if start.toordinal() + days > date.max.toordinal():
        return None
    return start + timedelta(days=days)


def earned_value(baseline: Baseline, report: ProgressReport) -> EarnedValueFigures:
    """The figures of one report against the baseline.

    A report dated before the start counts no elapsed time (AT = 0) and no planned value; a
    percent complete of 100 earns the whole budget. EV never exceeds BAC (the contract caps
    percent complete at 100).
    """
    percent = min(max(report.percent_complete, 0.0), 100.0)
    earned = baseline.budget_at_completion * percent / 100.0
    points = baseline.plan_points()  # once for both PV and ES
    days = (report.as_of - baseline.start).days
    return EarnedValueFigures(
        budget_at_completion=baseline.budget_at_completion,
        planned_value=planned_value_at(points, days),
        earned_value=earned,
        actual_cost=report.actual_cost,
        percent_complete=percent,
        earned_schedule_days=earned_schedule(points, earned),
        actual_time_days=max(days, 0),
        planned_duration_days=baseline.planned_duration_days,
    )
