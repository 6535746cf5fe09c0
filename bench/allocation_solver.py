"""Benchmark of allocation: the full resolution, the exact flow, greedy, first come first served.

Generated portfolios of growing size (up to 2,000 open requests, 500 people, 26 weeks), each
resolved twice: "initial" (nobody allocated yet) and "reprioritized" (a new strategy re-ranks 30%
of the projects while the initial allocations are in force). The headline is the full
resolution as the service runs it once the state is loaded (`resolve` at the service's default
settings: the solve, then every request's decision and the conflicts, explained), wall-clock and
CPU seconds, with its solver status, the allocations it moves and the requests whose allocation
changes. Beside it, on the same problem: the solve alone, greedy, first come first served, and,
in the same run, the fixed-charge MILP the flow replaced (HiGHS, penalty per moved allocation):
the baseline for time and for what a fixed charge changes. Then the what-if of that draft
ranking (`what_if_in_memory`, what `POST /what-if` runs once the state is loaded) at each size.

Value is strategy-weighted fulfilled demand: sum over FTE-weeks granted of the request's
priority level (as the service computes it: lifecycle, key project, rank).

    python bench/allocation_solver.py                  # every size
    python bench/allocation_solver.py --sizes 100 500  # some sizes (open requests)
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import highspy
import numpy
import ortools

from services.allocation.domain.decisions import OpenRequest, PoolMember
from services.allocation.domain.pool import CapacityChange
from services.allocation.domain.priority import ProjectStanding, priority_levels
from services.allocation.domain.requests import week_monday
from services.allocation.domain.resolution import (
    AllocationState,
    Resolution,
    resolve,
    with_standings,
)
from services.allocation.domain.solver import (
    AllocationProblem,
    Demand,
    Person,
    Solution,
    check_feasible,
    flow_objective,
    priority_bound,
    solve,
    solve_flow,
    solve_greedy,
    solve_milp,
)
from services.allocation.service_layer.what_if import DraftRank, what_if_in_memory
from shared.settings import Settings

# (open requests, people) over 26 weeks; demand is about 1.3 times capacity.
SIZES = [(100, 25), (250, 60), (500, 125), (1000, 250), (2000, 500)]
WEEKS = [f"2027-W{number:02d}" for number in range(1, 27)]


@dataclass(frozen=True)
class Portfolio:
    people: list[Person]
    requests: list[tuple[Demand, str]]  # demand (weight filled in later) and its project
    standings: dict[str, ProjectStanding]


def generate(requests: int, people: int, seed: int) -> Portfolio:
    rnd = random.Random(seed)
    skills = [f"skill-{i:02d}" for i in range(max(5, people // 20))]
    pool = [
        Person(
            f"res-{i:04d}",
            frozenset(rnd.sample(skills, rnd.choice([1, 1, 2, 2, 3]))),
            {week: capacity for week in WEEKS}
            if (capacity := rnd.choice([1.0, 1.0, 1.0, 0.8, 0.5])) and rnd.random() > 0.1
            # one in ten has a holiday of one to three weeks
            else _with_holiday(rnd, capacity),
        )
        for i in range(people)
    ]
    projects = max(4, requests // 4)
    order = list(range(1, projects + 1))
    rnd.shuffle(order)
    standings = {
        f"PRJ-{p:04d}": ProjectStanding(
            project_id=f"PRJ-{p:04d}",
            lifecycle="active" if rnd.random() < 0.85 else "approved",
            key_project=rnd.random() < 0.1,
            rank=order[p],
            portfolio_size=projects,
        )
        for p in range(projects)
    }
    demand_list = []
    for r in range(requests):
        length = rnd.randint(4, 16)
        first = rnd.randrange(0, len(WEEKS) - 2)
        weeks = tuple(WEEKS[first : first + length])
        project = f"PRJ-{rnd.randrange(projects):04d}"
        named = pool[rnd.randrange(people)].resource_id if rnd.random() < 0.1 else None
        demand_list.append(
            (
                Demand(
                    request_id=f"REQ-{r:05d}",
                    project_id=project,
                    skill=rnd.choice(skills),
                    fte=rnd.choice([0.2, 0.5, 0.5, 0.8, 1.0, 1.0, 1.0]),
                    weeks=weeks,
                    weight=0.0,
                    named_resource=named,
                    arrival=r,
                ),
                project,
            )
        )
    return Portfolio(pool, demand_list, standings)


def _with_holiday(rnd: random.Random, capacity: float) -> dict[str, float]:
    start = rnd.randrange(len(WEEKS))
    off = set(WEEKS[start : start + rnd.randint(1, 3)])
    return {week: 0.0 if week in off else capacity for week in WEEKS}


def problem_for(
    portfolio: Portfolio,
    standings: dict[str, ProjectStanding],
    existing: dict[tuple[str, str, str], float] | None = None,
) -> AllocationProblem:
    levels = priority_levels(s.priority_key() for s in standings.values())
    demands = [
        Demand(
            d.request_id,
            d.project_id,
            d.skill,
            d.fte,
            d.weeks,
            float(levels[standings[project].priority_key()]),
            d.named_resource,
            d.arrival,
        )
        for d, project in portfolio.requests
    ]
    return AllocationProblem(portfolio.people, demands, existing or {})


def reprioritized(standings: dict[str, ProjectStanding], seed: int) -> dict[str, ProjectStanding]:
    """A new strategy: 30% of the projects swap ranks among themselves."""
    rnd = random.Random(seed)
    moving = rnd.sample(sorted(standings), k=max(2, len(standings) * 3 // 10))
    ranks = [standings[p].rank for p in moving]
    rnd.shuffle(ranks)
    changed = dict(standings)
    for project, rank in zip(moving, ranks, strict=True):
        current = standings[project]
        changed[project] = ProjectStanding(
            project_id=project,
            lifecycle=current.lifecycle,
            key_project=current.key_project,
            rank=rank,
            portfolio_size=current.portfolio_size,
        )
    return changed


def top_share(problem: AllocationProblem, solution: Solution) -> float:
    """Share of the top-10%-weight requests' demand that is served."""
    ranked = sorted(problem.demands, key=lambda d: -d.weight)
    top = {d.request_id: d for d in ranked[: max(1, len(ranked) // 10)]}
    asked = sum(d.fte * len(d.weeks) for d in top.values())
    served = sum(f for (r, _, _), f in solution.allocations.items() if r in top)
    return served / asked if asked else 1.0


@dataclass(frozen=True)
class Case:
    service: Solution
    """`solve` as the service runs it (the flow; greedy only where it stands in)."""
    service_seconds: float
    greedy: Solution
    fcfs: Solution
    bound: float
    fixed_charge: Solution | None
    fixed_charge_seconds: float


def run_case(problem: AllocationProblem, settings: Settings, milp_limit: float) -> Case:
    started = time.perf_counter()
    service = solve(problem, time_limit=settings.allocation_solver_time_limit_s)
    service_seconds = time.perf_counter() - started
    greedy = solve_greedy(problem)
    fcfs = solve_greedy(problem, order="arrival")
    fixed_charge, fixed_charge_seconds = None, 0.0
    if milp_limit > 0:
        started = time.perf_counter()
        fixed_charge = solve_milp(problem, time_limit=milp_limit, start=greedy.allocations)
        fixed_charge_seconds = time.perf_counter() - started
    for solution in (service, greedy, fcfs, fixed_charge):
        if solution is None:
            continue
        problems = check_feasible(problem, solution.allocations)
        if problems:
            raise SystemExit(f"infeasible {solution.method} solution: {problems[:3]}")
    # The optimality claim, checked here too: nothing scores more on the flow's own objective.
    best = flow_objective(problem, service.allocations)
    for other in (greedy, fcfs, fixed_charge):
        if other is not None and flow_objective(problem, other.allocations) > best + 1e-6:
            raise SystemExit(f"{other.method} beats the flow on its own objective")
    return Case(
        service=service,
        service_seconds=service_seconds,
        greedy=greedy,
        fcfs=fcfs,
        bound=priority_bound(problem),
        fixed_charge=fixed_charge,
        fixed_charge_seconds=fixed_charge_seconds,
    )


def state_of(
    portfolio: Portfolio, allocations: dict[tuple[str, str, str], float]
) -> AllocationState:
    """The portfolio as the service holds it: every request decided, `allocations` in force."""
    people = {}
    for person in portfolio.people:
        base = max(person.capacity.values())
        off = sorted(week for week, fte in person.capacity.items() if fte == 0)
        changes: tuple[CapacityChange, ...] = ()
        if off:  # the generator's holiday: consecutive weeks, Monday to Friday
            ends = week_monday(off[-1]) + timedelta(days=4)
            changes = (CapacityChange(week_monday(off[0]), 0.0, ends, "holiday"),)
        people[person.resource_id] = PoolMember(
            person.resource_id, person.resource_id, tuple(sorted(person.skills)), base, changes
        )
    requests = {
        demand.request_id: OpenRequest(
            request_id=demand.request_id,
            project_id=project,
            skill=demand.skill,
            fte=demand.fte,
            start=week_monday(demand.weeks[0]),
            end=week_monday(demand.weeks[-1]),
            weeks=demand.weeks,
            planned=demand.weeks,
            named_resource=demand.named_resource,
            arrival=demand.arrival,
            decided=True,
        )
        for demand, project in portfolio.requests
    }
    return AllocationState(WEEKS[0], people, requests, portfolio.standings, allocations)


@dataclass(frozen=True)
class Timed:
    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.2f} / {self.cpu:.2f}"


def timed_resolution(
    portfolio: Portfolio,
    allocations: dict[tuple[str, str, str], float],
    standings: dict[str, ProjectStanding],
    settings: Settings,
) -> tuple[Timed, Resolution]:
    """A re-resolution as the service computes it once the state is loaded: the domain's
    `resolve` (the solve, then every request's decision and the conflicts, explained)."""
    state = state_of(portfolio, allocations)
    wall, cpu = time.perf_counter(), time.process_time()
    resolution = resolve(
        with_standings(state, standings),
        None,
        move_penalty=settings.allocation_move_penalty,
        time_limit=settings.allocation_solver_time_limit_s,
    )
    return Timed(time.perf_counter() - wall, time.process_time() - cpu), resolution


def timed_what_if(
    portfolio: Portfolio,
    allocations: dict[tuple[str, str, str], float],
    draft: dict[str, ProjectStanding],
    settings: Settings,
) -> tuple[Timed, str, int, int]:
    """The what-if of a draft ranking as `POST /what-if` computes it once the state is loaded:
    time, solver status, requests whose allocation would change, allocations moved."""
    state = state_of(portfolio, allocations)
    ranking = [
        DraftRank(project, standing.rank)
        for project, standing in draft.items()
        if standing.rank is not None
    ]
    wall, cpu = time.perf_counter(), time.process_time()
    answer = what_if_in_memory(state, settings, ranking=ranking)
    timing = Timed(time.perf_counter() - wall, time.process_time() - cpu)
    solution = answer.resolution.solution
    return timing, solution.status, len(answer.changed), len(solution.moved)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}; "
        f"OR-Tools {ortools.__version__}; HiGHS {highspy.Highs().version()} (highspy, 1 thread); "
        f"numpy {numpy.__version__}; {platform.system()} {platform.release()}"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"{one:.1f} / {five:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="*", help="open requests of the cases to run")
    parser.add_argument(
        "--milp-limit",
        type=float,
        default=240.0,
        help="seconds for the fixed-charge MILP per solve (0: skip it)",
    )
    parser.add_argument(
        "--stability-penalty",
        type=float,
        default=1.5,
        help="a second move penalty per FTE-week to show after a re-ranking (the dial)",
    )
    parser.add_argument(
        "--seed", type=int, default=7, help="random seed of the generated cases (default: 7)"
    )
    args = parser.parse_args()
    sizes = [s for s in SIZES if not args.sizes or s[0] in args.sizes]
    settings = Settings()

    print(f"machine: {machine()}")
    print(
        f"weeks: {len(WEEKS)}; service defaults: time limit "
        f"{settings.allocation_solver_time_limit_s:g} s, move penalty "
        f"{settings.allocation_move_penalty:g} per FTE-week, 1 thread; fixed-charge MILP limit "
        f"{args.milp_limit:g} s per solve; seed {args.seed}; load average (1 / 5 min) at start "
        f"{load()}"
    )
    print()
    print(
        "| requests | people | phase | full resolution s (wall / CPU) | status "
        "| moved: allocations (FTE-weeks) | requests changed | solve s | greedy s "
        "| value / priority bound | FCFS value vs flow | top-10% served flow / FCFS "
        "| fixed-charge MILP s | fixed-charge MILP: status, value vs flow, moved "
        f"| penalty {args.stability_penalty:g}: value vs default, moved | load |"
    )
    print("|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    what_ifs: list[str] = []
    for requests, people in sizes:
        portfolio = generate(requests, people, args.seed)
        standings = portfolio.standings
        in_force: dict[tuple[str, str, str], float] = {}
        for phase in ("initial", "reprioritized"):
            if phase == "initial":
                now = standings
                problem = problem_for(portfolio, now)
            else:
                now = reprioritized(standings, args.seed + 1)
                problem = problem_for(portfolio, now, in_force)
                # The what-if of the same draft ranking, on the same allocations in force.
                timing, status, changed, moved = timed_what_if(portfolio, in_force, now, settings)
                what_ifs.append(
                    f"| {requests} | {people} | {timing} | {status} | {changed} | {moved} "
                    f"| {load()} |"
                )
            resolved, resolution = timed_resolution(portfolio, in_force, now, settings)
            full = resolution.solution
            problem = AllocationProblem(
                problem.people, problem.demands, problem.existing, settings.allocation_move_penalty
            )
            case = run_case(problem, settings, args.milp_limit)
            exact = case.service
            in_force = exact.allocations
            steadier = "-"
            if problem.existing:
                # The stability dial of the flow: a gain below the penalty per FTE-week moves
                # nobody, so a penalty above one level keeps a request one level up out.
                dial = solve_flow(
                    AllocationProblem(
                        problem.people, problem.demands, problem.existing, args.stability_penalty
                    )
                )
                share = dial.value / exact.value
                steadier = f"{share:.2%}, {len(dial.moved)} ({dial.moved_fte_weeks:.1f})"
            reference = "skipped"
            if case.fixed_charge is not None:
                milp = case.fixed_charge
                gap = f" ({milp.mip_gap:.2%})" if milp.mip_gap else ""
                reference = (
                    f"{milp.status}{gap}, {milp.value / exact.value:.4%}, "
                    f"{len(milp.moved)} ({milp.moved_fte_weeks:.1f})"
                )
            print(
                f"| {requests} | {people} | {phase} | {resolved} | {full.method} {full.status} "
                f"| {len(full.moved)} ({full.moved_fte_weeks:.1f}) | {len(resolution.changed)} "
                f"| {case.service_seconds:.2f} | {case.greedy.seconds:.2f} "
                f"| {exact.value / case.bound:.4%} | {case.fcfs.value / exact.value:.1%} "
                f"| {top_share(problem, exact):.0%} / {top_share(problem, case.fcfs):.0%} "
                f"| {case.fixed_charge_seconds:.1f} | {reference} | {steadier} | {load()} |",
                flush=True,
            )
    print()
    print(
        "What-if of the draft ranking (the re-ranking above), allocations of the initial in force:"
    )
    print()
    print(
        "| requests | people | what-if s (wall / CPU) | status | requests changed "
        "| allocations moved | load |"
    )
    print("|---:|---:|---:|---|---:|---:|---:|")
    for line in what_ifs:
        print(line)


if __name__ == "__main__":
    main()
