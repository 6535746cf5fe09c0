"""One re-resolution: from the portfolio as it stands to allocations, decisions and conflicts."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace

from services.allocation.domain.components import component_labels_of
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
    solved: frozenset[str] | None = None
    """The requests of the components solved and explained (None: the whole book); the
    conflicts of the others stand as published."""


def request_weights(state: AllocationState) -> dict[str, float]:
    """Each request's priority level (see priority.py); 0 for projects that hold nobody."""
    # Each project's standing once (a book holds tens of thousands of requests of a few hundred
    # projects): its key, and whether it holds people.
    of_project: dict[str, tuple[tuple[int, int, float], bool]] = {}
    for project_id in {request.project_id for request in state.requests.values()}:
        standing = state.standing(project_id)
        of_project[project_id] = (standing.priority_key(), standing.holds_people)
    keys = {
        request.request_id: (*of_project[request.project_id][0], request.hint)
        for request in state.requests.values()
    }
    levels = priority_levels(keys.values())
    return {
        request.request_id: float(levels[key]) if of_project[request.project_id][1] else 0.0
        for key, request in zip(keys.values(), state.requests.values(), strict=True)
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


@dataclass(frozen=True)
class BookParts:
    """The book's connected components (see `book_parts`)."""

    label: dict[str, int]
    """Request -> its component."""
    cell: dict[tuple[str, str], int]
    """(person, week) -> its component, for the cells some request may use or holds."""
    staffed: frozenset[int]
    """The components with anyone to allocate or anything held: the only ones to solve."""


def book_parts(state: AllocationState) -> BookParts:
    """The connected components of the book: the label of each request and of each (person,
    week) cell, two requests sharing a label exactly when a chain of people and weeks joins
    them.

    A request is joined to every cell of the people it may use (its skill's, or the one it
    names) in its planned weeks where they have capacity, and to every cell it holds. Requests
    of different components compete for nothing: the solver's flow, each decision's words
    (its rivals are the holders of its people in its weeks) and each conflict stay inside one
    component, so a component can be solved and explained alone. Requests asking one pool in
    one week are joined through a node of that (pool, week), not pairwise, so the graph is
    linear in requests x weeks plus people x weeks.
    """
    ids = list(state.requests)
    index = {request_id: node for node, request_id in enumerate(ids)}
    nodes = len(ids)
    cells: dict[tuple[str, str], int] = {}
    pool_weeks: dict[tuple[str, str, str], int | None] = {}
    by_skill: dict[str, list[PoolMember]] = defaultdict(list)
    for member in state.people.values():
        for key in member.skill_keys:
            by_skill[key].append(member)
    # The links as two flat lists of node numbers (tails, heads): tens of thousands of them.
    tails: list[int] = []
    heads: list[int] = []

    def cell(person: str, week: str) -> int:
        nonlocal nodes
        found = cells.get((person, week))
        if found is None:
            found = cells[(person, week)] = nodes
            nodes += 1
        return found

    def pool_week(request: OpenRequest, week: str) -> int | None:
        nonlocal nodes
        if request.named_resource is not None:
            key = ("named", request.named_resource, week)
        else:
            key = ("skill", request.skill.casefold(), week)
        if key in pool_weeks:
            return pool_weeks[key]
        if request.named_resource is not None:
            named = state.people.get(request.named_resource)
            members = [] if named is None else [named]
        else:
            members = by_skill.get(key[1], [])
        staffed = [m.resource_id for m in members if m.capacity_in(week) > TOLERANCE]
        found = None
        if staffed:
            found = nodes
            nodes += 1
            tails.extend([found] * len(staffed))
            heads.extend(cell(person, week) for person in staffed)
        pool_weeks[key] = found
        return found

    # Most requests share their pool and weeks with many others: their joints are found once.
    joints_of: dict[tuple[str | None, str, tuple[str, ...]], list[int]] = {}
    linked: set[int] = set()
    for node, request in enumerate(state.requests.values()):
        shape = (request.named_resource, request.skill.casefold(), request.planned)
        joints = joints_of.get(shape)
        if joints is None:
            found = (pool_week(request, week) for week in request.planned)
            joints = joints_of[shape] = [joint for joint in found if joint is not None]
        if joints:
            linked.add(node)
            tails.extend([node] * len(joints))
            heads.extend(joints)
    for request_id, person, week in state.allocations:
        holder = index.get(request_id)
        if holder is not None:
            linked.add(holder)
            tails.append(holder)
            heads.append(cell(person, week))
    labels = component_labels_of(nodes, tails, heads)
    return BookParts(
        label={request_id: labels[node] for request_id, node in index.items()},
        cell={key: labels[node] for key, node in cells.items()},
        staffed=frozenset(labels[node] for node in linked),
    )


def _released(state: AllocationState, slot: Slot) -> bool:
    """An allocation no solve keeps: of a request no longer known, or in a week its request no
    longer has (e.g. one holding only a weekend, from before demand was counted on working
    days)."""
    request = state.requests.get(slot[0])
    return request is None or slot[2] not in request.planned


def _merged(solutions: list[Solution]) -> Solution:
    """The components' solutions as one (the first status that is not optimal, if any)."""
    if len(solutions) == 1:
        return solutions[0]
    statuses = [s.status for s in solutions if s.status != "optimal"]
    greedy = [s.greedy_value for s in solutions if s.greedy_value is not None]
    methods = {s.method for s in solutions}
    return Solution(
        allocations={slot: fte for s in solutions for slot, fte in s.allocations.items()},
        value=sum(s.value for s in solutions),
        moved=frozenset().union(*(s.moved for s in solutions)),
        method="flow" if methods <= {"flow"} else "greedy",
        status=statuses[0] if statuses else "optimal",
        seconds=sum(s.seconds for s in solutions),
        mip_gap=max((s.mip_gap for s in solutions), default=0.0),
        greedy_value=sum(greedy) if greedy else None,
        moved_fte_weeks=sum(s.moved_fte_weeks for s in solutions),
    )


def _solve_part(
    state: AllocationState,
    members: list[str],
    weights: Mapping[str, float],
    arrival_rank: Mapping[int, int],
    *,
    move_penalty: float,
    time_limit: float,
) -> Solution:
    """One component solved alone, built only from what it holds, so that its answer is the
    same whichever other components are solved in the same resolution."""
    part = replace(state, requests={r: state.requests[r] for r in members})
    scope = {week for request in part.requests.values() for week in request.planned}
    planned = solver_demands(part, scope, weights)
    demands = [replace(d, arrival=arrival_rank[d.arrival]) for d in planned.demands]
    request_of = planned.request_of
    # The people any of its requests may use, in the pool's order (who else there is does not
    # change this component's flow).
    wanted = {r.named_resource for r in part.requests.values() if r.named_resource is not None}
    skills = {r.skill.casefold() for r in part.requests.values() if r.named_resource is None}
    people = [
        Person(
            resource_id=member.resource_id,
            skills=member.skill_keys | planned.extra_skills.get(member.resource_id, set()),
            capacity={week: member.capacity_in(week) for week in scope},
        )
        for member in state.people.values()
        if member.resource_id in wanted or not member.skill_keys.isdisjoint(skills)
    ]
    segment_of = {
        (request, week): segment for segment, request, week in _segment_weeks(demands, request_of)
    }
    solved = solve(
        AllocationProblem(
            people=people,
            demands=demands,
            existing={
                (segment_of[(r, w)], p, w): fte
                for (r, p, w), fte in state.allocations.items()
                if r in part.requests and (r, w) in segment_of
            },
            move_penalty=move_penalty,
            arrival_span=len(arrival_rank),
        ),
        time_limit=time_limit,
    )
    return replace(
        solved,
        allocations=on_own_days(
            state,
            {(request_of[r], p, w): fte for (r, p, w), fte in solved.allocations.items()},
        ),
        moved=frozenset((request_of[r], p) for r, p in solved.moved),
    )


def resolve(
    state: AllocationState,
    affected_weeks: Iterable[str] | None,
    *,
    move_penalty: float = DEFAULT_MOVE_PENALTY,
    time_limit: float = 10.0,
    explain_all: bool = False,
) -> Resolution:
    """Re-solve what the affected weeks (None: all) and the new requests touch, and say what
    changed for whom.

    The book falls apart into connected components (`book_parts`): requests that share no
    person in any week compete for nothing. A resolution solves, over all their planned weeks,
    every component holding a request never decided (so each new request gets its decision
    whatever else triggered the run), a request with a planned week among `affected_weeks`,
    or an allocation that is released (see `_released`); the others keep what they hold, and
    their decisions and conflicts stand. Each component is solved on its own, from its own
    requests and people only (the arrival tie-break ranked in the whole book), so the answer
    is the same as `resolve(state, None)` (every component) gives: a component left alone
    keeps what a solve would give it, since re-solving it with what it holds in force moves
    nothing (keeping a held FTE-week earns the move penalty, 0.05 by default, above what the
    arrival and specialist tie-breaks together can gain by moving it, 0.04).

    Cost: a new request costs its component, not the book. `explain_all` explains every
    request and conflict of the book (what-if shows them all); otherwise only those of the
    components solved.
    """
    parts_of = book_parts(state)
    label_of, cell_label = parts_of.label, parts_of.cell
    if affected_weeks is None:
        touched = set(label_of.values())
    else:
        weeks = set(affected_weeks)
        touched = {
            label_of[r]
            for r, request in state.requests.items()
            if not request.decided or not weeks.isdisjoint(request.planned)
        }
    for slot in state.allocations:
        if _released(state, slot):
            # What it frees may serve its cell's component.
            touched.add(cell_label[(slot[1], slot[2])])
            if slot[0] in label_of:
                touched.add(label_of[slot[0]])
    parts: dict[int, list[str]] = defaultdict(list)
    for request_id, label in label_of.items():
        if label in touched:
            parts[label].append(request_id)
    in_scope = {request_id for members in parts.values() for request_id in members}
    weights = request_weights(state)
    arrival_rank = {
        arrival: rank
        for rank, arrival in enumerate(sorted({r.arrival for r in state.requests.values()}))
    }
    started = time.perf_counter()
    solutions: list[Solution] = []
    for label, members in parts.items():
        if label not in parts_of.staffed:
            continue  # nobody to allocate and nothing held: its requests get nothing
        solutions.append(
            _solve_part(
                state,
                members,
                weights,
                arrival_rank,
                move_penalty=move_penalty,
                time_limit=max(time_limit - (time.perf_counter() - started), 0.0),
            )
        )
    solution = (
        _merged(solutions)
        if solutions
        else Solution(
            allocations={},
            value=0.0,
            moved=frozenset(),
            method="flow",
            status="optimal",
            seconds=0.0,
        )
    )

    def solved_here(slot: Slot) -> bool:
        return slot[0] in in_scope or _released(state, slot)

    allocations = {slot: fte for slot, fte in state.allocations.items() if not solved_here(slot)}
    allocations.update(solution.allocations)

    explained = (
        state.requests
        if explain_all
        else {r: request for r, request in state.requests.items() if r in in_scope}
    )

    def of_explained(source: Mapping[Slot, float]) -> Mapping[Slot, float]:
        if explain_all:
            return source
        return {slot: fte for slot, fte in source.items() if slot[0] in in_scope}

    before = Explainer(
        explained, state.people, state.standings, weights, of_explained(state.allocations)
    )
    after = Explainer(explained, state.people, state.standings, weights, of_explained(allocations))
    outcomes = {
        request.request_id: after.outcome(request)
        for request in explained.values()
        if request.planned or not request.decided
    }
    decided = tuple(sorted(r for r, request in state.requests.items() if not request.decided))
    changed = []
    for request_id in sorted(in_scope):
        request = state.requests[request_id]
        if not request.decided or not request.planned:
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
        scope=tuple(sorted({week for r in in_scope for week in state.requests[r].planned})),
        weights=weights,
        solved=None if affected_weeks is None or explain_all else frozenset(in_scope),
    )


def with_standings(
    state: AllocationState, standings: Mapping[str, ProjectStanding]
) -> AllocationState:
    """The state under other project standings (a draft strategy or lifecycle, for what-if)."""
    return replace(state, standings={**state.standings, **standings})


def with_requests(state: AllocationState, requests: Iterable[OpenRequest]) -> AllocationState:
    """The state with more requests (hypothetical ones, for what-if)."""
    return replace(state, requests={**state.requests, **{r.request_id: r for r in requests}})
