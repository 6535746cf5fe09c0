"""The resource pool: people or teams, their skills, and their capacity week by week."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from services.allocation.domain.requests import WORKING_DAYS_PER_WEEK, week_monday

WORKING_DAYS = WORKING_DAYS_PER_WEEK

ChangeKind = Literal["absence", "contract"]


def default_kind(ends: date | None) -> ChangeKind:
    """The kind of a change given without one: bounded changes are absences.

    A holiday or leave has an end; a move to part time or a leaving date does not. A bounded
    change of the working pattern (e.g. 0.8 FTE for three months) says `contract` explicitly.
    """
    return "absence" if ends is not None else "contract"


@dataclass(frozen=True)
class CapacityChange:
    """From `starts` to `ends` (open-ended if None) the resource has `capacity_fte` a week.

    Two kinds compose (see `capacity_on`):

    - `contract`: the working pattern changes (part time 0.6 from a date on, back to full time,
      leaving: 0 from the day after the last day). The newest arrangement applies.
    - `absence`: an exception on top of the pattern (holiday, leave, sickness, a course; 0 FTE or
      reduced): during it the resource has at most `capacity_fte`. A contract change dated
      inside an absence does not end it.
    """

    starts: date
    capacity_fte: float
    ends: date | None = None
    reason: str = ""
    kind: ChangeKind | None = None
    """None: `default_kind(ends)`."""

    @property
    def effective_kind(self) -> ChangeKind:
        return self.kind or default_kind(self.ends)

    def covers(self, day: date) -> bool:
        return self.starts <= day and (self.ends is None or day <= self.ends)


def working_pattern_on(base_fte: float, changes: Sequence[CapacityChange], day: date) -> float:
    """The contracted capacity on one day: the contract change starting latest among those
    covering it wins (the later of two starting the same day, in the given order); the usual
    capacity when none covers it."""
    covering = [
        (change.starts, index, change.capacity_fte)
        for index, change in enumerate(changes)
        if change.effective_kind == "contract" and change.covers(day)
    ]
    return max(covering)[2] if covering else base_fte


def capacity_on(base_fte: float, changes: Sequence[CapacityChange], day: date) -> float:
    """The capacity on one day, in FTE: the working pattern, capped by every absence covering it.

    Absences compose with everything whatever their dates: overlapping absences leave the
    smallest cap, and a contract change (0.5 FTE from a date inside a leave) changes the pattern
    underneath without ending the leave, so the day still has 0 until the leave ends and 0.5
    after it. A reduced absence (0.5 FTE for a course) caps a 1.0 pattern at 0.5 and leaves a
    0.4 pattern at 0.4.
    """
    pattern = working_pattern_on(base_fte, changes, day)
    caps = [
        change.capacity_fte
        for change in changes
        if change.effective_kind == "absence" and change.covers(day)
    ]
    return min([pattern, *caps])


def weekly_capacity(base_fte: float, changes: Sequence[CapacityChange], week: str) -> float:
    """The capacity in an ISO week, in FTE: the average over its five working days.

    A two-day holiday in a full-time week leaves 0.6 FTE; a leaver whose last day is a Wednesday
    has 0.6 in that week and nothing after it.
    """
    if not changes:
        return base_fte
    return _weekly_capacity(base_fte, tuple(changes), week)


@lru_cache(maxsize=65536)
def _weekly_capacity(base_fte: float, changes: tuple[CapacityChange, ...], week: str) -> float:
    """`weekly_capacity` with changes, memoised: a resolution asks for the same person-weeks
    hundreds of times."""
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


def specialties_of(values: Iterable[str]) -> list[str]:
    """PMO expert specialties as stored: lower case, words joined by hyphens, duplicates dropped
    (`Schedule Recovery` is `schedule-recovery`)."""
    return normalised_skills("-".join(value.casefold().split()) for value in values)


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
CSV_OPTIONAL_COLUMNS = ("specialties",)
"""`specialties` (separated by `;`) marks the PMO's own experts; left out, they are unchanged."""
MAX_CAPACITY_FTE = 1000.0


@dataclass(frozen=True)
class PoolEntry:
    """One resource as a CSV line describes it."""

    line: int
    resource_id: str
    name: str
    skills: tuple[str, ...]
    capacity_fte: float
    specialties: tuple[str, ...] | None = None
    """PMO expert specialties, normalised (see interventions.specialties_of); None: the file
    has no `specialties` column, so the resource's are left as they are."""


