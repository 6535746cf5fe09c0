"""A request for people, on the allocation's planning grain: the ISO week."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta

DEFAULT_HOURS_PER_FTE_WEEK = 40.0


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_monday(week: str) -> date:
    """The Monday that starts an ISO week written like 2026-W48."""
    year, number = week.split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def weeks_between(start: date, end: date) -> list[str]:
    """Every ISO week a request touches, first to last, both included."""
    weeks: list[str] = []
    monday = start - timedelta(days=start.weekday())
    while monday <= end:
        weeks.append(iso_week(monday))
        monday += timedelta(days=7)
    return weeks


def planned_weeks(weeks: Iterable[str], current_week: str) -> list[str]:
    """The weeks still to be planned: the past is what happened and is never re-allocated."""
    return [week for week in weeks if week >= current_week]


def weekly_demand(
    fte: float | None,
    hours: float | None,
    weeks: int,
    hours_per_fte_week: float = DEFAULT_HOURS_PER_FTE_WEEK,
) -> float:
    """The FTE a request asks for in each of its weeks.

    A request in `hours` is a total over its period: it is spread evenly over the ISO weeks the
    request touches, at `hours_per_fte_week` hours per FTE (40 by default), so 120 hours over
    three weeks is 1.0 FTE a week.
    """
    if fte is not None:
        return fte
    if hours is None or weeks <= 0:
        return 0.0
    return round(hours / (hours_per_fte_week * weeks), 4)


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
    ordered = sorted(set(weeks))
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
