"""What a solution means for each request and each conflict, in words a PMO can forward."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from typing import Literal

from services.allocation.domain.components import component_labels
from services.allocation.domain.pool import CapacityChange, capacity_on, weekly_capacity
from services.allocation.domain.priority import STAGE_WORDS, ProjectStanding, comparison
from services.allocation.domain.requests import (
    WORKING_DAYS_PER_WEEK,
    daily_fte,
    hint_level,
    planned_weeks,
    week_monday,
    week_ranges,
    working_days_by_week,
)
from services.allocation.domain.solver import TOLERANCE, Slot

Status = Literal["granted", "partial", "denied"]


# Memoised helpers (a resolution asks for the same skills, weeks and days tens of thousands of
# times); kept off the instances so that `vars()` of a member or request stays its fields.


@lru_cache(maxsize=4096)
def _skill_keys(skills: tuple[str, ...]) -> frozenset[str]:
    return frozenset(skill.casefold() for skill in skills)


@lru_cache(maxsize=65536)
def _capacity_over(
    base_fte: float, changes: tuple[CapacityChange, ...], days: int | tuple[date, ...]
) -> float:
    """FTE-weeks on `days` (a count of ordinary days when there are no changes)."""
    if isinstance(days, int):
        total = sum([base_fte] * days)
    else:
        total = sum(capacity_on(base_fte, changes, day) for day in days)
    return round(total / WORKING_DAYS_PER_WEEK, 4)


@lru_cache(maxsize=65536)
def _days_in(start: date, end: date, week: str) -> tuple[date, ...]:
    monday = week_monday(week)
    days = (monday + timedelta(days=offset) for offset in range(WORKING_DAYS_PER_WEEK))
    return tuple(day for day in days if start <= day <= end)


@dataclass(frozen=True)
class PoolMember:
    """A person (or team) of the pool: skills, usual capacity and its dated changes."""

    resource_id: str
    name: str
    skills: tuple[str, ...]
    capacity_fte: float
    changes: tuple[CapacityChange, ...] = ()

    def capacity_in(self, week: str) -> float:
        """FTE available in an ISO week (see pool.weekly_capacity)."""
        return weekly_capacity(self.capacity_fte, self.changes, week)

    def capacity_over(self, days: Sequence[date]) -> float:
        """FTE-weeks available on these working days: each day's capacity over five."""
        if not self.changes:  # every day alike: only how many there are matters
            return _capacity_over(self.capacity_fte, (), len(days))
        return _capacity_over(self.capacity_fte, self.changes, tuple(days))

    @property
    def skill_keys(self) -> frozenset[str]:
        return _skill_keys(self.skills)

    def label(self) -> str:
        return f"{self.name} ({self.resource_id})" if self.name != self.resource_id else self.name


@dataclass(frozen=True)
class OpenRequest:
    """A resource request as the allocation plans it."""

    request_id: str
    project_id: str
    skill: str
    fte: float
    """FTE asked for on each working day (hours already spread over the working days)."""
    start: date
    end: date
    weeks: tuple[str, ...]
    """Every ISO week holding a working day of the request (none: it asks for weekends only)."""
    planned: tuple[str, ...]
    """Its weeks from the current one on: the only ones ever (re-)allocated."""
    named_resource: str | None = None
    hint: int = 2
    arrival: int = 0
    decided: bool = False
    """Whether its decision (resource-allocated) was already published."""
    working_days: Mapping[str, int] = field(default_factory=dict)
    """Working days of the request per week; a week left out counts all five."""

    def share(self, week: str) -> float:
        """The part of the week's five working days the request covers (1.0 for a full week)."""
        return self.working_days.get(week, WORKING_DAYS_PER_WEEK) / WORKING_DAYS_PER_WEEK

    def fte_in(self, week: str) -> float:
        """The FTE asked for in a week, counted as capacity is: averaged over five working days."""
        return round(self.fte * self.share(week), 4)

    def partial_weeks(self) -> list[str]:
        return [week for week in self.planned if self.share(week) < 1.0]

    def days_in(self, week: str) -> tuple[date, ...]:
        """The request's working days in an ISO week."""
        return _days_in(self.start, self.end, week)

    def may_use(self, member: PoolMember) -> bool:
        if self.named_resource is not None:
            return member.resource_id == self.named_resource
        return self.skill.casefold() in member.skill_keys


