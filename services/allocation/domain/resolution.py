"""One re-resolution: from the portfolio as it stands to allocations, decisions and conflicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    demands = [
        Demand(
            request_id=request.request_id,
            project_id=request.project_id,
            skill=request.skill.casefold(),
            fte=request.fte,
            weeks=tuple(week for week in request.planned if week in scope),
            weight=weights[request.request_id],
            named_resource=request.named_resource,
            arrival=request.arrival,
        )
        for request in state.requests.values()
        if any(week in scope for week in request.planned)
    ]
    in_scope = {demand.request_id for demand in demands}
    people = [
        Person(
            resource_id=member.resource_id,
            skills=member.skill_keys,
            capacity={week: member.capacity_in(week) for week in scope},
        )
        for member in state.people.values()
    ]

    def solved_here(slot: Slot) -> bool:
        # Allocations of requests no longer known in scope weeks are released too.
        return slot[2] in scope and (slot[0] in in_scope or slot[0] not in state.requests)

    existing = {slot: fte for slot, fte in state.allocations.items() if solved_here(slot)}
    solution = solve(
        AllocationProblem(
            people=people,
            demands=demands,
            existing={s: f for s, f in existing.items() if s[0] in in_scope},
            move_penalty=move_penalty,
        ),
        time_limit=time_limit,
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
