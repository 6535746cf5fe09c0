"""What re-resolution stores and publishes, on the fake unit of work (no broker, no database):
each decision once, conflicts before the decisions they explain, a changed allocation as a
change, a restated reason again, superseded and ended conflicts closed. The domain's rules
(who wins, and why) are tested in `test_domain.py`; `test_allocation_flow.py` proves the event
path and the SQL end to end."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import date

import pytest

from services.allocation.domain.decisions import OpenRequest, PoolMember
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.resolution import AllocationState, Resolution, resolve
from services.allocation.service_layer.resolution import apply_resolution
from shared.events.contracts import (
    AllocationChanged,
    ResourceAllocated,
    ResourceConflictResolved,
)
from tests.fakes.allocation import FakeAllocationUnitOfWork

pytestmark = pytest.mark.fast

WEEKS = ("2027-W01", "2027-W02")


def request(request_id: str, project_id: str, arrival: int) -> OpenRequest:
    return OpenRequest(
        request_id=request_id,
        project_id=project_id,
        skill="Architect",
        fte=1.0,
        start=date(2027, 1, 4),
        end=date(2027, 1, 15),
        weeks=WEEKS,
        planned=WEEKS,
        named_resource=None,
        arrival=arrival,
    )


def standings(first: str, second: str, *, version: int = 1) -> dict[str, ProjectStanding]:
    """Two running projects ranked `first`, `second` under strategy `version`."""
    return {
        project_id: ProjectStanding(
            project_id, lifecycle="active", rank=rank, portfolio_size=2, strategy_version=version
        )
        for rank, project_id in enumerate((first, second), start=1)
    }


FIRST = AllocationState(
    current_week="2027-W01",
    people={"maria": PoolMember("maria", "Maria Rossi", ("architect",), 1.0)},
    requests={"REQ-A": request("REQ-A", "PRJ-A", 0), "REQ-B": request("REQ-B", "PRJ-B", 1)},
    standings=standings("PRJ-B", "PRJ-A"),
    allocations={},
)


def after(
    state: AllocationState, resolution: Resolution, ranked: Mapping[str, ProjectStanding]
) -> AllocationState:
    """The state the next re-resolution loads: the requests decided, the allocations kept."""
    return AllocationState(
        current_week=state.current_week,
        people=state.people,
        requests={key: replace(value, decided=True) for key, value in state.requests.items()},
        standings=ranked,
        allocations=resolution.allocations,
    )


async def decided_once() -> tuple[FakeAllocationUnitOfWork, Resolution]:
    uow = FakeAllocationUnitOfWork()
    resolution = resolve(FIRST, None)
    await apply_resolution(uow, FIRST, resolution, ["REQ-A requested", "REQ-B requested"])
    return uow, resolution


async def test_each_request_is_decided_once_and_its_conflict_published_before_it() -> None:
    uow, resolution = await decided_once()

    assert [type(event).__name__ for event in uow.events] == [
        "ResourceConflictResolved",
        "ResourceAllocated",
        "ResourceAllocated",
    ]
    decisions = {event.request_id: event for event in uow.published(ResourceAllocated)}
    assert {key: (d.status, d.fte_granted) for key, d in decisions.items()} == {
        "REQ-A": ("denied", 0.0),
        "REQ-B": ("granted", 1.0),
    }
    assert uow.requests.stored["REQ-A"][0] == "denied"
    assert set(uow.requests.decided_at) == {"REQ-A", "REQ-B"}
    assert uow.assignments.slots == {("REQ-B", "maria", week): 1.0 for week in WEEKS}
    [conflict] = uow.published(ResourceConflictResolved)
    row = uow.conflicts.by_id[conflict.conflict_id]
    assert (row.state, row.cause) == ("resolved", "REQ-A requested; REQ-B requested")

    # The same portfolio re-solved: nothing new to store or say.
    published = len(uow.events)
    state = after(FIRST, resolution, FIRST.standings)
    await apply_resolution(uow, state, resolve(state, None), ["a holiday elsewhere"])
    assert len(uow.events) == published
    assert row.state == "resolved"


async def test_a_new_ranking_publishes_the_changes_and_supersedes_the_conflict() -> None:
    uow, resolution = await decided_once()
    [old] = uow.published(ResourceConflictResolved)
    state = after(FIRST, resolution, standings("PRJ-A", "PRJ-B", version=2))
    uow.events.clear()

    await apply_resolution(uow, state, resolve(state, None), ["strategy v2"])

    changes = {event.request_id: event for event in uow.published(AllocationChanged)}
    assert {key: (c.before.fte_granted, c.after.fte_granted) for key, c in changes.items()} == {
        "REQ-A": (0.0, 1.0),
        "REQ-B": (1.0, 0.0),
    }
    assert changes["REQ-B"].cause.startswith("strategy v2. Denied")
    assert uow.published(ResourceAllocated) == []  # decided before: a change, not a decision
    [new] = uow.published(ResourceConflictResolved)
    closed = uow.conflicts.by_id[old.conflict_id]
    assert (closed.state, closed.closed_reason) == (
        "closed",
        f"superseded by {new.conflict_id} (strategy v2)",
    )


async def test_a_decision_that_reads_otherwise_with_the_same_people_is_published_again() -> None:
    uow, resolution = await decided_once()
    # Strategy v2 ranks them the same: the allocation stands, its reason names v2 now.
    state = after(FIRST, resolution, standings("PRJ-B", "PRJ-A", version=2))
    uow.events.clear()

    await apply_resolution(uow, state, resolve(state, None), ["strategy v2"])

    assert uow.published(AllocationChanged) == []
    restated = uow.published(ResourceAllocated)
    assert [event.request_id for event in restated] == ["REQ-A"]
    assert "under strategy v2" in restated[0].reason
    assert "under strategy v2" in str(uow.requests.stored["REQ-A"][2])


async def test_a_conflict_no_longer_contested_is_closed_with_the_cause() -> None:
    uow, resolution = await decided_once()
    [old] = uow.published(ResourceConflictResolved)
    gone = {**FIRST.standings, "PRJ-B": ProjectStanding("PRJ-B", lifecycle="terminated")}
    state = after(FIRST, resolution, gone)

    await apply_resolution(uow, state, resolve(state, None), ["PRJ-B terminated"])

    closed = uow.conflicts.by_id[old.conflict_id]
    assert (closed.state, closed.closed_reason) == (
        "closed",
        "no longer contested after: PRJ-B terminated",
    )
