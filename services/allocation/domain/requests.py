"""A request for people, on the allocation's planning grain: the ISO week."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import lru_cache

DEFAULT_HOURS_PER_FTE_WEEK = 40.0


@lru_cache(maxsize=8192)
def iso_week(day: date) -> str:
    """The ISO week of a day, like 2026-W48 (memoised: a batch of requests asks for the same
    Mondays thousands of times, and `isocalendar` is the costly part of a request's weeks)."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@lru_cache(maxsize=4096)
def week_monday(week: str) -> date:
    """The Monday that starts an ISO week written like 2026-W48 (memoised: explanations ask for
    the same few weeks hundreds of thousands of times)."""
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


WORKING_DAYS_PER_WEEK = 5
"""Monday to Friday: the days capacity and demand are counted on."""


def weeks_between(start: date, end: date) -> list[str]:
    """Every ISO week the period touches, first to last, both included (weekends too)."""
    weeks: list[str] = []
    monday = start - timedelta(days=start.weekday())
    while monday <= end:
        weeks.append(iso_week(monday))
        monday += timedelta(days=7)
    return weeks


def working_days_by_week(start: date, end: date) -> dict[str, int]:
    """How many working days (Monday to Friday) of the period fall in each ISO week.

    Weeks the period touches only on a Saturday or Sunday are left out: a request from Saturday
    2026-12-05 to Friday 2026-12-11 has five working days, all in 2026-W50.
    """
    return dict(_working_days(start, end))


@lru_cache(maxsize=16384)
def _working_days(start: date, end: date) -> tuple[tuple[str, int], ...]:
    """`working_days_by_week`, memoised: a backlog's requests share a few periods, and each is
    counted when it arrives and when it is planned (a new dict each time: callers keep it)."""
    days: dict[str, int] = {}
    monday = start - timedelta(days=start.weekday())
    while monday <= end:
        first, last = max(monday, start), min(monday + timedelta(days=4), end)
        if first <= last:
            days[iso_week(monday)] = (last - first).days + 1
        monday += timedelta(days=7)
    return tuple(days.items())


def working_weeks(start: date, end: date) -> list[str]:
    """The ISO weeks holding at least one working day of the period: a request's weeks."""
    return list(working_days_by_week(start, end))


def planned_weeks(weeks: Iterable[str], current_week: str) -> list[str]:
    """The weeks still to be planned: the past is what happened and is never re-allocated."""
    return [week for week in weeks if week >= current_week]


def daily_fte(
    fte: float | None,
    hours: float | None,
    working_days: int,
    hours_per_fte_week: float = DEFAULT_HOURS_PER_FTE_WEEK,
) -> float:
    """The FTE a request asks for on each of its working days.

    An FTE request asks for that FTE on every working day. A request in `hours` is a total over
    its period, spread evenly over its working days at `hours_per_fte_week` / 5 hours per FTE
    day (8 by default): 40 hours over five working days is 1.0 FTE, 120 hours over fifteen is
    1.0 FTE. A period without working days asks for nothing.
    """
    if fte is not None:
        return fte
    if hours is None or working_days <= 0:
        return 0.0
    return round(hours * WORKING_DAYS_PER_WEEK / (hours_per_fte_week * working_days), 4)


def demand_by_week(
    fte: float | None,
    hours: float | None,
    start: date,
    end: date,
    hours_per_fte_week: float = DEFAULT_HOURS_PER_FTE_WEEK,
) -> dict[str, float]:
    """The FTE a request asks for in each ISO week, counted as capacity is: per working day.

    A week's figure is the average over its five working days, so a week the request covers on
    three of them holds 3/5 of the daily FTE: 1.0 FTE from a Wednesday to the next Tuesday is
    0.6 FTE in the first week and 0.4 in the second; 40 hours from Saturday 2026-12-05 to
    Friday 2026-12-11 is 1.0 FTE in 2026-W50 and nothing in 2026-W49. The weekly figures of an
    hours request add up to its hours (at `hours_per_fte_week` per FTE-week).
    """
    days = working_days_by_week(start, end)
    rate = daily_fte(fte, hours, sum(days.values()), hours_per_fte_week)
    return {week: round(rate * count / WORKING_DAYS_PER_WEEK, 4) for week, count in days.items()}


_HINTS = {"critical": 4, "urgent": 4, "high": 3, "medium": 2, "normal": 2, "low": 1}


def hint_level(priority: str | None) -> int:
    """The requester's priority hint as 1 (low) .. 4 (critical); 2 when absent or unreadable.

    Tools say "high" or give 1..5 with 1 the most urgent; both are read. The hint only breaks ties
    between requests of equal portfolio priority (usually two requests of one project).
    """
    if priority is None:
        return 2
    text = priority.strip().casefold()
    if text in _HINTS:
        return _HINTS[text]
    try:
        number = int(float(text))
    except ValueError:
        return 2
    return {1: 4, 2: 3, 3: 2}.get(number, 1 if number > 3 else 4)


def week_ranges(weeks: Iterable[str]) -> str:
    """Weeks as a PMO reads them: `2026-W50 to 2026-W52, 2027-W03` (consecutive weeks joined)."""
    return _week_ranges(tuple(sorted(set(weeks))))


@lru_cache(maxsize=8192)
def _week_ranges(ordered: tuple[str, ...]) -> str:
    """`week_ranges` of sorted distinct weeks, memoised: a resolution writes the same few
    thousand ranges into tens of thousands of explanations."""
    if not ordered:
        return "no weeks"
    spans: list[tuple[str, str]] = []
    first = last = ordered[0]
    for week in ordered[1:]:
        if week_monday(week) - week_monday(last) == timedelta(days=7):
            last = week
            continue
        spans.append((first, last))
        first = last = week
    spans.append((first, last))
    return ", ".join(a if a == b else f"{a} to {b}" for a, b in spans)
