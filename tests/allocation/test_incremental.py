"""Incremental re-resolution: solving only the components a change touches decides exactly what
solving the whole book decides, on generated books (new requests, a capacity change, both)."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

import pytest

from services.allocation.domain.decisions import (
    Explainer,
    OpenRequest,
    PoolMember,
    plan_request,
)
from services.allocation.domain.pool import CapacityChange
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.resolution import (
    AllocationState,
    Resolution,
    book_parts,
    request_weights,
    resolve,
)

pytestmark = pytest.mark.fast

MONDAY = date(2027, 1, 4)  # 2027-W01, the current week
CURRENT = "2027-W01"
SKILLS = ("python", "sap", "testing", "design", "data")


def people(rng: random.Random, count: int) -> dict[str, PoolMember]:
    pool = {}
    for n in range(count):
        skills = tuple(rng.sample(SKILLS, rng.choice((1, 1, 2))))
        changes: tuple[CapacityChange, ...] = ()
        if rng.random() < 0.3:  # away for some days, or a reduced week
            starts = MONDAY + timedelta(days=rng.randrange(0, 35))
            changes = (
                CapacityChange(
                    starts=starts,
                    ends=starts + timedelta(days=rng.randrange(0, 12)),
                    capacity_fte=rng.choice((0.0, 0.5)),
                    reason="leave",
                    kind="absence",
                ),
            )
        pool[f"P{n}"] = PoolMember(f"P{n}", f"Person {n}", skills, rng.choice((0.5, 1.0)), changes)
    return pool


def requests(
    rng: random.Random, first: int, count: int, pool: dict[str, PoolMember]
) -> dict[str, OpenRequest]:
    found = {}
    for n in range(first, first + count):
        start = MONDAY + timedelta(days=rng.randrange(-7, 40))
        named = None
        if rng.random() < 0.15:
            named = rng.choice([*pool, "NOBODY"]) if pool else "NOBODY"
        request = plan_request(
            request_id=f"R{n}",
            project_id=f"PRJ-{rng.randrange(8)}",
            skill=rng.choice(SKILLS),
            fte=rng.choice((0.2, 0.5, 0.5, 1.0)),
            hours=None,
            start=start,
            end=start + timedelta(days=rng.randrange(0, 30)),
            current_week=CURRENT,
            hours_per_fte_week=40.0,
            named_resource=named,
            priority=rng.choice((None, "high", "low")),
            arrival=n,
        )
        found[request.request_id] = request
    return found


def standings(rng: random.Random) -> dict[str, ProjectStanding]:
    ranks = rng.sample(range(1, 9), 8)
    return {
        f"PRJ-{n}": ProjectStanding(
            project_id=f"PRJ-{n}",
            name=f"Project {n}",
            lifecycle=rng.choice(("active", "active", "approved", "proposed", "on_hold")),
            key_project=rng.random() < 0.2,
            rank=ranks[n],
            portfolio_size=8,
        )
        for n in range(7)  # PRJ-7 is not registered
    }


def decided(state: AllocationState, resolution: Resolution) -> AllocationState:
    """The state once a resolution is applied: its allocations in force, every request decided."""
    return replace(
        state,
        requests={r: replace(q, decided=True) for r, q in state.requests.items()},
        allocations=resolution.allocations,
    )


def book(seed: int) -> AllocationState:
    """A book resolved in full once, every request decided (what the service holds)."""
    rng = random.Random(seed)
    pool = people(rng, rng.randrange(2, 12))
    state = AllocationState(CURRENT, pool, requests(rng, 0, rng.randrange(5, 40), pool), {}, {})
    state = replace(state, standings=standings(rng))
    return decided(state, resolve(state, None))


def assert_same_as_full(state: AllocationState, weeks: set[str]) -> Resolution:
    """Incremental and full resolution of `state` agree on everything they decide and publish."""
    part = resolve(state, weeks)
    full = resolve(state, None)
    assert part.allocations == full.allocations
    assert part.decided == full.decided
    assert part.changed == full.changed
    # Every decision the incremental run made is the full run's; every other one stands as it
    # was, and is what the full run says too.
    standing = Explainer(
        state.requests, state.people, state.standings, request_weights(state), state.allocations
    )
    for request_id, outcome in full.outcomes.items():
        if request_id in part.outcomes:
            assert part.outcomes[request_id] == outcome, request_id
        else:
            assert part.solved is not None
            assert request_id not in part.solved
            assert standing.outcome(state.requests[request_id]) == outcome, request_id
    # The conflicts: those of the components solved are the full run's there; the others'
    # stand (are explained the same before and after).
    assert part.solved is not None
    kept = {c.conflict_id for c in standing.conflicts() if part.solved.isdisjoint(c.request_ids)}
    assert {c.conflict_id for c in part.conflicts} | kept == {c.conflict_id for c in full.conflicts}
    return part


@pytest.mark.parametrize("seed", range(60))
def test_new_requests_are_decided_as_a_full_solve_decides(seed: int) -> None:
    state = book(seed)
    rng = random.Random(seed + 1000)
    fresh = requests(rng, 1000, rng.randrange(1, 8), dict(state.people))
    state = replace(state, requests={**state.requests, **fresh})
    part = assert_same_as_full(state, set())
    assert set(part.decided) == set(fresh)


@pytest.mark.parametrize("seed", range(40))
def test_a_capacity_change_is_resolved_as_a_full_solve_resolves(seed: int) -> None:
    state = book(seed)
    rng = random.Random(seed + 2000)
    person = rng.choice(sorted(state.people))
    starts = MONDAY + timedelta(days=rng.randrange(0, 28))
    ends = starts + timedelta(days=rng.randrange(0, 10))
    member = state.people[person]
    away = CapacityChange(starts=starts, ends=ends, capacity_fte=0.0, reason="ill", kind="absence")
    state = replace(
        state, people={**state.people, person: replace(member, changes=(*member.changes, away))}
    )
    weeks = {f"{day.isocalendar()[0]}-W{day.isocalendar()[1]:02d}" for day in (starts, ends)}
    fresh = requests(rng, 1000, rng.randrange(0, 3), dict(state.people))
    state = replace(state, requests={**state.requests, **fresh})
    assert_same_as_full(state, weeks)


@pytest.mark.parametrize("seed", range(20))
def test_a_full_solve_of_a_resolved_book_moves_nothing(seed: int) -> None:
    """Why a component left alone keeps what a solve would give it."""
    state = book(seed)
    again = resolve(state, None)
    assert again.allocations == state.allocations
    assert again.changed == ()


def test_requests_sharing_no_one_are_apart_and_a_shared_person_joins_them() -> None:
    pool = {
        "ann": PoolMember("ann", "Ann", ("python",), 1.0),
        "bob": PoolMember("bob", "Bob", ("sap", "python"), 1.0),
        "cid": PoolMember("cid", "Cid", ("testing",), 1.0),
    }

    def ask(request_id: str, skill: str, days: int = 4, named: str | None = None) -> OpenRequest:
        return plan_request(
            request_id=request_id,
            project_id="PRJ-1",
            skill=skill,
            fte=0.5,
            hours=None,
            start=MONDAY,
            end=MONDAY + timedelta(days=days),
            current_week=CURRENT,
            hours_per_fte_week=40.0,
            named_resource=named,
        )

    asked = [
        ask("py", "python"),
        ask("sap", "sap"),
        ask("test", "testing"),
        ask("later", "testing", days=20),
        ask("nobody", "cobol"),
        ask("named", "x", named="cid"),
    ]
    state = AllocationState(CURRENT, pool, {r.request_id: r for r in asked}, {}, {})
    parts = book_parts(state)
    label = parts.label
    assert label["py"] == label["sap"]  # bob has both skills
    assert label["test"] == label["later"] == label["named"]  # cid, in W01
    assert len({label["py"], label["test"], label["nobody"]}) == 3
    assert label["nobody"] not in parts.staffed
