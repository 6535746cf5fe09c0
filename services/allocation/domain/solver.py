"""Who works on what, week by week: the allocation solved exactly as a min-cost flow.

The model, for the weeks being (re-)solved, in each week w:

    x[r,p,w] >= 0   FTE of person p on request r (p eligible: has r's skill, or is the person r
                    names; w one of r's weeks; p has capacity in w)

    maximise   sum (weight[r] + tie[r,p]) * x[r,p,w]  +  penalty * sum min(x[r,p,w], a[r,p,w])
    subject to sum_p x[r,p,w] <= fte[r]              (never more than requested)
               sum_r x[r,p,w] <= capacity[p,w]       (never over capacity)

`a` is what is held in force. `weight` is the request's priority level (1 = lowest; see
priority.py): one level is worth one FTE-week, so a higher-priority request wins a unit of
contested capacity. `tie` (below 0.1 in all) prefers, among equally good answers, the person who
already holds the request, then the earlier request, then the most specialised person
(generalists stay free) and, among those, the one who can cover most of the request's weeks, so
one person tends to stay on a request. Stability is a cost per FTE-week moved: keeping a held
FTE-week earns `penalty` (PMO_ALLOCATION_MOVE_PENALTY, default 0.05), so among equally good
answers the one moving the least work wins, and a gain smaller than the penalty per FTE-week
never moves anyone (a penalty above 1.1 keeps a request one level up from displacing anybody).
Ties and penalty are fractions of a level, yet along a long chain of swaps they could add up to
one: `priority_bound` gives the best priority-weighted value any allocation reaches, and the
tests (generated portfolios, against an LP) and the benchmark (every size) check that the
flow's value equals it.

Each week is then a transportation problem, i.e. a min-cost flow: request-week -> person-week
(the held part of an allocation on a parallel arc that also earns the penalty) -> sink, and
request-week -> sink for what stays unserved. Weeks share nothing, so each is solved on its own
by OR-Tools' `SimpleMinCostFlow` in integer units (the coarsest of 1 .. 0.0001 FTE that holds
every amount exactly; integral by construction) and integer costs (1e-6 of a level): exact, so
every answer is proven optimal (OR-Tools must report each week OPTIMAL). The model is built with
numpy arrays (eligible pairs per skill pool, one lexsort for the tie-break order, one bincount
for coverage). A time limit still bounds the whole: weeks not reached in time get the greedy
rule's answer (never at the sizes measured on a quiet machine, see
bench/results/allocation.md), as does everything should OR-Tools fail; greedy runs only then.

What a flow cannot express, and why it is not wanted: the previous MILP (kept here as
`solve_milp`, the reference in tests and the benchmark) charged a fixed penalty per moved
(request, person) allocation, whatever its size. That is a binary per allocation, linking all of
its weeks, so no flow; its MILP took 25 s (120 s after a re-ranking) at 2,000 requests x 500
people and fell back to greedy at the default time limit. The cost per FTE-week moved keeps the
stability a PMO asks for (a re-ranking moves only what serves a higher priority, measured in the
work moved, the unit the PMO reasons in) and is exact in about one to one and a half seconds of
CPU at that size. The benchmark shows what the fixed charge would change: for the same
priority-weighted value it touches half to three quarters as many allocations, taking between
6% fewer and 49% more FTE-weeks from them; a PMO wanting fewer moves raises the penalty
instead. There is no all-weeks-or-nothing rule: requests are fulfilled partially, week by week,
and the explanations say which weeks.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import highspy
import numpy as np

from services.allocation.domain.components import component_labels

Slot = tuple[str, str, str]
"""(request_id, resource_id, week)."""

DEFAULT_MOVE_PENALTY = 0.05
TOLERANCE = 1e-6
MIP_RELATIVE_GAP = 1e-5
# Tie-breaks, in weighted FTE-weeks per FTE-week; together below 0.1 of one priority level.
HOLDER_TIE = 0.05
ARRIVAL_TIE = 0.02
SPECIALIST_TIE = 0.02


@dataclass(frozen=True)
class Person:
    """A person (or team) in the pool as the solver sees them."""

    resource_id: str
    skills: frozenset[str]
    capacity: Mapping[str, float]
    """FTE available per ISO week (missing weeks: none)."""

    def capacity_in(self, week: str) -> float:
        return self.capacity.get(week, 0.0)


@dataclass(frozen=True)
class Demand:
    """A request, restricted to the weeks this solve may change."""

    request_id: str
    project_id: str
    skill: str
    fte: float
    """Asked for in each week."""
    weeks: tuple[str, ...]
    weight: float
    """Priority level; 0 means the project holds no people (on hold, completed, terminated)."""
    named_resource: str | None = None
    arrival: int = 0
    """Order of arrival, lower first: decides between new requests of equal priority."""

    def may_use(self, person: Person) -> bool:
        """A named request wants that person only; otherwise anyone with the skill will do."""
        if self.named_resource is not None:
            return person.resource_id == self.named_resource
        return self.skill in person.skills


@dataclass(frozen=True)
class AllocationProblem:
    people: Sequence[Person]
    demands: Sequence[Demand]
    existing: Mapping[Slot, float] = field(default_factory=dict)
    """The allocations in force in the weeks being solved."""
    move_penalty: float = DEFAULT_MOVE_PENALTY
    """Priority levels per FTE-week moved (the flow); per moved allocation in `solve_milp`."""
    arrival_span: int | None = None
    """When given, the demands' `arrival` is a rank among this many arrivals (the whole book's,
    not only this problem's): the arrival tie-break then gives a request the same value whatever
    else is solved with it, so solving a part of the book alone gives it what solving the whole
    gives it (see resolution.resolve). None: ranked among this problem's demands."""


@dataclass(frozen=True)
class Solution:
    allocations: dict[Slot, float]
    value: float
    """Strategy-weighted fulfilled demand: sum of weight x FTE-weeks."""
    moved: frozenset[tuple[str, str]]
    """Existing (request, person) allocations this solution reduces."""
    method: str
    """"flow" (exact min-cost flow), "greedy", or "milp" (the fixed-charge reference)."""
    status: str
    """"optimal", "time_limit..." (best found; see mip_gap) or why the fallback was used."""
    seconds: float
    mip_gap: float = 0.0
    """The solver's own relative gap to its bound: 0 when proven optimal, 1 when part of the
    answer is greedy's (no bound known for that part)."""
    greedy_value: float | None = None
    """What the greedy rule achieved on the same problem, when it ran (fallback, benchmark)."""
    moved_fte_weeks: float = 0.0
    """The held FTE-weeks this solution takes away (the flow's measure of stability)."""

    def objective(self, move_penalty: float) -> float:
        """Value less the penalty per FTE-week moved: what the flow maximises, without ties."""
        return self.value - move_penalty * self.moved_fte_weeks


