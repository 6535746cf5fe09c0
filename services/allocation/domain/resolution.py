"""One re-resolution: from the portfolio as it stands to allocations, decisions and conflicts."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from services.allocation.domain.decisions import (
    Conflict,
    Explainer,
    OpenRequest,
    Outcome,
    PoolMember,
    available_to,
)
from services.allocation.domain.priority import ProjectStanding, priority_levels
from services.allocation.domain.solver import (
    DEFAULT_MOVE_PENALTY,
    TOLERANCE,
    AllocationProblem,
    Demand,
    Person,
    Slot,
    Solution,
    solve,
)


@dataclass(frozen=True)
class AllocationState:
    """Everything the allocation decides from: pool, requests, portfolio, allocations in force."""

    current_week: str
    people: Mapping[str, PoolMember]
    requests: Mapping[str, OpenRequest]
    standings: Mapping[str, ProjectStanding]
    allocations: Mapping[Slot, float]

    def standing(self, project_id: str) -> ProjectStanding:
        return self.standings.get(project_id) or ProjectStanding(project_id=project_id)


@dataclass(frozen=True)
class RequestChange:
    request_id: str
    before: Outcome
    after: Outcome


@dataclass(frozen=True)
class Resolution:
    allocations: dict[Slot, float]
    """Every allocation in force afterwards (weeks outside the scope untouched)."""
    outcomes: dict[str, Outcome]
    """Each request with weeks still to plan (and each undecided one), after."""
    decided: tuple[str, ...]
    """Requests decided for the first time: each gets its resource-allocated."""
    changed: tuple[RequestChange, ...]
    """Requests decided before whose allocation changed: each gets an allocation-changed."""
    conflicts: tuple[Conflict, ...]
    solution: Solution
    scope: tuple[str, ...]
    """The weeks re-solved."""
    weights: dict[str, float]


def request_weights(state: AllocationState) -> dict[str, float]:
    """Each request's priority level (see priority.py); 0 for projects that hold nobody."""
    keys = {
        request.request_id: (*state.standing(request.project_id).priority_key(), request.hint)
        for request in state.requests.values()
    }
    levels = priority_levels(keys.values())
    return {
        request_id: float(levels[key])
        if state.standing(state.requests[request_id].project_id).holds_people
        else 0.0
        for request_id, key in keys.items()
    }


def _segment_weeks(
    demands: Iterable[Demand], request_of: Mapping[str, str]
) -> Iterable[tuple[str, str, str]]:
    for demand in demands:
        for week in demand.weeks:
            yield demand.request_id, request_of[demand.request_id], week


@dataclass(frozen=True)
class SolverDemands:
    """The requests as the solver's demands, and how to read its answer back."""

    demands: list[Demand]
    request_of: dict[str, str]
    """Demand id -> request id."""
    extra_skills: dict[str, set[str]]
    """Resource id -> demand-specific skill keys: who may serve a part week (see below)."""


def solver_demands(
    state: AllocationState, scope: Collection[str], weights: Mapping[str, float]
) -> SolverDemands:
    """The solver's demands for the weeks in `scope`, and the request each one belongs to.

    The solver asks the same FTE of a demand in each of its weeks and counts a person's
    capacity per week, while a request asks less in a week it covers in part (it starts or ends
    mid-week) and can use a person only on its own days there (see available_to). So a
    request's whole weeks are one demand (keeping the request's id) and each part week is a
    demand of its own (an id of its own, mapped back to the request on the way out):

    - naming a person, it asks no more than that person has on its days;
    - asking for a skill, only people with some capacity on its days may serve it (a skill key
      of its own, given to them alone); on_own_days cuts what one of them cannot give.
    """
    demands: list[Demand] = []
    request_of: dict[str, str] = {}
    extra_skills: dict[str, set[str]] = defaultdict(set)
    by_skill: dict[str, list[PoolMember]] = defaultdict(list)
    for member in state.people.values():
        for key in member.skill_keys:
            by_skill[key].append(member)

    def new_id(request_id: str, week: str) -> str:
        segment = f"{request_id} @ {week}"
        while segment in state.requests or segment in request_of:
            segment += "'"
        return segment

    for request in state.requests.values():
        weeks = [week for week in request.planned if week in scope]
        if not weeks:
            continue
        skill = request.skill.casefold()
        whole = [week for week in weeks if request.share(week) >= 1.0]
        parts: list[tuple[str, list[str], float, str]] = []
        if whole:
            parts.append((request.request_id, whole, request.fte, skill))
        named = state.people.get(request.named_resource or "")
        for week in weeks:
            if request.share(week) >= 1.0:
                continue
            segment = new_id(request.request_id, week) if parts else request.request_id
            fte, key = request.fte_in(week), skill
            if named is not None:
                fte = min(fte, available_to(request, named, week))
            elif request.named_resource is None:
                able = [
                    member
                    for member in by_skill.get(skill, [])
                    if available_to(request, member, week) > TOLERANCE
                ]
                key = f"{skill}\x1f{segment}"
                for member in able:
                    extra_skills[member.resource_id].add(key)
            parts.append((segment, [week], fte, key))
        for segment, group, fte, key in parts:
            request_of[segment] = request.request_id
            demands.append(
                Demand(
                    request_id=segment,
                    project_id=request.project_id,
                    skill=key,
                    fte=fte,
                    weeks=tuple(group),
                    weight=weights[request.request_id],
                    named_resource=request.named_resource,
                    arrival=request.arrival,
                )
            )
    return SolverDemands(demands, request_of, dict(extra_skills))


