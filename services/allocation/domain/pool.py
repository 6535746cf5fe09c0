"""The resource pool: people or teams, their skills, and their capacity week by week."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from services.allocation.domain.requests import week_monday

WORKING_DAYS = 5


@dataclass(frozen=True)
class CapacityChange:
    """From `starts` to `ends` (open-ended if None) the resource has `capacity_fte` a week.

    Holidays (0 for two weeks), part time (0.6 from a date on) and leaving (0 from the last day
    on) are all capacity changes.
    """

    starts: date
    capacity_fte: float
    ends: date | None = None
    reason: str = ""

    def covers(self, day: date) -> bool:
        return self.starts <= day and (self.ends is None or day <= self.ends)


def capacity_on(base_fte: float, changes: Sequence[CapacityChange], day: date) -> float:
    """The capacity on one day: the change starting latest among those covering it wins."""
    covering = [change for change in changes if change.covers(day)]
    if not covering:
        return base_fte
    # Overlaps are read as "the newer arrangement applies": a holiday inside a part-time period
    # starts later, so it wins for its days and the part time resumes after it.
    return max(enumerate(covering), key=lambda item: (item[1].starts, item[0]))[1].capacity_fte


def weekly_capacity(base_fte: float, changes: Sequence[CapacityChange], week: str) -> float:
    """The capacity in an ISO week: the average over its five working days.

    A two-day holiday in a full-time week leaves 0.6 FTE; a leaver whose last day is a Wednesday
    has 0.6 in that week and nothing after it.
    """
    if not changes:
        return base_fte
    monday = week_monday(week)
    total = sum(
        capacity_on(base_fte, changes, monday + timedelta(days=offset))
        for offset in range(WORKING_DAYS)
    )
    return round(total / WORKING_DAYS, 4)


def capacity_by_week(
    base_fte: float, changes: Sequence[CapacityChange], weeks: Iterable[str]
) -> dict[str, float]:
    return {week: weekly_capacity(base_fte, changes, week) for week in weeks}


def normalised_skills(skills: Iterable[str]) -> list[str]:
    """Skills as stored: trimmed, case kept as first written, duplicates (any case) dropped."""
    seen: set[str] = set()
    kept: list[str] = []
    for skill in skills:
        name = skill.strip()
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            kept.append(name)
    return kept


CSV_COLUMNS = ("resource_id", "name", "skills", "capacity_fte")
MAX_CAPACITY_FTE = 1000.0


@dataclass(frozen=True)
class PoolEntry:
    """One resource as a CSV line describes it."""

    line: int
    resource_id: str
    name: str
    skills: tuple[str, ...]
    capacity_fte: float


def parse_pool_csv(text: str) -> tuple[list[PoolEntry], list[str]]:
    """Read `resource_id,name,skills,capacity_fte` lines (skills separated by `;`).

    Returns the entries and, separately, one message per problem naming its line, so an import
    can refuse the whole file and say everything that is wrong in one go.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    entries: list[PoolEntry] = []
    errors: list[str] = []
    header = next(reader, None)
    if header is None or not any(cell.strip() for cell in header):
        return [], [f"line 1: the file is empty; expected the header {','.join(CSV_COLUMNS)}"]
    columns = [cell.strip().casefold() for cell in header]
    missing = [name for name in CSV_COLUMNS if name not in columns]
    unknown = [name for name in columns if name not in CSV_COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
        found = ",".join(columns)
        return [], [
            f"line 1: the header must name the columns {','.join(CSV_COLUMNS)} (got {found})"
        ]
    position = {name: columns.index(name) for name in CSV_COLUMNS}
    first_seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            errors.append(
                f"line {line}: {len(row)} fields, expected {len(columns)} "
                f"({','.join(columns)}); quote a value that contains a comma"
            )
            continue
        cell = {name: row[index].strip() for name, index in position.items()}
        problems: list[str] = []
        if not cell["resource_id"]:
            problems.append("resource_id is empty")
        if not cell["name"]:
            problems.append("name is empty")
        skills = tuple(normalised_skills(cell["skills"].split(";")))
        if not skills:
            problems.append("skills is empty (list them separated by ';')")
        try:
            capacity = float(cell["capacity_fte"])
            if not math.isfinite(capacity) or not 0 <= capacity <= MAX_CAPACITY_FTE:
                problems.append(
                    f"capacity_fte must be between 0 and {MAX_CAPACITY_FTE:g} "
                    f"(got {cell['capacity_fte']!r})"
                )
        except ValueError:
            capacity = 0.0
            problems.append(
                f"capacity_fte must be a number like 1 or 0.5 (got {cell['capacity_fte']!r})"
            )
        resource_id = cell["resource_id"]
        if resource_id and resource_id in first_seen:
            problems.append(
                f"resource_id {resource_id!r} is already on line {first_seen[resource_id]}"
            )
        elif resource_id:
            first_seen[resource_id] = line
        if problems:
            errors.append(f"line {line}: " + "; ".join(problems))
            continue
        entries.append(
            PoolEntry(
                line=line,
                resource_id=resource_id,
                name=cell["name"],
                skills=skills,
                capacity_fte=capacity,
            )
        )
    if not entries and not errors:
        errors.append("the file has a header but no resources")
    return entries, errors