def evaluate(
    problem: AllocationProblem, allocations: Mapping[Slot, float]
) -> tuple[float, frozenset[tuple[str, str]]]:
    """The weighted value of an allocation and the existing allocations it moves."""
    weight = {demand.request_id: demand.weight for demand in problem.demands}
    value = sum(weight.get(slot[0], 0.0) * fte for slot, fte in allocations.items())
    moved = frozenset(
        (request, person)
        for (request, person, week), held in problem.existing.items()
        if held > TOLERANCE and allocations.get((request, person, week), 0.0) < held - TOLERANCE
    )
    return value, moved


def moved_volume(problem: AllocationProblem, allocations: Mapping[Slot, float]) -> float:
    """The held FTE-weeks an allocation takes away (what the flow's penalty counts)."""
    return sum(
        max(held - allocations.get(slot, 0.0), 0.0)
        for slot, held in problem.existing.items()
        if held > TOLERANCE
    )


def check_feasible(problem: AllocationProblem, allocations: Mapping[Slot, float]) -> list[str]:
    """Every way `allocations` breaks the rules (empty when feasible): for tests and guards."""
    problems: list[str] = []
    people = {person.resource_id: person for person in problem.people}
    demands = {demand.request_id: demand for demand in problem.demands}
    per_request: dict[tuple[str, str], float] = defaultdict(float)
    per_person: dict[tuple[str, str], float] = defaultdict(float)
    for (request, person, week), fte in allocations.items():
        demand, who = demands.get(request), people.get(person)
        if fte < -TOLERANCE:
            problems.append(f"{request}/{person}/{week}: negative {fte}")
        if demand is None or who is None:
            problems.append(f"{request}/{person}/{week}: unknown request or person")
            continue
        if week not in demand.weeks:
            problems.append(f"{request}/{person}/{week}: outside the request's weeks")
        if not demand.may_use(who):
            problems.append(f"{request}/{person}/{week}: {person} is not eligible")
        if demand.weight <= 0 and fte > TOLERANCE:
            problems.append(f"{request}/{person}/{week}: its project holds no people")
        per_request[(request, week)] += fte
        per_person[(person, week)] += fte
    for (request, week), total in per_request.items():
        if total > demands[request].fte + TOLERANCE:
            problems.append(f"{request} in {week}: {total} > requested {demands[request].fte}")
    for (person, week), total in per_person.items():
        if total > people[person].capacity_in(week) + TOLERANCE:
            problems.append(
                f"{person} in {week}: {total} > capacity {people[person].capacity_in(week)}"
            )
    return problems


# --- greedy ------------------------------------------------------------------------------------


def solve_greedy(problem: AllocationProblem, *, order: str = "priority") -> Solution:
    """A fast rule that never revisits a decision: the fallback, and the MILP's first incumbent.

    `order="priority"`, in four passes over the requests, highest weight first (earlier arrival
    breaking ties): (1) each keeps what it already holds, as far as capacity and its demand
    allow; (2) each takes free capacity, from the most specialised people first; (3) each still
    short takes from requests of lower weight, the lowest first; (4) those who lost take free
    capacity again. Keeping comes first, so a re-ranking moves only what it must.
    `order="arrival"`: first come, first served, ignoring priority and what is held (what a
    PMO without this system gets; the benchmark's baseline).
    """
    started = time.perf_counter()
    greedy = _Greedy(problem)
    if order == "priority":
        ordered = sorted(problem.demands, key=lambda d: (-d.weight, d.arrival, d.request_id))
        live = [demand for demand in ordered if demand.weight > 0]
        greedy.keep(live)
        greedy.fill(live)
        greedy.preempt(live)
        greedy.fill(live)
    else:
        arrived = sorted(problem.demands, key=lambda d: (d.arrival, d.request_id))
        greedy.fill([demand for demand in arrived if demand.weight > 0])
    allocations = {
        slot: round(fte, 6) for slot, fte in greedy.allocations.items() if fte > TOLERANCE
    }
    value, moved = evaluate(problem, allocations)
    return Solution(
        allocations=allocations,
        value=value,
        moved=moved,
        method="greedy",
        status="heuristic",
        seconds=time.perf_counter() - started,
        greedy_value=value,
        moved_fte_weeks=moved_volume(problem, allocations),
    )