def on_own_days(state: AllocationState, allocations: Mapping[Slot, float]) -> dict[Slot, float]:
    """Allocations cut to what each person can give on the request's own days in a week it
    covers in part (see available_to).

    The solver counts a person's capacity per week; a request naming its person is already
    asked for no more (solver_demands), one for a skill is cut here. What is cut stays free (the
    rare loss of a better choice the solver could not see), and the decision says the request
    is short there.
    """
    kept: dict[Slot, float] = {}
    for (request_id, person, week), fte in allocations.items():
        request, member = state.requests.get(request_id), state.people.get(person)
        if request is not None and member is not None and request.share(week) < 1.0:
            fte = min(fte, available_to(request, member, week))
        if fte > TOLERANCE:
            kept[(request_id, person, week)] = round(fte, 6)
    return kept


def resolve(
    state: AllocationState,
    affected_weeks: Iterable[str] | None,
    *,
    move_penalty: float = DEFAULT_MOVE_PENALTY,
    time_limit: float = 10.0,
) -> Resolution:
    """Re-solve the affected weeks (None: all) and say what changed for whom.

    Requests never decided are always solved over all their planned weeks, so each new request
    gets its decision whatever else triggered the run.
    """
    all_planned = {week for request in state.requests.values() for week in request.planned}
    scope = set(all_planned) if affected_weeks is None else set(affected_weeks) & all_planned
    for request in state.requests.values():
        if not request.decided:
            scope.update(request.planned)
    weights = request_weights(state)
    planned = solver_demands(state, scope, weights)
    demands, request_of = planned.demands, planned.request_of
    in_scope = set(request_of.values())
    people = [
        Person(
            resource_id=member.resource_id,
            skills=member.skill_keys | planned.extra_skills.get(member.resource_id, set()),
            capacity={week: member.capacity_in(week) for week in scope},
        )
        for member in state.people.values()
    ]

    def solved_here(slot: Slot) -> bool:
        request_id, _, week = slot
        if request_id in in_scope and week not in state.requests[request_id].planned:
            # A week the request no longer has (e.g. one holding only a weekend, from before
            # demand was counted on working days): what it holds there is released.
            return True
        # Allocations of requests no longer known in scope weeks are released too.
        return week in scope and (request_id in in_scope or request_id not in state.requests)

    existing = {slot: fte for slot, fte in state.allocations.items() if solved_here(slot)}
    segment_of = {
        (request, week): segment for segment, request, week in _segment_weeks(demands, request_of)
    }
    solved = solve(
        AllocationProblem(
            people=people,
            demands=demands,
            existing={
                (segment_of[(r, w)], p, w): fte
                for (r, p, w), fte in existing.items()
                if (r, w) in segment_of
            },
            move_penalty=move_penalty,
        ),
        time_limit=time_limit,
    )
    solution = replace(
        solved,
        allocations=on_own_days(
            state,
            {(request_of[r], p, w): fte for (r, p, w), fte in solved.allocations.items()},
        ),
        moved=frozenset((request_of[r], p) for r, p in solved.moved),
    )
    allocations = {slot: fte for slot, fte in state.allocations.items() if not solved_here(slot)}
    allocations.update(solution.allocations)

    before = Explainer(state.requests, state.people, state.standings, weights, state.allocations)
    after = Explainer(state.requests, state.people, state.standings, weights, allocations)
    outcomes = {
        request.request_id: after.outcome(request)
        for request in state.requests.values()
        if request.planned or not request.decided
    }
    decided = tuple(sorted(r for r, request in state.requests.items() if not request.decided))
    changed = []
    for request_id in sorted(in_scope):
        request = state.requests[request_id]
        if not request.decided:
            continue
        # The lines alone tell whether it changed; the words only for those that did.
        if before.lines(request) != outcomes[request_id].assignments:
            changed.append(RequestChange(request_id, before.outcome(request), outcomes[request_id]))
    return Resolution(
        allocations=allocations,
        outcomes=outcomes,
        decided=decided,
        changed=tuple(changed),
        conflicts=tuple(after.conflicts()),
        solution=solution,
        scope=tuple(sorted(scope)),
        weights=weights,
    )


def with_standings(
    state: AllocationState, standings: Mapping[str, ProjectStanding]
) -> AllocationState:
    """The state under other project standings (a draft strategy or lifecycle, for what-if)."""
    return replace(state, standings={**state.standings, **standings})


def with_requests(state: AllocationState, requests: Iterable[OpenRequest]) -> AllocationState:
    """The state with more requests (hypothetical ones, for what-if)."""
    return replace(state, requests={**state.requests, **{r.request_id: r for r in requests}})