@dataclass(frozen=True)
class Assignment:
    """One person on one request at one FTE over some weeks."""

    resource_id: str
    fte: float
    weeks: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """Where a request stands: what it got, from whom, in which weeks, and why."""

    status: Status
    fte_requested: float
    fte_granted: float
    """Average FTE granted per planned week."""
    weeks: tuple[str, ...]
    """Weeks in which something was granted."""
    resource_id: str | None
    """Who holds most of it."""
    assignments: tuple[Assignment, ...]
    reason: str

    def same_allocation(self, other: Outcome) -> bool:
        return self.assignments == other.assignments


@dataclass(frozen=True)
class ConflictDecision:
    request_id: str
    project_id: str
    fte_granted: float
    fte_requested: float
    why: str


@dataclass(frozen=True)
class Conflict:
    """Demand above capacity for one pool of people in some weeks, as resolved."""

    conflict_id: str
    contest_key: str
    """The same requests over the same people: a later resolution of one contest shares it."""
    skill: str | None
    resource_id: str | None
    weeks: tuple[str, ...]
    winners: tuple[ConflictDecision, ...]
    losers: tuple[ConflictDecision, ...]
    rationale: str
    request_ids: tuple[str, ...] = field(default=())

    @property
    def outcome(self) -> tuple[object, ...]:
        """Who gets how much of whom in which weeks, whatever the words: the same outcome
        explained under another ranking is the same contest decided the same way."""
        grants = sorted((d.request_id, d.fte_granted) for d in (*self.winners, *self.losers))
        return (self.contest_key, self.weeks, tuple(grants))


def available_to(request: OpenRequest, member: PoolMember, week: str) -> float:
    """What `member` can give `request` in a week at most: its capacity on the request's own
    working days there (all of the week's capacity when the request covers the whole week).

    A request from Monday to Wednesday in a week whose Monday to Wednesday are a holiday can
    have nothing of that person, though Thursday and Friday leave the week 0.4 FTE.
    """
    if request.share(week) >= 1.0:
        return member.capacity_in(week)
    return member.capacity_over(request.days_in(week))


def plan_request(
    *,
    request_id: str,
    project_id: str,
    skill: str,
    fte: float | None,
    hours: float | None,
    start: date,
    end: date,
    current_week: str,
    hours_per_fte_week: float,
    named_resource: str | None = None,
    priority: str | None = None,
    arrival: int = 0,
    decided: bool = False,
) -> OpenRequest:
    """A request as the allocation plans it: its working days per ISO week and its daily FTE
    (see requests.demand_by_week); hours are spread over the working days."""
    days = working_days_by_week(start, end)
    weeks = tuple(days)
    return OpenRequest(
        request_id=request_id,
        project_id=project_id,
        skill=skill,
        fte=daily_fte(fte, hours, sum(days.values()), hours_per_fte_week),
        start=start,
        end=end,
        weeks=weeks,
        planned=tuple(planned_weeks(weeks, current_week)),
        named_resource=named_resource,
        hint=hint_level(priority),
        arrival=arrival,
        decided=decided,
        working_days=days,
    )


def fte_text(value: float) -> str:
    """0.5, 1, 0.33: as few digits as say it."""
    return f"{round(value, 2):g}"


def assignments_of(
    allocations: Mapping[tuple[str, str], float], weeks: Collection[str] | None = None
) -> tuple[Assignment, ...]:
    """Group a request's (person, week) -> FTE into lines of one person at one FTE."""
    if not allocations:
        return ()  # most requests of a backlog hold nobody yet: nothing to group
    lines: dict[tuple[str, float], list[str]] = defaultdict(list)
    for (person, week), fte in allocations.items():
        if (weeks is None or week in weeks) and fte > TOLERANCE:
            lines[(person, round(fte, 3))].append(week)
    # In the order of their first week, so a request starting or ending mid-week reads in time.
    return tuple(
        Assignment(resource_id=person, fte=fte, weeks=tuple(sorted(weeks)))
        for (person, fte), weeks in sorted(lines.items(), key=lambda line: (min(line[1]), line[0]))
    )


PoolKey = tuple[str, str]
"""Who a request may use: ("named", resource id) or ("skill", casefolded skill)."""