class _Greedy:
    """The greedy rule's working state: what is allocated and what capacity is left."""

    def __init__(self, problem: AllocationProblem) -> None:
        self.problem = problem
        self.people = {person.resource_id: person for person in problem.people}
        self.candidates = _candidates(problem)
        self.remaining = {
            (person.resource_id, week): person.capacity_in(week)
            for person in problem.people
            for week in person.capacity
        }
        self.allocations: dict[Slot, float] = defaultdict(float)
        self.holders: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
        self.weight = {demand.request_id: demand.weight for demand in problem.demands}
        # What each request has in each week, kept up to date rather than summed when needed.
        self.got: dict[tuple[str, str], float] = defaultdict(float)
        self.held: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
        for (request, resource_id, week), fte in sorted(problem.existing.items()):
            if fte > TOLERANCE:
                self.held[(request, week)].append((resource_id, fte))
        self.fill_order: dict[str, list[Person]] = {}
        weeks = sorted({week for demand in problem.demands for week in demand.weeks})
        self.week_column = {week: index for index, week in enumerate(weeks)}
        self.person_row = {person.resource_id: row for row, person in enumerate(problem.people)}
        self.capacity = np.array(
            [[person.capacity_in(week) for week in weeks] for person in problem.people],
            dtype=float,
        ).reshape(len(problem.people), len(weeks))

    def _give(self, demand: Demand, resource_id: str, week: str, fte: float) -> None:
        self.allocations[(demand.request_id, resource_id, week)] += fte
        self.remaining[(resource_id, week)] -= fte
        held = self.holders[(resource_id, week)]
        held[demand.request_id] = held.get(demand.request_id, 0.0) + fte
        self.got[(demand.request_id, week)] += fte

    def _short(self, demand: Demand, week: str) -> float:
        return demand.fte - self.got.get((demand.request_id, week), 0.0)

    def keep(self, ordered: Sequence[Demand]) -> None:
        for demand in ordered:
            eligible = {person.resource_id for person in self.candidates[demand.request_id]}
            for week in demand.weeks:
                need = demand.fte
                for resource_id, held in self.held.get((demand.request_id, week), ()):
                    if resource_id not in eligible:
                        continue
                    take = min(held, need, self.remaining.get((resource_id, week), 0.0))
                    if take > TOLERANCE:
                        self._give(demand, resource_id, week, take)
                        need -= take

    def _fill_order(self, demand: Demand) -> list[Person]:
        """The most specialised people first, then who covers most of the request's weeks."""
        if demand.request_id not in self.fill_order:
            people = self.candidates[demand.request_id]
            rows = [self.person_row[person.resource_id] for person in people]
            columns = [self.week_column[week] for week in demand.weeks]
            # How much of the request's period each could cover alone (as `_coverage`).
            coverage = np.round(
                np.minimum(self.capacity[np.ix_(rows, columns)], demand.fte).sum(axis=1), 9
            ).tolist()
            order = sorted(
                range(len(people)),
                key=lambda i: (len(people[i].skills), -coverage[i], people[i].resource_id),
            )
            self.fill_order[demand.request_id] = [people[i] for i in order]
        return self.fill_order[demand.request_id]

    def fill(self, ordered: Sequence[Demand]) -> None:
        for demand in ordered:
            people = self._fill_order(demand)
            for week in demand.weeks:
                need = self._short(demand, week)
                for person in people:
                    if need <= TOLERANCE:
                        break
                    take = min(need, self.remaining.get((person.resource_id, week), 0.0))
                    if take > TOLERANCE:
                        self._give(demand, person.resource_id, week, take)
                        need -= take

    def preempt(self, ordered: Sequence[Demand]) -> None:
        for demand in ordered:
            for week in demand.weeks:
                need = self._short(demand, week)
                if need <= TOLERANCE:
                    continue
                victims = sorted(
                    (
                        (self.weight[other], other, person.resource_id, fte)
                        for person in self.candidates[demand.request_id]
                        for other, fte in self.holders[(person.resource_id, week)].items()
                        if self.weight[other] < demand.weight and fte > TOLERANCE
                    ),
                    key=lambda victim: (victim[0], victim[1], victim[2]),
                )
                for _, other, resource_id, fte in victims:
                    if need <= TOLERANCE:
                        break
                    take = min(need, fte)
                    self.allocations[(other, resource_id, week)] -= take
                    self.holders[(resource_id, week)][other] -= take
                    self.got[(other, week)] -= take
                    self.remaining[(resource_id, week)] += take
                    self._give(demand, resource_id, week, take)
                    need -= take


# --- min-cost flow -----------------------------------------------------------------------------

COST_SCALE = 1_000_000
"""Integer cost per flow unit and priority level: ties and the penalty are exact to 1e-6 level."""
FINEST_UNIT_DECIMALS = 4
"""Flow units are the coarsest of 1, 0.1, .., 0.0001 FTE holding every amount exactly (the
services round to 0.0001 FTE); an amount finer than that is floored, so no limit is exceeded."""


@dataclass(frozen=True)
class _WeekFlow:
    """One week's transportation problem as OR-Tools takes it (local node numbers)."""

    week: str
    served: np.ndarray
    """The network's served-arc numbers of this week's first arcs, in order."""
    tails: np.ndarray
    heads: np.ndarray
    capacities: np.ndarray
    costs: np.ndarray
    supplies: np.ndarray


@dataclass(frozen=True)
class _Network:
    """The allocation as min-cost flows, in arrays (see the module docstring).

    Served arcs: `base` ones, one per request-week and eligible person with capacity there,
    then `held` ones parallel to the base arcs of allocations in force, carrying up to the held
    amount at the stability bonus on top.
    """

    scale: int
    """Flow units per FTE."""
    request_ids: list[str]
    resource_ids: list[str]
    weeks: list[str]
    pair_request: np.ndarray
    """Per eligible (request, person) pair: index into request_ids."""
    pair_person: np.ndarray
    pair_value: np.ndarray
    """Per pair: integer value per flow unit (weight and tie-breaks times COST_SCALE)."""
    base_pair: np.ndarray
    """Per base arc: its pair."""
    base_week: np.ndarray
    held_arc: np.ndarray
    """Per held arc: the base arc it parallels."""
    held_units: np.ndarray
    penalty: int
    """Integer bonus per flow unit kept of what is held (the move penalty times COST_SCALE)."""
    by_week: list[_WeekFlow]

    def slot(self, arc: int) -> Slot:
        pair = int(self.base_pair[arc])
        return (
            self.request_ids[int(self.pair_request[pair])],
            self.resource_ids[int(self.pair_person[pair])],
            self.weeks[int(self.base_week[arc])],
        )


def _flow_scale(values: np.ndarray) -> int:
    for decimals in range(FINEST_UNIT_DECIMALS + 1):
        scaled = values * 10**decimals
        if np.all(np.abs(scaled - np.round(scaled)) < 1e-6):
            return int(10**decimals)
    return int(10**FINEST_UNIT_DECIMALS)


def _units(values: np.ndarray, scale: int) -> np.ndarray:
    """FTE to flow units, never rounding up."""
    return np.floor(np.asarray(values, dtype=float) * scale + 1e-6).astype(np.int64)


