"""One reading of allocation's decisions for every read model (registry, monitoring, digest)."""

from __future__ import annotations

import pytest

from shared.allocation_outcomes import grant_status, request_outcomes
from shared.events.contracts import AllocationDecision, ResourceAllocated, ResourceConflictResolved


@pytest.mark.parametrize(
    ("requested", "granted", "status"),
    [
        (1.0, 1.0, "granted"),
        (0.3, 0.1 + 0.2, "granted"),  # 0.30000000000000004: a float sum, not an over-grant
        (0.3, 0.3 - 1e-12, "granted"),  # within the tolerance of a float sum
        (1.0, 0.5, "partial"),
        (1.0, 0.0, "denied"),
        (0.0, 0.0, "granted"),  # nothing asked, nothing missing
    ],
)
def test_a_decision_is_graded_by_its_figures(requested: float, granted: float, status: str) -> None:
    assert grant_status(requested, granted) == status


def _decision(request_id: str, project_id: str, granted: float) -> AllocationDecision:
    return AllocationDecision(
        request_id=request_id,
        project_id=project_id,
        fte_requested=1.0,
        fte_granted=granted,
        why=f"{request_id} why",
    )


def test_a_conflict_gives_each_request_its_outcome_in_request_order() -> None:
    conflict = ResourceConflictResolved(
        conflict_id="C-1",
        skill="Data Engineering",
        weeks=["2026-W10"],
        winners=[_decision("REQ-B", "PRJ-1", 1.0)],
        losers=[_decision("REQ-C", "PRJ-2", 0.0), _decision("REQ-A", "PRJ-2", 0.25)],
        rationale="PRJ-1 ranks first",
    )
    outcomes = request_outcomes(conflict)
    assert [(o.request_id, o.status, o.why) for o in outcomes] == [
        ("REQ-A", "partial", "REQ-A why"),
        ("REQ-B", "granted", "REQ-B why"),
        ("REQ-C", "denied", "REQ-C why"),
    ]
    assert {o.skill for o in outcomes} == {"Data Engineering"}
    assert outcomes[0].figures() == {
        "project_id": "PRJ-2",
        "skill": "Data Engineering",
        "fte_requested": 1.0,
        "fte_granted": 0.25,
    }


def test_an_allocation_is_one_outcome_with_the_status_and_reason_it_states() -> None:
    allocated = ResourceAllocated(
        project_id="PRJ-1",
        request_id="REQ-A",
        skill="Data Engineering",
        fte_granted=0.5,
        fte_requested=1.0,
        weeks=["2026-W10"],
        status="partial",
        reason="half the pool is taken",
    )
    (outcome,) = request_outcomes(allocated)
    assert (outcome.project_id, outcome.status, outcome.why) == (
        "PRJ-1",
        "partial",
        "half the pool is taken",
    )
