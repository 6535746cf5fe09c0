"""A resource request's allocation outcome, as every read model takes it from allocation's events.

Allocation decides a request in `resource-allocated`, or in a `resource-conflict-resolved` that
names each request's winners and losers; registry (shortfalls), monitoring (the
`resource_shortfall` health rule) and notifications (the digest) keep the newest outcome per
request. What an outcome is, how a conflict's decision is graded (`grant_status`) and which
columns every such table has (`RequestOutcomeColumns`) are stated here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Field, SQLModel

from shared.events.contracts import AllocationStatus, ResourceAllocated, ResourceConflictResolved

FTE_EPSILON = 1e-9
"""FTE figures are sums of floats: closer than this is equal (0.1 + 0.2 granted of 0.3)."""


def grant_status(fte_requested: float, fte_granted: float) -> AllocationStatus:
    """`granted`, `partial` or `denied`, from the figures (a conflict's decisions give none)."""
    if fte_granted + FTE_EPSILON >= fte_requested:
        return "granted"
    return "denied" if fte_granted <= FTE_EPSILON else "partial"


@dataclass(frozen=True)
class RequestOutcome:
    """One request's allocation decision: what was asked, what was granted, and why."""

    request_id: str
    project_id: str
    skill: str | None
    fte_requested: float
    fte_granted: float
    status: AllocationStatus
    why: str

    def figures(self) -> dict[str, Any]:
        """The values of `RequestOutcomeColumns` but the key (`request_id`)."""
        return {
            "project_id": self.project_id,
            "skill": self.skill,
            "fte_requested": self.fte_requested,
            "fte_granted": self.fte_granted,
        }


def request_outcomes(
    event: ResourceAllocated | ResourceConflictResolved,
) -> Sequence[RequestOutcome]:
    """Each request an allocation event decides, in request id order (so that replicas lock
    rows in one order). A conflict's decisions are graded by `grant_status`."""
    if isinstance(event, ResourceAllocated):
        return (
            RequestOutcome(
                event.request_id,
                event.project_id,
                event.skill,
                event.fte_requested,
                event.fte_granted,
                event.status,
                event.reason,
            ),
        )
    decisions = sorted([*event.winners, *event.losers], key=lambda decision: decision.request_id)
    return tuple(
        RequestOutcome(
            decision.request_id,
            decision.project_id,
            event.skill,
            decision.fte_requested,
            decision.fte_granted,
            grant_status(decision.fte_requested, decision.fte_granted),
            decision.why,
        )
        for decision in decisions
    )


class RequestOutcomeColumns(SQLModel):
    """The columns every table of request outcomes has; a service adds its own (status, why,
    the decision time, the cause)."""

    request_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    skill: str | None = None
    fte_requested: float
    fte_granted: float
