"""A request for people, on the allocation's planning grain: the ISO week."""

from __future__ import annotations

from datetime import date, timedelta


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def weeks_between(start: date, end: date) -> list[str]:
    """Every ISO week a request touches, first to last, both included."""
    weeks: list[str] = []
    monday = start - timedelta(days=start.weekday())
    while monday <= end:
        weeks.append(iso_week(monday))
        monday += timedelta(days=7)
    return weeks
