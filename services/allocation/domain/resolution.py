"""One re-resolution: from the portfolio as it stands to allocations, decisions and conflicts."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from services.allocation.domain.decisions import (
    Conflict,
    Explainer,
    OpenRequest,
    Outcome,
    PoolMember,
)
from services.allocation.domain.priority import ProjectStanding, priority_levels
from services.allocation.domain.solver import (
    DEFAULT_MOVE_PENALTY,
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


def solver_demands(
    state: AllocationState, scope: Collection[str], weights: Mapping[str, float]
) -> tuple[list[Demand], dict[str, str]]:
    """The solver's demands for the weeks in `scope`, and the request each one belongs to.

    The solver asks the same FTE of a demand in each of its weeks, while a request asks less in
    a week it covers only partly (it starts or ends mid-week). Such a request becomes one demand
    per distinct weekly figure: the one with the most weeks keeps the request's id, the others
    get an id of their own (mapped back to the request on the way out).
    """
    demands: list[Demand] = []
    request_of: dict[str, str] = {}
    for request in state.requests.values():
        weeks = [week for week in request.planned if week in scope]
        if not weeks:
            continue
        by_fte: dict[float, list[str]] = {}
        for week in weeks:
            by_fte.setdefault(request.fte_in(week), []).append(week)
        main = max(by_fte, key=lambda fte: (len(by_fte[fte]), fte))
        for fte, group in by_fte.items():
            segment = request.request_id
            if fte != main:
                segment = f"{request.request_id} @ {group[0]}"
                while segment in state.requests or segment in request_of:
                    segment += "'"
            request_of[segment] = request.request_id
            demands.append(
                Demand(
                    request_id=segment,
                    project_id=request.project_id,
                    skill=request.skill.casefold(),
                    fte=fte,
                    weeks=tuple(group),
                    weight=weights[request.request_id],
                    named_resource=request.named_resource,
                    arrival=request.arrival,
                )
            )
    return demands, request_of


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
    demands, request_of = solver_demands(state, scope, weights)
    in_scope = set(request_of.values())
    people = [
        Person(
            resource_id=member.resource_id,
            skills=member.skill_keys,
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
        allocations={(request_of[r], p, w): fte for (r, p, w), fte in solved.allocations.items()},
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
        old = before.outcome(request)
        if not old.same_allocation(outcomes[request_id]):
            changed.append(RequestChange(request_id, old, outcomes[request_id]))
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