def _network(problem: AllocationProblem, *, priority_only: bool = False) -> _Network:
    """Build the flows with numpy: Python loops only over requests and held allocations.

    `priority_only` leaves out the tie-breaks and the stability bonus (see `priority_bound`).
    """
    live = [d for d in problem.demands if d.weight > 0 and d.fte > TOLERANCE and d.weeks]
    people = list(problem.people)
    n_people = len(people)
    weeks = sorted({week for demand in live for week in demand.weeks})
    n_weeks = len(weeks)
    week_index = {week: index for index, week in enumerate(weeks)}
    person_index = {person.resource_id: index for index, person in enumerate(people)}
    capacity = np.array(
        [[person.capacity_in(week) for week in weeks] for person in people], dtype=float
    ).reshape(n_people, n_weeks)
    fte = np.array([demand.fte for demand in live], dtype=float)
    held_values = np.fromiter(problem.existing.values(), dtype=float, count=len(problem.existing))
    scale = _flow_scale(np.concatenate((fte, capacity.ravel(), held_values)))
    capacity_units = np.maximum(_units(capacity, scale), 0)
    fte_units = _units(fte, scale)

    # Request-weeks, the flow's sources, numbered request by request.
    week_lists = [np.array([week_index[w] for w in d.weeks], dtype=np.int64) for d in live]
    week_counts = np.array([len(w) for w in week_lists], dtype=np.int64)
    dw_start = np.cumsum(week_counts) - week_counts
    empty = np.zeros(0, dtype=np.int64)
    dw_week = np.concatenate(week_lists) if live else empty
    dw_request = np.repeat(np.arange(len(live), dtype=np.int64), week_counts)

    # Eligible (request, person) pairs: requests asking the same pool (a skill, or one named
    # person) get its people in one step.
    by_skill: dict[str, list[int]] = defaultdict(list)
    for index, person in enumerate(people):
        for skill in person.skills:
            by_skill[skill].append(index)
    pools: dict[tuple[bool, str], list[int]] = defaultdict(list)
    for d, demand in enumerate(live):
        if demand.named_resource is not None:
            pools[(True, demand.named_resource)].append(d)
        else:
            pools[(False, demand.skill)].append(d)
    pair_request: list[np.ndarray] = []
    pair_person: list[np.ndarray] = []
    for (named, key), members in pools.items():
        if named:
            found = person_index.get(key)
            candidates = np.array([] if found is None else [found], dtype=np.int64)
        else:
            candidates = np.array(by_skill.get(key, []), dtype=np.int64)
        if len(candidates):
            pair_request.append(np.repeat(np.array(members, dtype=np.int64), len(candidates)))
            pair_person.append(np.tile(candidates, len(members)))
    p_request = np.concatenate(pair_request) if pair_request else empty
    p_person = np.concatenate(pair_person) if pair_person else empty

    def expand(pair_of_request: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every pair over every week of its request (a ragged expansion without a Python
        loop): per arc, its pair and its request-week."""
        counts = week_counts[pair_of_request]
        arc_pair = np.repeat(np.arange(len(pair_of_request), dtype=np.int64), counts)
        arc_dw = (
            dw_start[pair_of_request[arc_pair]]
            + np.arange(len(arc_pair))
            - np.repeat(np.cumsum(counts) - counts, counts)
        )
        return arc_pair, arc_dw

    # Within a request, the most specialised people first, then who could cover most of its
    # weeks alone, then the id: the order the specialist tie-break counts down.
    arc_pair, arc_dw = expand(p_request)
    coverage = np.bincount(
        arc_pair,
        weights=np.minimum(capacity[p_person[arc_pair], dw_week[arc_dw]], fte[p_request[arc_pair]]),
        minlength=len(p_request),
    )
    skill_count = np.array([len(person.skills) for person in people], dtype=np.int64)
    id_rank = np.empty(n_people, dtype=np.int64)
    id_rank[np.argsort(np.array([p.resource_id for p in people], dtype=object))] = np.arange(
        n_people
    )
    order = np.lexsort(
        (id_rank[p_person], -np.round(coverage, 9), skill_count[p_person], p_request)
    )
    p_request, p_person = p_request[order], p_person[order]
    per_request = np.bincount(p_request, minlength=len(live))
    place = np.arange(len(p_request)) - np.searchsorted(p_request, p_request)
    specialist = 1.0 - place / np.maximum(per_request[p_request], 1)
    if problem.arrival_span is not None:
        earlier = 1.0 - np.array([demand.arrival for demand in live], dtype=float) / max(
            problem.arrival_span, 1
        )
    else:
        arrivals = sorted({demand.arrival for demand in live})
        arrival_rank = {arrival: index for index, arrival in enumerate(arrivals)}
        earlier = 1.0 - np.array(
            [arrival_rank[demand.arrival] for demand in live], dtype=float
        ) / max(len(arrivals), 1)
    weight = np.array([demand.weight for demand in live], dtype=float)
    p_float = weight[p_request]
    if not priority_only:
        p_float = p_float + ARRIVAL_TIE * earlier[p_request] + SPECIALIST_TIE * specialist

    # What is held, as indexes (allocations of requests, people or weeks not here are left out).
    request_index = {demand.request_id: d for d, demand in enumerate(live)}
    held_slots = [
        (request_index.get(request), person_index.get(resource), week_index.get(in_week), held)
        for (request, resource, in_week), held in problem.existing.items()
        if held > TOLERANCE
    ]
    held_rows = [row for row in held_slots if None not in row]
    held_request = np.array([row[0] for row in held_rows], dtype=np.int64)
    held_person = np.array([row[1] for row in held_rows], dtype=np.int64)
    held_week = np.array([row[2] for row in held_rows], dtype=np.int64)
    held_fte = np.array([row[3] for row in held_rows], dtype=float)
    holders = [(row[0], row[1]) for row in held_slots if row[0] is not None and row[1] is not None]
    if holders and not priority_only:
        held_pairs = np.array(holders, dtype=np.int64).reshape(-1, 2)
        p_float = p_float + HOLDER_TIE * np.isin(
            p_request * max(n_people, 1) + p_person,
            held_pairs[:, 0] * max(n_people, 1) + held_pairs[:, 1],
        )
    p_value = np.round(p_float * COST_SCALE).astype(np.int64)

    # The arcs: every pair over every week of its request where the person has capacity.
    base_pair, dw = expand(p_request)
    arc_person = p_person[base_pair]
    week = dw_week[dw]
    keep = capacity_units[arc_person, week] > 0
    dw, arc_person, week, base_pair = dw[keep], arc_person[keep], week[keep], base_pair[keep]
    upper = np.minimum(fte_units[dw_request[dw]], capacity_units[arc_person, week])
    value = p_value[base_pair]

    # Held allocations: a parallel arc of the held amount earns the stability bonus.
    held_arc, held_units = empty, empty
    if len(held_rows):
        # Arcs are found by the key (request, week, person), searched in the sorted held keys.
        width = n_weeks * max(n_people, 1)
        keys = held_request * width + held_week * n_people + held_person
        arc_keys = dw_request[dw] * width + week * n_people + arc_person
        key_order = np.argsort(keys)
        position = np.minimum(np.searchsorted(keys, arc_keys, sorter=key_order), len(keys) - 1)
        hit = keys[key_order[position]] == arc_keys
        held_arc = np.flatnonzero(hit)
        held_units = np.minimum(_units(held_fte[key_order[position[hit]]], scale), upper[held_arc])
    base_upper = upper.copy()
    np.subtract.at(base_upper, held_arc, held_units)
    penalty = 0 if priority_only else round(problem.move_penalty * COST_SCALE)

    # One transportation problem per week, nodes numbered locally: the week's request-weeks,
    # then every person, then the sink taking what is not served and what is not used.
    served_dw = np.concatenate((dw, dw[held_arc]))
    served_person = np.concatenate((arc_person, arc_person[held_arc]))
    served_capacity = np.concatenate((base_upper, held_units))
    served_cost = np.concatenate((-value, -(value[held_arc] + penalty)))
    served_by_week = np.argsort(np.concatenate((week, week[held_arc])), kind="stable")
    served_bounds = np.searchsorted(
        np.concatenate((week, week[held_arc]))[served_by_week], np.arange(n_weeks + 1)
    )
    dw_by_week = np.argsort(dw_week, kind="stable")
    dw_bounds = np.searchsorted(dw_week[dw_by_week], np.arange(n_weeks + 1))
    dw_local = np.empty(len(dw_week), dtype=np.int64)
    dw_local[dw_by_week] = np.arange(len(dw_week)) - dw_bounds[dw_week[dw_by_week]]
    dw_units = fte_units[dw_request]
    by_week = []
    for w, name in enumerate(weeks):
        served = served_by_week[served_bounds[w] : served_bounds[w + 1]]
        sources = dw_by_week[dw_bounds[w] : dw_bounds[w + 1]]
        n_sources = len(sources)
        sink = n_sources + n_people
        staffed = np.flatnonzero(capacity_units[:, w] > 0)
        supplies = np.zeros(sink + 1, dtype=np.int64)
        supplies[:n_sources] = dw_units[sources]
        supplies[sink] = -supplies.sum()
        by_week.append(
            _WeekFlow(
                week=name,
                served=served,
                tails=np.concatenate(
                    (dw_local[served_dw[served]], np.arange(n_sources), n_sources + staffed)
                ).astype(np.int32),
                heads=np.concatenate(
                    (n_sources + served_person[served], np.full(n_sources + len(staffed), sink))
                ).astype(np.int32),
                capacities=np.concatenate(
                    (served_capacity[served], dw_units[sources], capacity_units[staffed, w])
                ).astype(np.int64),
                costs=np.concatenate(
                    (served_cost[served], np.zeros(n_sources + len(staffed), dtype=np.int64))
                ),
                supplies=supplies,
            )
        )
    return _Network(
        scale=scale,
        request_ids=[demand.request_id for demand in live],
        resource_ids=[person.resource_id for person in people],
        weeks=weeks,
        pair_request=p_request,
        pair_person=p_person,
        pair_value=p_value,
        base_pair=base_pair,
        base_week=week,
        held_arc=held_arc,
        held_units=held_units,
        penalty=penalty,
        by_week=by_week,
    )


def _solve_week(part: _WeekFlow) -> np.ndarray:
    """The week's optimal flow on its served arcs; RuntimeError unless OR-Tools proves it."""
    # Imported on first use: OR-Tools adds about 20 MB and 0.1 s to a service that is idle.
    from ortools.graph.python import min_cost_flow

    flow = min_cost_flow.SimpleMinCostFlow()
    flow.add_arcs_with_capacity_and_unit_cost(part.tails, part.heads, part.capacities, part.costs)
    flow.set_nodes_supplies(np.arange(len(part.supplies), dtype=np.int32), part.supplies)
    status = flow.solve()
    if status != min_cost_flow.SimpleMinCostFlow.OPTIMAL:
        raise RuntimeError(f"min-cost flow for {part.week} ended {status.name}")
    return np.asarray(flow.flows(np.arange(len(part.served), dtype=np.int32)), dtype=np.int64)


def _base_units(network: _Network, served: np.ndarray) -> np.ndarray:
    """Units per base arc: its own flow plus that of its held twin."""
    n_base = len(network.base_pair)
    units = served[:n_base].copy()
    np.add.at(units, network.held_arc, served[n_base:])
    return units


def solve_flow(
    problem: AllocationProblem,
    *,
    time_limit: float = math.inf,
    threads: int = 1,
    late: Mapping[Slot, float] | None = None,
) -> Solution:
    """The exact answer, week by week (see the module docstring).

    Weeks not started within `time_limit` seconds take `late`'s allocations (greedy's on those
    weeks when not given); the status then says how many. `threads` weeks are solved at once
    (OR-Tools releases the GIL). Raises RuntimeError if OR-Tools does not report an optimal
    flow (it always should: leaving demand unserved is always feasible).
    """
    return _solve_flow(problem, time_limit=time_limit, threads=threads, late=late)[0]


def _solve_flow(
    problem: AllocationProblem,
    *,
    time_limit: float,
    threads: int,
    late: Mapping[Slot, float] | None,
) -> tuple[Solution, _Network]:
    started = time.perf_counter()
    deadline = started + time_limit
    network = _network(problem)
    served = np.zeros(sum(len(part.served) for part in network.by_week), dtype=np.int64)
    missed: list[str] = []

    def run(part: _WeekFlow) -> None:
        if time.perf_counter() > deadline:
            missed.append(part.week)
            return
        served[part.served] = _solve_week(part)

    if threads > 1 and len(network.by_week) > 1:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, network.by_week))
    else:
        for part in network.by_week:
            run(part)
    units = _base_units(network, served)
    allocations = {
        network.slot(arc): int(units[arc]) / network.scale for arc in np.flatnonzero(units).tolist()
    }
    status, gap = "optimal", 0.0
    if missed:
        # Weeks share nothing, so another answer for the missed ones stands beside the rest.
        if late is None:
            late = solve_greedy(_in_weeks(problem, set(missed))).allocations
        allocations.update({slot: fte for slot, fte in late.items() if slot[2] in missed})
        status = f"time_limit: greedy in {len(missed)} of {len(network.by_week)} weeks"
        gap = 1.0
    value, moved = evaluate(problem, allocations)
    solution = Solution(
        allocations=allocations,
        value=value,
        moved=moved,
        method="flow",
        status=status,
        seconds=time.perf_counter() - started,
        mip_gap=gap,
        moved_fte_weeks=moved_volume(problem, allocations),
    )
    return solution, network


