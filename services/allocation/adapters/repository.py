"""Reading the allocation's tables into the domain's picture of the portfolio."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.tables import (
    AssignmentRow,
    CapacityChangeRow,
    PortfolioVersion,
    ProjectStandingRow,
    Resource,
    ResourceRequest,
)
from services.allocation.domain.decisions import OpenRequest, PoolMember, plan_request
from services.allocation.domain.pool import CapacityChange, ChangeKind
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.requests import iso_week
from services.allocation.domain.resolution import AllocationState
from services.allocation.domain.solver import Slot

REQUEST_FIELDS = (
    "project_id",
    "skill",
    "fte",
    "hours",
    "start",
    "end",
    "priority",
    "named_resource",
)
"""A request's content as its event gave it: what tells a resent request from a changed one."""

_PLANNED_COLUMNS = ("request_id", *REQUEST_FIELDS, "decided_at")
"""What planning reads of a stored request (`open_request`)."""


def open_request(
    row: Any, current_week: str, arrival: int, hours_per_fte_week: float
) -> OpenRequest:
    """A stored request (a `ResourceRequest`, or a row of its `_PLANNED_COLUMNS`) as planned
    from `current_week` on."""
    # The weeks are derived from the dates again rather than read from `row.weeks`, so rows
    # stored before demand was counted on working days are planned by the same rule.
    return plan_request(
        request_id=row.request_id,
        project_id=row.project_id,
        skill=row.skill,
        fte=row.fte,
        hours=row.hours,
        start=row.start,
        end=row.end,
        current_week=current_week,
        hours_per_fte_week=hours_per_fte_week,
        named_resource=row.named_resource,
        priority=row.priority,
        arrival=arrival,
        decided=row.decided_at is not None,
    )


def standing_of(row: ProjectStandingRow, portfolio_size: int | None) -> ProjectStanding:
    return ProjectStanding(
        project_id=row.project_id,
        name=row.name,
        lifecycle=row.lifecycle,
        key_project=row.key_project,
        rank=row.rank,
        score=row.score,
        portfolio_size=portfolio_size,
        strategy_version=row.strategy_version,
    )


async def portfolio_size(session: AsyncSession) -> int | None:
    latest = (
        await session.exec(
            select(PortfolioVersion).order_by(col(PortfolioVersion.strategy_version).desc())
        )
    ).first()
    return latest.ranked if latest else None


def change_kind(stored: str) -> ChangeKind:
    """A stored kind (the table allows only these two)."""
    return "absence" if stored == "absence" else "contract"


async def pool_members(session: AsyncSession) -> dict[str, PoolMember]:
    """Every resource with its usual capacity and dated capacity changes."""
    changes: dict[str, list[CapacityChange]] = defaultdict(list)
    for change in (await session.exec(select(CapacityChangeRow))).all():
        changes[change.resource_id].append(
            CapacityChange(
                starts=change.starts,
                ends=change.ends,
                capacity_fte=change.capacity_fte,
                reason=change.reason,
                kind=change_kind(change.kind),
            )
        )
    return {
        resource.resource_id: PoolMember(
            resource_id=resource.resource_id,
            name=resource.name,
            skills=tuple(resource.skills),
            capacity_fte=resource.capacity_fte,
            changes=tuple(changes[resource.resource_id]),
        )
        for resource in (await session.exec(select(Resource))).all()
    }


async def load_state(
    session: AsyncSession, *, today: date, hours_per_fte_week: float
) -> AllocationState:
    """The portfolio from the current ISO week on; finished, decided requests are left out."""
    current_week = iso_week(today)
    # Plain rows of the columns planning reads, not ORM objects: a re-resolution reads every
    # request, tens of thousands after a backlog, and building ORM objects (and their weeks
    # arrays, which planning derives again) was most of the time it held the event loop.
    table = ResourceRequest.__table__  # type: ignore[attr-defined]
    rows = (
        await session.exec(
            select(*(table.c[name] for name in _PLANNED_COLUMNS)).order_by(
                table.c.received_at, table.c.request_id
            )
        )
    ).all()
    requests: dict[str, OpenRequest] = {}
    for arrival, row in enumerate(rows):
        request = open_request(row, current_week, arrival, hours_per_fte_week)
        if request.planned or not request.decided:
            requests[request.request_id] = request
    size = await portfolio_size(session)
    standings = {
        row.project_id: standing_of(row, size)
        for row in (await session.exec(select(ProjectStandingRow))).all()
    }
    allocations: dict[Slot, float] = {
        (row.request_id, row.resource_id, row.week): row.fte
        for row in (
            await session.exec(select(AssignmentRow).where(col(AssignmentRow.week) >= current_week))
        ).all()
    }
    return AllocationState(
        current_week=current_week,
        people=await pool_members(session),
        requests=requests,
        standings=standings,
        allocations=allocations,
    )
