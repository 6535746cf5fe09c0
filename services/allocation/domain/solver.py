"""Who works on what, week by week: the allocation solved as a MILP with HiGHS, or greedily.

The model, for the weeks being (re-)solved:

    x[r,p,w] >= 0   FTE of person p on request r in week w (p eligible: has r's skill, or is the
                    person r names; w one of r's weeks; p has capacity in w)
    m[r,p] in {0,1} 1 when an existing allocation of p to r is reduced ("moved")

    maximise   sum (weight[r] + tie[r,p]) * x[r,p,w]  -  penalty * sum m[r,p]
    subject to sum_p x[r,p,w] <= fte[r]              (never more than requested)
               sum_r x[r,p,w] <= capacity[p,w]       (never over capacity)
               x[r,p,w] + a[r,p,w] * m[r,p] >= a[r,p,w]   for each existing allocation a > 0

`weight` is the request's priority level (1 = lowest; see priority.py): one level is worth one
FTE-week, so a higher-priority request always wins a unit of contested capacity. `tie` (below
0.1 in all) prefers, among equally good answers, the person who already holds the request, then
the earlier request, then the most specialised person (generalists stay free) and, among those,
the one who can cover most of the request's weeks, so one person tends to stay on a request.
The penalty (default 0.05) counts moved allocations, so among equally good solutions the one
moving the fewest wins.

Weeks are independent except through a request's moved-allocation variable, so the model is
split into connected components solved one by one. The greedy rule always runs first: it is
HiGHS's first incumbent and the fallback if HiGHS fails, and its gap to the MILP is measured
on every resolution. "optimal" means proven within one moved allocation, or within 1e-5 of the
value when that is larger; a time limit bounds the whole and the MILP's own gap is reported.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

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


@dataclass(frozen=True)
class Solution:
    allocations: dict[Slot, float]
    value: float
    """Strategy-weighted fulfilled demand: sum of weight x FTE-weeks."""
    moved: frozenset[tuple[str, str]]
    """Existing (request, person) allocations this solution reduces."""
    method: str
    """"milp" or "greedy"."""
    status: str
    """"optimal", "time_limit" (best found; see mip_gap) or why the fallback was used."""
    seconds: float
    mip_gap: float = 0.0
    """The MILP's own relative gap to its bound: 0 when proven optimal, 1 when part of the
    answer is greedy's (no bound known for that part)."""
    greedy_value: float | None = None
    """What the greedy rule achieved on the same problem, for the measured gap."""

    def objective(self, move_penalty: float) -> float:
        return self.value - move_penalty * len(self.moved)


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
    """A fast rule that never revisits a decision; the MILP's fallback and first incumbent.

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

    def _give(self, demand: Demand, resource_id: str, week: str, fte: float) -> None:
        self.allocations[(demand.request_id, resource_id, week)] += fte
        self.remaining[(resource_id, week)] -= fte
        held = self.holders[(resource_id, week)]
        held[demand.request_id] = held.get(demand.request_id, 0.0) + fte

    def _short(self, demand: Demand, week: str) -> float:
        got = sum(
            self.allocations.get((demand.request_id, person.resource_id, week), 0.0)
            for person in self.candidates[demand.request_id]
        )
        return demand.fte - got

    def keep(self, ordered: Sequence[Demand]) -> None:
        for demand in ordered:
            eligible = {person.resource_id for person in self.candidates[demand.request_id]}
            for week in demand.weeks:
                need = demand.fte
                for resource_id in sorted(eligible):
                    held = self.problem.existing.get((demand.request_id, resource_id, week), 0.0)
                    take = min(held, need, self.remaining.get((resource_id, week), 0.0))
                    if take > TOLERANCE:
                        self._give(demand, resource_id, week, take)
                        need -= take

    def fill(self, ordered: Sequence[Demand]) -> None:
        for demand in ordered:
            people = sorted(
                self.candidates[demand.request_id],
                key=lambda p: (len(p.skills), -_coverage(p, demand), p.resource_id),
            )
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
                    self.remaining[(resource_id, week)] += take
                    self._give(demand, resource_id, week, take)
                    need -= take


# --- MILP --------------------------------------------------------------------------------------


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


class _Components:
    """Union-find over the model's rows, to split it into independent parts."""

    def __init__(self) -> None:
        self.parent: list[int] = []

    def add(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, node: int) -> int:
        parent = self.parent
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(self, a: int, b: int) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[root_b] = root_a


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

    highs = highspy.Highs()  # type: ignore[no-untyped-call]
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
    """The exact MILP, component by component; None if some component found no solution."""
    started = time.perf_counter()
    deadline = started + time_limit
    model = _build(problem)
    parts = _Components()
    row_node = [parts.add() for _ in model.row_upper]
    move_node = [parts.add() for _ in model.moves]
    for demand_row, capacity_row in model.x_rows:
        parts.union(row_node[demand_row], row_node[capacity_row])
    for x_column, move, _ in model.stability:
        parts.union(row_node[model.x_rows[x_column][0]], move_node[move])
    x_by_part: dict[int, list[int]] = defaultdict(list)
    m_by_part: dict[int, list[int]] = defaultdict(list)
    s_by_part: dict[int, list[int]] = defaultdict(list)
    for column, (demand_row, _) in enumerate(model.x_rows):
        x_by_part[parts.find(row_node[demand_row])].append(column)
    for move in range(len(model.moves)):
        m_by_part[parts.find(move_node[move])].append(move)
    for index, (x_column, _, _) in enumerate(model.stability):
        s_by_part[parts.find(row_node[model.x_rows[x_column][0]])].append(index)

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
    )


def solve(problem: AllocationProblem, *, time_limit: float = 10.0, threads: int = 1) -> Solution:
    """The MILP's answer, or the greedy one when the MILP fails or does worse in its time."""
    greedy = solve_greedy(problem)
    try:
        exact = solve_milp(
            problem, time_limit=time_limit, threads=threads, start=greedy.allocations
        )
    except Exception as error:  # a solver bug must not stop allocation: greedy stands in
        return _as_fallback(greedy, f"fallback: MILP failed ({type(error).__name__}: {error})")
    if exact is None:
        return _as_fallback(greedy, "fallback: MILP found no solution within the time limit")
    penalty = problem.move_penalty
    if greedy.objective(penalty) > exact.objective(penalty) + TOLERANCE:
        return _as_fallback(greedy, f"fallback: greedy beat the MILP's {exact.status} solution")
    return Solution(
        allocations=exact.allocations,
        value=exact.value,
        moved=exact.moved,
        method=exact.method,
        status=exact.status,
        seconds=exact.seconds,
        mip_gap=exact.mip_gap,
        greedy_value=greedy.value,
    )


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
    )


def relative_gap(best: float, other: float) -> float:
    """How far `other` falls short of `best`, as a fraction of `best`."""
    return 0.0 if best <= TOLERANCE else max(best - other, 0.0) / best