def _in_weeks(problem: AllocationProblem, weeks: set[str]) -> AllocationProblem:
    demands = [
        Demand(
            d.request_id,
            d.project_id,
            d.skill,
            d.fte,
            tuple(w for w in d.weeks if w in weeks),
            d.weight,
            d.named_resource,
            d.arrival,
        )
        for d in problem.demands
    ]
    existing = {slot: fte for slot, fte in problem.existing.items() if slot[2] in weeks}
    return AllocationProblem(
        problem.people, demands, existing, problem.move_penalty, problem.arrival_span
    )


def flow_objective(problem: AllocationProblem, allocations: Mapping[Slot, float]) -> float:
    """What the flow maximises, for any allocation: weighted FTE-weeks with the tie-breaks, plus
    the penalty for each held FTE-week kept. ValueError for an allocation the model excludes.

    For tests and the benchmark: the flow's answer scores at least as much as any other.
    """
    network = _network(problem)
    return _score(network, allocations) / COST_SCALE / network.scale


def _score(network: _Network, allocations: Mapping[Slot, float]) -> int:
    """`flow_objective` in the network's integer units."""
    return _score_units(network, _units_of(network, allocations))


def _score_units(network: _Network, units: np.ndarray) -> int:
    kept = np.minimum(units[network.held_arc], network.held_units)
    return int(units @ network.pair_value[network.base_pair]) + network.penalty * int(kept.sum())