class Explainer:
    """Turns the allocations in force into outcomes and conflicts for one portfolio state.

    Everything is read from indexes built once (allocations by request, by person-week, granted
    FTE per request-week, the holders of each skill's people per week, each project's words), so
    explaining every request of a 2,000-request portfolio is linear in the allocations and the
    cells contested, never a scan of every request per request.
    """

    def __init__(
        self,
        requests: Mapping[str, OpenRequest],
        people: Mapping[str, PoolMember],
        standings: Mapping[str, ProjectStanding],
        weights: Mapping[str, float],
        allocations: Mapping[Slot, float],
    ) -> None:
        self.requests = requests
        self.people = people
        self.standings = standings
        self.weights = weights
        self.by_request: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
        self.holders: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self.granted: dict[str, dict[str, float]] = defaultdict(dict)
        """Request -> week -> FTE granted there (summed in the allocations' order)."""
        for (request, person, week), fte in allocations.items():
            if fte <= TOLERANCE:
                continue
            self.by_request[request][(person, week)] = fte
            self.holders[(person, week)][request] = fte
            per_week = self.granted[request]
            per_week[week] = per_week.get(week, 0) + fte
        self.by_skill: dict[str, list[PoolMember]] = defaultdict(list)
        for member in people.values():
            for skill in member.skill_keys:
                self.by_skill[skill].append(member)
        self._short: dict[str, list[str]] = {}
        self._planned: dict[str, frozenset[str]] = {}
        self._held_cells: dict[tuple[PoolKey, str], list[tuple[str, dict[str, float]]]] = {}
        self._pool_holders: dict[tuple[PoolKey, str], dict[str, float]] = {}
        self._words: dict[str, str] = {}
        self._comparisons: dict[tuple[str, str], str] = {}

    def standing(self, project_id: str) -> ProjectStanding:
        return self.standings.get(project_id) or ProjectStanding(project_id=project_id)

    def eligible(self, request: OpenRequest) -> list[PoolMember]:
        if request.named_resource is not None:
            named = self.people.get(request.named_resource)
            return [named] if named is not None else []
        return self.by_skill.get(request.skill.casefold(), [])

    def granted_in(self, request: OpenRequest, week: str) -> float:
        """FTE granted to the request in a week, all people together."""
        return self.granted.get(request.request_id, {}).get(week, 0)

    def planned_set(self, request: OpenRequest) -> frozenset[str]:
        found = self._planned.get(request.request_id)
        if found is None:
            found = self._planned[request.request_id] = frozenset(request.planned)
        return found

    def short_weeks(self, request: OpenRequest) -> list[str]:
        """The planned weeks in which the request got less than it asked (memoised)."""
        found = self._short.get(request.request_id)
        if found is None:
            granted = self.granted.get(request.request_id, {})
            found = self._short[request.request_id] = [
                week
                for week in request.planned
                if granted.get(week, 0) < request.fte_in(week) - 1e-4
            ]
        return found

    def pool_words(self, request: OpenRequest) -> str:
        if request.named_resource is not None:
            named = self.people.get(request.named_resource)
            return named.label() if named else request.named_resource
        return f"everyone with the skill '{request.skill}'"

    def describe(self, project_id: str) -> str:
        """The project's words (see ProjectStanding.describe), memoised."""
        found = self._words.get(project_id)
        if found is None:
            found = self._words[project_id] = self.standing(project_id).describe()
        return found

    def comparison(self, winner: str, loser: str) -> str:
        """Why project `winner` comes before project `loser` (see priority.comparison), memoised."""
        found = self._comparisons.get((winner, loser))
        if found is None:
            found = self._comparisons[(winner, loser)] = comparison(
                self.standing(winner), self.standing(loser)
            )
        return found

    # --- one request ----------------------------------------------------------------------

    def lines(self, request: OpenRequest) -> tuple[Assignment, ...]:
        """What the request holds in its planned weeks, one line per person and FTE."""
        return assignments_of(
            self.by_request.get(request.request_id, {}), self.planned_set(request)
        )

    def outcome(self, request: OpenRequest) -> Outcome:
        held = self.by_request.get(request.request_id, {})
        planned_set = self.planned_set(request)
        lines = assignments_of(held, planned_set)
        planned = len(request.planned)
        total = sum(fte for (_, week), fte in held.items() if week in planned_set)
        # FTE per working day, comparable with what was asked: FTE-weeks granted over the
        # full-week equivalents of the planned working days (the plain weekly average when every
        # week is whole).
        weeks_worked = sum(request.share(week) for week in request.planned)
        granted = round(total / weeks_worked, 4) if weeks_worked else 0.0
        weeks = tuple(sorted({week for line in lines for week in line.weeks}))
        by_person: dict[str, float] = defaultdict(float)
        for line in lines:
            by_person[line.resource_id] += line.fte * len(line.weeks)
        main = max(sorted(by_person), key=lambda p: by_person[p]) if by_person else None
        short = self.short_weeks(request)
        if not short and planned:
            status: Status = "granted"
        else:
            status = "partial" if total > TOLERANCE else "denied"
        return Outcome(
            status=status,
            fte_requested=request.fte,
            fte_granted=granted,
            weeks=weeks,
            resource_id=main,
            assignments=lines,
            reason=self.reason(request, status, lines, short),
        )

    def person_label(self, resource_id: str) -> str:
        member = self.people.get(resource_id)
        return member.label() if member is not None else resource_id

    def lines_text(self, lines: Sequence[Assignment]) -> str:
        return ", ".join(
            f"{self.person_label(line.resource_id)} {fte_text(line.fte)} FTE in "
            f"{week_ranges(line.weeks)}"
            for line in lines
        )

    def reason(
        self, request: OpenRequest, status: Status, lines: Sequence[Assignment], short: list[str]
    ) -> str:
        asked = (
            f"{fte_text(request.fte)} FTE a week of {self.pool_words(request)} "
            f"for {week_ranges(request.planned or request.weeks)}"
        )
        if partial := request.partial_weeks():
            weeks = (
                "the week it covers in part" if len(partial) == 1 else "the weeks it covers in part"
            )
            figures = ", ".join(
                f"{fte_text(request.fte_in(week))} FTE in {week}" for week in partial
            )
            asked += f" ({figures}: {weeks})"
        standing = self.standing(request.project_id)
        if not request.weeks:
            return (
                f"Denied: {request.start} to {request.end} holds no working day (Monday to "
                "Friday), and people are planned on working days only; ask for the working "
                "days the work needs."
            )
        if not request.planned:
            return (
                f"Denied: {asked} lies entirely before the current week; past weeks are not "
                "allocated."
            )
        if not standing.holds_people:
            stage = STAGE_WORDS.get(standing.lifecycle or "", standing.lifecycle or "")
            return (
                f"Denied: {standing.describe()} is {stage}, and projects {stage} hold no people; "
                "the request is reconsidered if the project resumes."
            )
        if request.named_resource is not None and request.named_resource not in self.people:
            return f"Denied: {asked}, but {request.named_resource} is not in the resource pool."
        if not self.eligible(request):
            return f"Denied: {asked}, but no one in the resource pool has that skill."
        if status == "granted":
            return f"Granted in full: {self.lines_text(lines)}."
        got = self.lines_text(lines) if lines else "nothing"
        head = "Partly granted" if status == "partial" else "Denied"
        return (
            f"{head}: {asked}; allocated {got}. Short in {week_ranges(short)} because "
            f"{self.shortage_cause(request, short)}."
        )

    def _pool_key(self, request: OpenRequest) -> PoolKey:
        if request.named_resource is not None:
            return ("named", request.named_resource)
        return ("skill", request.skill.casefold())

    def _cells_held(self, request: OpenRequest, week: str) -> list[tuple[str, dict[str, float]]]:
        """The people `request` could use in `week` who hold some request there, with what they
        hold: shared by every request asking the same pool for a whole week (memoised), worked
        out for this request alone in a week it covers in part (its own days count)."""
        whole = request.share(week) >= 1.0
        key = (self._pool_key(request), week)
        if whole and key in self._held_cells:
            return self._held_cells[key]
        found = []
        for member in self.eligible(request):
            held = self.holders.get((member.resource_id, week))
            if not held:
                continue
            if whole:
                free = member.capacity_in(week) > TOLERANCE
            else:
                free = available_to(request, member, week) > TOLERANCE
            if free:  # else away on the request's days: nobody took them from it
                found.append((member.resource_id, held))
        if whole:
            self._held_cells[key] = found
        return found

    def competitors(self, request: OpenRequest, weeks: Sequence[str]) -> dict[str, float]:
        """Other requests holding the people `request` could use in `weeks`: id -> weight."""
        found: dict[str, float] = {}
        for week in weeks:
            if request.share(week) >= 1.0:
                found.update(self._holders_of_pool(request, week))
            else:
                for _, held in self._cells_held(request, week):
                    found.update(dict.fromkeys(held, 0.0))
        found.pop(request.request_id, None)
        return {other: self.weights.get(other, 0.0) for other in found}

    def _holders_of_pool(self, request: OpenRequest, week: str) -> dict[str, float]:
        """Every request holding someone of the request's pool in a whole week (memoised)."""
        key = (self._pool_key(request), week)
        found = self._pool_holders.get(key)
        if found is None:
            found = {}
            for _, held in self._cells_held(request, week):
                found.update(dict.fromkeys(held, 0.0))
            self._pool_holders[key] = found
        return found

    def shortage_cause(self, request: OpenRequest, short: Sequence[str]) -> str:
        """Why the request is short in `short`: nobody left, or who holds its people, each rival
        project once, highest priority first (project id between equals), with the criterion
        that puts it ahead."""
        others = self.competitors(request, short)
        pool = self.pool_words(request)
        if not others:
            return f"{pool} has no capacity left in those weeks (holidays, part time or leaving)"
        rivals: dict[str, float] = {}
        for other, weight in others.items():
            project = self.requests[other].project_id if other in self.requests else other
            rivals[project] = max(weight, rivals.get(project, weight))
        own = request.project_id
        ordered = sorted(rivals, key=lambda project: (-rivals[project], project))
        return (
            f"{pool} is allocated in those weeks to work of higher (or equal) portfolio "
            f"priority than {self.describe(own)}: "
            + "; ".join(f"{self.describe(p)}: {self.comparison(p, own)}" for p in ordered)
        )

    # --- conflicts ---------------------------------------------------------------------------

    def contested_cells(self, request: OpenRequest) -> set[tuple[str, str]]:
        """The (person, week) cells of its short weeks that other requests hold."""
        rid = request.request_id
        return {
            (person, week)
            for week in self.short_weeks(request)
            for person, held in self._cells_held(request, week)
            if len(held) > 1 or rid not in held
        }

    def conflicts(self) -> list[Conflict]:
        """Group the short requests by the people and weeks they contest with the holders."""
        cells_of: dict[str, set[tuple[str, str]]] = {}
        for request in self.requests.values():
            if self.weights.get(request.request_id, 0.0) <= 0 or not request.planned:
                continue
            # Nobody it may use (a skill or person the pool lacks): it contests no one's cells.
            if not self.eligible(request) or not self.short_weeks(request):
                continue
            cells = self.contested_cells(request)
            if cells:
                cells_of[request.request_id] = cells
        # Requests contesting a common cell are in one conflict, and so, in turn, are theirs.
        ids = sorted(cells_of)
        owner: dict[tuple[str, str], int] = {}
        links: list[tuple[int, int]] = []
        for node, request_id in enumerate(ids):
            for cell in cells_of[request_id]:
                links.append((node, owner.setdefault(cell, node)))
        groups: dict[int, list[str]] = defaultdict(list)
        for request_id, label in zip(ids, component_labels(len(ids), links), strict=True):
            groups[label].append(request_id)
        return [self._conflict(losers, cells_of) for losers in groups.values()]

    def _conflict(
        self, loser_ids: list[str], cells_of: Mapping[str, set[tuple[str, str]]]
    ) -> Conflict:
        cells = set().union(*(cells_of[loser] for loser in loser_ids))
        weeks = tuple(sorted({week for _, week in cells}))
        people = sorted({person for person, _ in cells})
        losing = set(loser_ids)
        winner_ids = sorted(
            {
                holder
                for cell in cells
                for holder in self.holders.get(cell, {})
                if holder not in losing
            }
        )
        members = sorted([*loser_ids, *winner_ids])
        skills = {self.requests[r].skill for r in loser_ids}
        skill = (
            skills.pop()
            if len(skills) == 1
            else sorted({self.requests[r].skill for r in loser_ids})[0]
        )
        resource_id = people[0] if len(people) == 1 else None

        def amounts(request_id: str) -> tuple[float, float, tuple[str, ...]]:
            request = self.requests[request_id]
            planned = self.planned_set(request)
            own = tuple(week for week in weeks if week in planned)
            granted = sum(self.granted_in(request, week) for week in own) / max(len(own), 1)
            asked = sum(request.fte_in(week) for week in own) / max(len(own), 1)
            return round(granted, 4), round(asked, 4), own

        def by_priority(ids: list[str]) -> list[str]:
            return sorted(ids, key=lambda r: (-self.weights.get(r, 0.0), self.requests[r].arrival))

        winners_sorted, losers_sorted = by_priority(winner_ids), by_priority(loser_ids)
        top_loser = self.requests[losers_sorted[0]].project_id
        top_winner = self.requests[winners_sorted[0]].project_id if winners_sorted else None
        winners: list[ConflictDecision] = []
        for request_id in winners_sorted:
            granted, asked, own = amounts(request_id)
            project_id = self.requests[request_id].project_id
            winners.append(
                ConflictDecision(
                    request_id=request_id,
                    project_id=project_id,
                    fte_granted=granted,
                    fte_requested=asked,
                    why=(
                        f"{self.describe(project_id)} keeps {fte_text(granted)} of "
                        f"{fte_text(asked)} FTE in {week_ranges(own)}: "
                        f"{self.comparison(project_id, top_loser)}."
                    ),
                )
            )
        losers: list[ConflictDecision] = []
        for request_id in losers_sorted:
            granted, asked, own = amounts(request_id)
            project_id = self.requests[request_id].project_id
            reason = (
                self.comparison(top_winner, project_id)
                if top_winner is not None
                else "the capacity is taken by other requests"
            )
            losers.append(
                ConflictDecision(
                    request_id=request_id,
                    project_id=project_id,
                    fte_granted=granted,
                    fte_requested=asked,
                    why=(
                        f"{self.describe(project_id)} gets {fte_text(granted)} of "
                        f"{fte_text(asked)} FTE in {week_ranges(own)}: {reason}."
                    ),
                )
            )
        if resource_id is not None:
            pool = self.people[resource_id].label()
        else:
            pool = f"{len(people)} people with the skill '{skill}'"
        demand = sum(
            self.requests[r].fte_in(w)
            for r in members
            for w in weeks
            if w in self.planned_set(self.requests[r])
        ) / len(weeks)
        capacity = sum(self.people[p].capacity_in(w) for p in people for w in weeks) / len(weeks)
        version = next(
            (
                s.strategy_version
                for s in map(self.standing, self._projects(members))
                if s.strategy_version
            ),
            None,
        )
        rationale = (
            f"{pool} was asked for more than is available in {week_ranges(weeks)}: "
            f"{fte_text(demand)} FTE a week requested against {fte_text(capacity)} FTE. "
            "Resolved by portfolio priority (active projects before approved ones, key projects "
            "first, then strategic rank"
            + (f" under strategy v{version}" if version else "")
            + "). Winners: "
            + ("; ".join(d.why.rstrip(".") for d in winners) or "none")
            + ". Losers: "
            + "; ".join(d.why.rstrip(".") for d in losers)
            + "."
        )
        contest = hashlib.sha256(json.dumps([members, people]).encode()).hexdigest()[:16]
        # The rationale is part of what was decided: the same grants explained otherwise (a
        # project registered, moved stage or re-ranked since) are a new resolution, published
        # anew, and the stale one is closed as superseded.
        fingerprint = json.dumps(
            [
                members,
                people,
                list(weeks),
                [[d.request_id, d.fte_granted] for d in (*winners, *losers)],
                rationale,
            ]
        )
        return Conflict(
            conflict_id="CF-" + hashlib.sha256(fingerprint.encode()).hexdigest()[:16],
            contest_key=contest,
            skill=skill,
            resource_id=resource_id,
            weeks=weeks,
            winners=tuple(winners),
            losers=tuple(losers),
            rationale=rationale,
            request_ids=tuple(members),
        )

    def _projects(self, request_ids: Sequence[str]) -> list[str]:
        return sorted({self.requests[r].project_id for r in request_ids})