def parse_pool_csv(text: str) -> tuple[list[PoolEntry], list[str]]:
    """Read `resource_id,name,skills,capacity_fte` lines (skills separated by `;`), and an
    optional `specialties` column (PMO expert specialties separated by `;`, empty: none).

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
    known = (*CSV_COLUMNS, *CSV_OPTIONAL_COLUMNS)
    unknown = [name for name in columns if name not in known]
    if missing or unknown or len(set(columns)) != len(columns):
        found = ",".join(columns)
        return [], [
            f"line 1: the header must name the columns {','.join(CSV_COLUMNS)} and may name "
            f"{','.join(CSV_OPTIONAL_COLUMNS)} (got {found})"
        ]
    position = {name: columns.index(name) for name in known if name in columns}
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
                specialties=(
                    tuple(specialties_of(cell["specialties"].split(";")))
                    if "specialties" in cell
                    else None
                ),
            )
        )
    if not entries and not errors:
        errors.append("the file has a header but no resources")
    return entries, errors


CHANGE_CSV_COLUMNS = ("resource_id", "starts", "ends", "capacity_fte", "kind", "reason")
CHANGE_CSV_REQUIRED = ("resource_id", "starts", "capacity_fte")


def is_capacity_csv(text: str) -> bool:
    """Whether a CSV file lists dated capacity changes (its header names `starts`)."""
    header = next(csv.reader(io.StringIO(text.lstrip("\ufeff"))), [])
    return "starts" in {cell.strip().casefold() for cell in header}


def _csv_date(text: str, column: str) -> tuple[date | None, str | None]:
    try:
        return date.fromisoformat(text), None
    except ValueError:
        return None, f"{column} must be a date like 2027-01-04 (got {text!r})"


def parse_capacity_csv(text: str) -> tuple[dict[str, list[CapacityChange]], list[str]]:
    """Read dated capacity changes: `resource_id,starts,ends,capacity_fte,kind,reason`.

    `ends` (empty: open-ended), `kind` (`absence` or `contract`; empty: an absence when it ends,
    a contract change otherwise) and `reason` may be left out. Returns each resource's changes in
    file order and, separately, one message per problem naming its line, so an import can refuse
    the whole file and say everything that is wrong in one go.
    """
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    expected = ",".join(CHANGE_CSV_COLUMNS)
    if header is None or not any(cell.strip() for cell in header):
        return {}, [f"line 1: the file is empty; expected the header {expected}"]
    columns = [cell.strip().casefold() for cell in header]
    missing = [name for name in CHANGE_CSV_REQUIRED if name not in columns]
    unknown = [name for name in columns if name not in CHANGE_CSV_COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
        return {}, [
            f"line 1: the header must name the columns {','.join(CHANGE_CSV_REQUIRED)} and may "
            f"name ends, kind, reason (got {','.join(columns)})"
        ]
    changes: dict[str, list[CapacityChange]] = {}
    errors: list[str] = []
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
        cell = {name: row[index].strip() for index, name in enumerate(columns)}
        problems: list[str] = []
        if not cell["resource_id"]:
            problems.append("resource_id is empty")
        starts, problem = _csv_date(cell["starts"], "starts")
        if problem:
            problems.append(problem)
        ends: date | None = None
        if cell.get("ends"):
            ends, problem = _csv_date(cell["ends"], "ends")
            if problem:
                problems.append(problem)
        if starts is not None and ends is not None and ends < starts:
            problems.append(f"ends {ends} is before starts {starts}")
        capacity = 0.0
        try:
            capacity = float(cell["capacity_fte"])
            if not math.isfinite(capacity) or not 0 <= capacity <= MAX_CAPACITY_FTE:
                problems.append(
                    f"capacity_fte must be between 0 and {MAX_CAPACITY_FTE:g} "
                    f"(got {cell['capacity_fte']!r})"
                )
        except ValueError:
            problems.append(
                f"capacity_fte must be a number like 1 or 0.5 (got {cell['capacity_fte']!r})"
            )
        kind_text = cell.get("kind", "").casefold()
        kind: ChangeKind | None = None
        if kind_text == "absence":
            kind = "absence"
        elif kind_text == "contract":
            kind = "contract"
        elif kind_text:
            problems.append(f"kind must be absence or contract (got {cell['kind']!r})")
        if problems or starts is None:
            errors.append(f"line {line}: " + "; ".join(problems))
            continue
        changes.setdefault(cell["resource_id"], []).append(
            CapacityChange(
                starts=starts,
                ends=ends,
                capacity_fte=capacity,
                reason=cell.get("reason", ""),
                kind=kind or default_kind(ends),
            )
        )
    if not changes and not errors:
        errors.append("the file has a header but no capacity changes")
    return changes, errors