def _units_of(network: _Network, allocations: Mapping[Slot, float]) -> np.ndarray:
    """Flow units per base arc of an allocation; ValueError if it uses a slot with no arc."""
    request_index = {request: index for index, request in enumerate(network.request_ids)}
    person_index = {resource: index for index, resource in enumerate(network.resource_ids)}
    week_index = {week: index for index, week in enumerate(network.weeks)}
    n_people, width = len(network.resource_ids), len(network.weeks) * len(network.resource_ids)
    keys: list[int] = []
    amounts: list[float] = []
    for slot, fte in allocations.items():
        if fte <= TOLERANCE:
            continue
        r, p, w = request_index.get(slot[0]), person_index.get(slot[1]), week_index.get(slot[2])
        if r is None or p is None or w is None:
            raise ValueError(f"{slot} is not an allocation the model allows")
        keys.append(r * width + w * n_people + p)
        amounts.append(fte)
    units = np.zeros(len(network.base_pair), dtype=np.int64)
    if not keys:
        return units
    # Each arc looked up among the (fewer, unique) keys wanted: no sort of every arc.
    wanted = np.array(keys, dtype=np.int64)
    order = np.argsort(wanted)
    arc_keys = (
        network.pair_request[network.base_pair] * width
        + network.base_week * n_people
        + network.pair_person[network.base_pair]
    )
    position = np.minimum(np.searchsorted(wanted, arc_keys, sorter=order), len(wanted) - 1)
    hit = wanted[order[position]] == arc_keys
    if int(hit.sum()) != len(wanted):
        raise ValueError("an allocation the model does not allow")
    units[hit] = np.round(np.array(amounts)[order[position[hit]]] * network.scale)
    return units


def priority_bound(problem: AllocationProblem) -> float:
    """The most priority-weighted value (weight x FTE-weeks) any allocation can reach.

    A min-cost flow without tie-breaks and stability: the flow's value equals it whenever the
    tie-breaks and the penalty only decide between equally good answers (the benchmark reports
    both, the tests check it on generated portfolios).
    """
    network = _network(problem, priority_only=True)
    served = np.zeros(sum(len(part.served) for part in network.by_week), dtype=np.int64)
    for part in network.by_week:
        served[part.served] = _solve_week(part)
    units = _base_units(network, served)
    return int(units @ network.pair_value[network.base_pair]) / COST_SCALE / network.scale


def pair_values(problem: AllocationProblem) -> dict[tuple[str, str], float]:
    """Each eligible (request, person)'s value per FTE-week in the flow: weight plus ties."""
    network = _network(problem)
    return {
        (network.request_ids[int(r)], network.resource_ids[int(p)]): int(v) / COST_SCALE
        for r, p, v in zip(
            network.pair_request, network.pair_person, network.pair_value, strict=True
        )
    }


# --- the fixed-charge MILP (reference) ------------------------------------------------------


def _coverage(person: Person, demand: Demand) -> float:
    """How much of the request's period the person could cover alone."""
    return sum(min(person.capacity_in(week), demand.fte) for week in demand.weeks)


def _candidates(problem: AllocationProblem) -> dict[str, list[Person]]:
    by_skill: dict[str, list[Person]] = defaultdict(list)
    by_id = {person.resource_id: person for person in problem.people}
    for person in problem.people:
        for skill in person.skills:
            by_skill[skill].append(person)
    found: dict[str, list[Person]] = {}
    for demand in problem.demands:
        if demand.named_resource is not None:
            named = by_id.get(demand.named_resource)
            found[demand.request_id] = [named] if named is not None else []
        else:
            found[demand.request_id] = by_skill.get(demand.skill, [])
    return found


@dataclass
class _Model:
    """The MILP in arrays: columns are x variables then m variables."""

    slots: list[Slot] = field(default_factory=list)
    cost: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    x_rows: list[tuple[int, int]] = field(default_factory=list)
    """Per x column: its demand row and capacity row."""
    row_upper: list[float] = field(default_factory=list)
    moves: list[tuple[str, str]] = field(default_factory=list)
    """Per m column: the (request, person) allocation it flags."""
    stability: list[tuple[int, int, float]] = field(default_factory=list)
    """Rows x + a*m >= a: (x column, m index, a)."""
    forced_moves: set[tuple[str, str]] = field(default_factory=set)


