"""Benchmark of the allocation solver: MILP (HiGHS), its greedy fallback, first come first served.

Generated portfolios of growing size (up to 2,000 open requests, 500 people, 26 weeks), each
solved twice: "initial" (nobody allocated yet) and "reprioritized" (a new strategy re-ranks 30%
of the projects; the initial MILP allocations are in force, so moves are penalised). Printed per
case: solve time, the MILP's status and own gap, the greedy rule's gap to the MILP, the value of
first come, first served (what a PMO without this system gets) against the MILP's, how much of
the top-priority demand each serves, and the moved allocations.

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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import highspy
import numpy

from services.allocation.domain.priority import ProjectStanding, priority_levels
from services.allocation.domain.solver import (
    AllocationProblem,
    Demand,
    Person,
    Solution,
    check_feasible,
    relative_gap,
    solve_greedy,
    solve_milp,
)

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


def run_case(
    problem: AllocationProblem, time_limit: float
) -> tuple[Solution, Solution, Solution, float]:
    greedy = solve_greedy(problem)
    fcfs = solve_greedy(problem, order="arrival")
    # As the service runs it: the greedy answer is the MILP's first incumbent.
    started = time.perf_counter()
    exact = solve_milp(problem, time_limit=time_limit, start=greedy.allocations)
    milp_seconds = time.perf_counter() - started
    if exact is None:
        raise SystemExit("the MILP found no solution within the time limit: raise --time-limit")
    for solution in (exact, greedy, fcfs):
        problems = check_feasible(problem, solution.allocations)
        if problems:
            raise SystemExit(f"infeasible {solution.method} solution: {problems[:3]}")
    return exact, greedy, fcfs, milp_seconds


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
        f"HiGHS {highspy.Highs().version()} (highspy, 1 thread); numpy {numpy.__version__}; "
        f"{platform.system()} {platform.release()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="*", help="open requests of the cases to run")
    parser.add_argument("--time-limit", type=float, default=240.0, help="MILP seconds per solve")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    sizes = [s for s in SIZES if not args.sizes or s[0] in args.sizes]

    print(f"machine: {machine()}")
    print(f"weeks: {len(WEEKS)}; MILP time limit {args.time_limit:g}s per solve; seed {args.seed}")
    print()
    print(
        "| requests | people | phase | MILP s | MILP status (own gap) | greedy s | greedy gap "
        "| FCFS value vs MILP | top-10% served MILP / FCFS | moved MILP / greedy |"
    )
    print("|---:|---:|---|---:|---|---:|---:|---:|---:|---:|")
    for requests, people in sizes:
        portfolio = generate(requests, people, args.seed)
        standings = portfolio.standings
        in_force: dict[tuple[str, str, str], float] = {}
        for phase in ("initial", "reprioritized"):
            if phase == "initial":
                problem = problem_for(portfolio, standings)
            else:
                problem = problem_for(portfolio, reprioritized(standings, args.seed + 1), in_force)
            exact, greedy, fcfs, seconds = run_case(problem, args.time_limit)
            in_force = exact.allocations
            status = exact.status + (f" ({exact.mip_gap:.2%})" if exact.mip_gap else "")
            print(
                f"| {requests} | {people} | {phase} | {seconds:.1f} | {status} "
                f"| {greedy.seconds:.2f} | {relative_gap(exact.value, greedy.value):.2%} "
                f"| {fcfs.value / exact.value:.1%} "
                f"| {top_share(problem, exact):.0%} / {top_share(problem, fcfs):.0%} "
                f"| {len(exact.moved)} / {len(greedy.moved)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