def _build(problem: AllocationProblem) -> _Model:
    model = _Model()
    rows: dict[tuple[str, str, str], int] = {}
    candidates = _candidates(problem)
    arrivals = sorted({demand.arrival for demand in problem.demands})
    arrival_rank = {arrival: index for index, arrival in enumerate(arrivals)}
    holders = {(request, person) for (request, person, _), a in problem.existing.items() if a > 0}
    column: dict[Slot, int] = {}

    def row(kind: str, owner: str, week: str, bound: float) -> int:
        key = (kind, owner, week)
        if key not in rows:
            rows[key] = len(model.row_upper)
            model.row_upper.append(bound)
        return rows[key]

    for demand in problem.demands:
        if demand.weight <= 0 or demand.fte <= TOLERANCE:
            continue
        people = sorted(
            candidates[demand.request_id],
            key=lambda p: (len(p.skills), -_coverage(p, demand), p.resource_id),
        )
        earlier = 1.0 - arrival_rank[demand.arrival] / max(len(arrivals), 1)
        for index, person in enumerate(people):
            specialist = 1.0 - index / max(len(people), 1)
            tie = ARRIVAL_TIE * earlier + SPECIALIST_TIE * specialist
            if (demand.request_id, person.resource_id) in holders:
                tie += HOLDER_TIE
            for week in demand.weeks:
                capacity = person.capacity_in(week)
                if capacity <= TOLERANCE:
                    continue
                slot = (demand.request_id, person.resource_id, week)
                column[slot] = len(model.slots)
                model.slots.append(slot)
                model.cost.append(demand.weight + tie)
                model.upper.append(min(demand.fte, capacity))
                model.x_rows.append(
                    (
                        row("demand", demand.request_id, week, demand.fte),
                        row("capacity", person.resource_id, week, capacity),
                    )
                )
    by_pair: dict[tuple[str, str], list[tuple[str, float]]] = defaultdict(list)
    for (request, resource, week), held in problem.existing.items():
        if held > TOLERANCE:
            by_pair[(request, resource)].append((week, held))
    for pair, held_weeks in sorted(by_pair.items()):
        if any((pair[0], pair[1], week) not in column for week, _ in held_weeks):
            # The person is gone, no longer eligible, or the project holds nobody: it moves.
            model.forced_moves.add(pair)
            continue
        move = len(model.moves)
        model.moves.append(pair)
        for week, held in held_weeks:
            model.stability.append((column[(pair[0], pair[1], week)], move, held))
    return model


def _solve_component(
    model: _Model,
    x_columns: list[int],
    moves: list[int],
    stability: list[int],
    *,
    move_penalty: float,
    time_limit: float,
    threads: int,
    start: Mapping[Slot, float],
) -> tuple[dict[int, float], set[int], float, str] | None:
    """Solve one independent part; None when HiGHS found no solution in time.

    `start` (the greedy answer) is handed to HiGHS as its first incumbent, so a time limit
    never leaves it worse than greedy and branch and bound prunes from the first node.
    """
    demand_rows = sorted({model.x_rows[c][0] for c in x_columns})
    capacity_rows = sorted({model.x_rows[c][1] for c in x_columns})
    local_row = {r: i for i, r in enumerate(demand_rows)}
    local_row.update({r: len(demand_rows) + i for i, r in enumerate(capacity_rows)})
    n_x, n_m = len(x_columns), len(moves)
    n_rows = len(demand_rows) + len(capacity_rows) + len(stability)
    local_x = {c: i for i, c in enumerate(x_columns)}
    local_m = {m: n_x + i for i, m in enumerate(moves)}

    # Coordinates of the constraint matrix, then sorted column-wise (HiGHS's native format).
    row_index: list[int] = []
    col_index: list[int] = []
    values: list[float] = []
    for c in x_columns:
        demand_row, capacity_row = model.x_rows[c]
        row_index += [local_row[demand_row], local_row[capacity_row]]
        col_index += [local_x[c], local_x[c]]
        values += [1.0, 1.0]
    row_lower = [-highspy.kHighsInf] * (len(demand_rows) + len(capacity_rows))
    row_upper = [model.row_upper[r] for r in demand_rows] + [
        model.row_upper[r] for r in capacity_rows
    ]
    for offset, s in enumerate(stability):
        x_column, move, held = model.stability[s]
        r = len(demand_rows) + len(capacity_rows) + offset
        row_index += [r, r]
        col_index += [local_x[x_column], local_m[move]]
        values += [1.0, held]
        row_lower.append(held)
        row_upper.append(highspy.kHighsInf)

    rows_array = np.asarray(row_index, dtype=np.int32)
    cols_array = np.asarray(col_index, dtype=np.int32)
    order = np.lexsort((rows_array, cols_array))
    lp = highspy.HighsLp()
    lp.num_col_ = n_x + n_m
    lp.num_row_ = n_rows
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = np.asarray([model.cost[c] for c in x_columns] + [-move_penalty] * n_m)
    lp.col_lower_ = np.zeros(n_x + n_m)
    lp.col_upper_ = np.asarray([model.upper[c] for c in x_columns] + [1.0] * n_m)
    lp.row_lower_ = np.asarray(row_lower, dtype=float)
    lp.row_upper_ = np.asarray(row_upper, dtype=float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_x + n_m
    lp.a_matrix_.num_row_ = n_rows
    lp.a_matrix_.start_ = np.concatenate(
        ([0], np.cumsum(np.bincount(cols_array, minlength=n_x + n_m)))
    ).astype(np.int32)
    lp.a_matrix_.index_ = rows_array[order]
    lp.a_matrix_.value_ = np.asarray(values, dtype=float)[order]
    if n_m:
        lp.integrality_ = [highspy.HighsVarType.kContinuous] * n_x + [
            highspy.HighsVarType.kInteger
        ] * n_m

    highs = highspy.Highs()
    highs.silent()
    highs.setOptionValue("time_limit", max(time_limit, 0.01))
    highs.setOptionValue("threads", threads)
    # Proven within one moved allocation of the optimum, or within 1e-5 of the value when that is
    # larger (about 1 FTE-week of one priority level per 100,000 weighted FTE-weeks): closer
    # changes nothing a PMO would notice, and proving it on a large portfolio takes minutes.
    highs.setOptionValue("mip_rel_gap", MIP_RELATIVE_GAP)
    highs.setOptionValue("mip_abs_gap", move_penalty)
    highs.passModel(lp)
    if n_m:
        held_x = [start.get(model.slots[c], 0.0) for c in x_columns]
        reduced = [0.0] * n_m
        for index in stability:
            x_column, move, held = model.stability[index]
            if held_x[local_x[x_column]] < held - TOLERANCE:
                reduced[local_m[move] - n_x] = 1.0
        first = highspy.HighsSolution()
        first.col_value = held_x + reduced
        highs.setSolution(first)
    highs.run()
    status = highs.getModelStatus()
    solution = highs.getSolution()
    if not solution.value_valid:
        return None
    info = highs.getInfo()
    values_found = solution.col_value
    chosen = {
        c: float(values_found[local_x[c]])
        for c in x_columns
        if values_found[local_x[c]] > TOLERANCE
    }
    moved = {m for m in moves if values_found[local_m[m]] > 0.5}
    if status == highspy.HighsModelStatus.kOptimal:
        return chosen, moved, 0.0, "optimal"
    gap = float(info.mip_gap) if n_m and math.isfinite(info.mip_gap) else 1.0
    return chosen, moved, gap, "time_limit"


def _tidy(problem: AllocationProblem, raw: Mapping[Slot, float]) -> dict[Slot, float]:
    """Round to 1e-4 FTE and take back any rounding excess, so no limit is ever exceeded."""
    allocations = {slot: round(fte, 4) for slot, fte in raw.items() if round(fte, 4) > 0}
    people = {person.resource_id: person for person in problem.people}
    demands = {demand.request_id: demand for demand in problem.demands}

    def requested(request: str, week: str) -> float:
        return demands[request].fte

    def capacity(person: str, week: str) -> float:
        return people[person].capacity_in(week)

    limits: tuple[tuple[Callable[[str, str], float], int], ...] = ((requested, 0), (capacity, 1))
    for limit_of, index in limits:
        totals: dict[tuple[str, str], list[Slot]] = defaultdict(list)
        for slot in allocations:
            totals[(slot[index], slot[2])].append(slot)
        for (owner, week), slots in totals.items():
            excess = sum(allocations[s] for s in slots) - limit_of(owner, week)
            for slot in sorted(slots, key=lambda s: -allocations[s]):
                if excess <= 1e-9:
                    break
                cut = min(excess, allocations[slot])
                allocations[slot] = round(allocations[slot] - cut, 6)
                excess -= cut
    return {slot: fte for slot, fte in allocations.items() if fte > TOLERANCE}


def solve_milp(
    problem: AllocationProblem,
    *,
    time_limit: float = 10.0,
    threads: int = 1,
    start: Mapping[Slot, float] | None = None,
) -> Solution | None:
    """The fixed-charge MILP, component by component; None if some component found no solution.

    The reference the flow replaced (see the module docstring): it charges `move_penalty` per
    moved (request, person) allocation, not per FTE-week, and needs binaries to do so. Kept for
    the tests (its value bounds the flow's) and for the benchmark's comparison of the two.
    """
    started = time.perf_counter()
    deadline = started + time_limit
    model = _build(problem)
    # Independent parts: the model's rows, then its moves, as nodes of one graph.
    rows = len(model.row_upper)
    links = [(demand_row, capacity_row) for demand_row, capacity_row in model.x_rows]
    links += [(model.x_rows[x_column][0], rows + move) for x_column, move, _ in model.stability]
    part_of = component_labels(rows + len(model.moves), links)
    x_by_part: dict[int, list[int]] = defaultdict(list)
    m_by_part: dict[int, list[int]] = defaultdict(list)
    s_by_part: dict[int, list[int]] = defaultdict(list)
    for column, (demand_row, _) in enumerate(model.x_rows):
        x_by_part[part_of[demand_row]].append(column)
    for move in range(len(model.moves)):
        m_by_part[part_of[rows + move]].append(move)
    for index, (x_column, _, _) in enumerate(model.stability):
        s_by_part[part_of[model.x_rows[x_column][0]]].append(index)

    chosen: dict[Slot, float] = {}
    worst_gap, status, fallen_back = 0.0, "optimal", 0
    # Each part gets a share of the time left in proportion to its size, at least a second
    # while there is time (small ones finish in milliseconds and hand their share on).
    unsolved = sum(len(columns) + 1 for columns in x_by_part.values())
    for part in sorted(x_by_part, key=lambda p: len(x_by_part[p])):
        share = (len(x_by_part[part]) + 1) / unsolved
        unsolved -= len(x_by_part[part]) + 1
        left = deadline - time.perf_counter()
        found = _solve_component(
            model,
            x_by_part[part],
            m_by_part.get(part, []),
            s_by_part.get(part, []),
            move_penalty=problem.move_penalty,
            time_limit=min(left, max(left * share, 1.0)),
            threads=threads,
            start=start or {},
        )
        if found is None:
            if start is None:
                return None
            # Parts are independent: the greedy answer for this one is feasible beside the rest.
            columns = x_by_part[part]
            chosen.update(
                {model.slots[c]: start[model.slots[c]] for c in columns if model.slots[c] in start}
            )
            fallen_back += 1
            continue
        values, _, gap, part_status = found
        chosen.update({model.slots[c]: fte for c, fte in values.items()})
        if part_status != "optimal":
            status = part_status
            worst_gap = max(worst_gap, gap)
    if fallen_back:
        status = f"time_limit: greedy in {fallen_back} of {len(x_by_part)} parts"
        worst_gap = max(worst_gap, 1.0)
    allocations = _tidy(problem, chosen)
    value, moved_now = evaluate(problem, allocations)
    return Solution(
        allocations=allocations,
        value=value,
        moved=moved_now,
        method="milp",
        status=status,
        seconds=time.perf_counter() - started,
        mip_gap=worst_gap,
        moved_fte_weeks=moved_volume(problem, allocations),
    )


def solve(problem: AllocationProblem, *, time_limit: float = 10.0, threads: int = 1) -> Solution:
    """The exact min-cost flow's answer (see `solve_flow`); greedy's should the flow fail.

    OR-Tools proves each week's flow optimal (in integers, so exactly) or `_solve_week` raises:
    the greedy rule runs only where it is needed, on the weeks the flow does not reach within
    `time_limit` seconds, or for the whole problem should OR-Tools fail (then `greedy_value`
    says what it achieved). At 2,000 requests x 500 people x 26 weeks the flow takes about a
    second on a 2-core machine (bench/results/allocation.md), so the default limit of 10 s is
    not reached; running greedy first as a reference would add half as much again.
    """
    started = time.perf_counter()
    try:
        exact, _ = _solve_flow(problem, time_limit=time_limit, threads=threads, late=None)
    except Exception as error:  # a solver bug must not stop allocation: greedy stands in
        return _as_fallback(
            solve_greedy(problem),
            f"fallback: min-cost flow failed ({type(error).__name__}: {error})",
        )
    return replace(exact, seconds=time.perf_counter() - started)


def _as_fallback(greedy: Solution, status: str) -> Solution:
    return Solution(
        allocations=greedy.allocations,
        value=greedy.value,
        moved=greedy.moved,
        method="greedy",
        status=status,
        seconds=greedy.seconds,
        mip_gap=1.0,
        greedy_value=greedy.value,
        moved_fte_weeks=greedy.moved_fte_weeks,
    )


def relative_gap(best: float, other: float) -> float:
    """How far `other` falls short of `best`, as a fraction of `best`."""
    return 0.0 if best <= TOLERANCE else max(best - other, 0.0) / best
