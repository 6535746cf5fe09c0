"""Read queries behind allocation's HTTP API: pages and lookups of its tables, nothing changed.

The routes in `services/allocation/entrypoints/` ask these; what the handlers and the resolution
read to decide lives in `repository.py`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import literal, or_, tuple_
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.tables import (
    AssignmentRow,
    CapacityChangeRow,
    ConflictRow,
    InterventionRow,
    ProjectStandingRow,
    ResolutionRunRow,
    ResourceRequestRow,
    ResourceRow,
)


async def resources_after(
    session: AsyncSession, *, after: str | None, limit: int | None
) -> Sequence[ResourceRow]:
    """The pool by resource id, from after `after` (a page cursor), at most `limit` (None: all)."""
    query = select(ResourceRow).order_by(col(ResourceRow.resource_id))
    if after:
        query = query.where(col(ResourceRow.resource_id) > after)
    if limit is not None:
        query = query.limit(limit)
    return (await session.exec(query)).all()


async def capacity_changes_of(
    session: AsyncSession, resource_ids: Collection[str]
) -> Sequence[CapacityChangeRow]:
    """The dated capacity changes of these resources, by start date."""
    return (
        await session.exec(
            select(CapacityChangeRow)
            .where(col(CapacityChangeRow.resource_id).in_(resource_ids))
            .order_by(col(CapacityChangeRow.starts))
        )
    ).all()


async def requests_page(
    session: AsyncSession,
    *,
    project_id: str | None,
    status: str | None,
    after: str | None,
    limit: int,
) -> Sequence[ResourceRequestRow]:
    """Resource requests by request id, filtered, then the page (`after` a request id)."""
    query = select(ResourceRequestRow).order_by(col(ResourceRequestRow.request_id))
    if project_id:
        query = query.where(ResourceRequestRow.project_id == project_id)
    if status:
        query = query.where(ResourceRequestRow.status == status)
    if after:
        query = query.where(col(ResourceRequestRow.request_id) > after)
    return (await session.exec(query.limit(limit))).all()  # the limit after every filter


async def requests_known(session: AsyncSession, request_ids: Collection[str]) -> set[str]:
    """Which of these request ids exist."""
    found = await session.exec(
        select(ResourceRequestRow.request_id).where(
            col(ResourceRequestRow.request_id).in_(request_ids)
        )
    )
    return set(found.all())


async def assignments_of_requests(
    session: AsyncSession, request_ids: Collection[str]
) -> Sequence[AssignmentRow]:
    """The weekly assignments (person, week, FTE) of these requests."""
    return (
        await session.exec(
            select(AssignmentRow).where(col(AssignmentRow.request_id).in_(request_ids))
        )
    ).all()


async def assignments_with_requests(
    session: AsyncSession,
    *,
    project_id: str | None = None,
    resource_id: str | None = None,
    from_week: str | None = None,
    to_week: str | None = None,
) -> Sequence[tuple[AssignmentRow, ResourceRequestRow]]:
    """Each weekly assignment with its request, filtered by project, person and ISO weeks
    (`from_week` and `to_week` included)."""
    query = select(AssignmentRow, ResourceRequestRow).join(
        ResourceRequestRow, col(ResourceRequestRow.request_id) == col(AssignmentRow.request_id)
    )
    if project_id:
        query = query.where(ResourceRequestRow.project_id == project_id)
    if resource_id:
        query = query.where(AssignmentRow.resource_id == resource_id)
    if from_week:
        query = query.where(col(AssignmentRow.week) >= from_week)
    if to_week:
        query = query.where(col(AssignmentRow.week) <= to_week)
    return (await session.exec(query)).all()


async def resource_names(session: AsyncSession) -> dict[str, str]:
    """Every resource's name by its id."""
    rows = await session.exec(select(ResourceRow.resource_id, ResourceRow.name))
    return dict(rows.all())


async def last_assigned_week(session: AsyncSession) -> str | None:
    """The latest ISO week anyone is assigned in, or None when no one is."""
    return (
        await session.exec(select(AssignmentRow.week).order_by(col(AssignmentRow.week).desc()))
    ).first()


async def assignments_between(
    session: AsyncSession, first_week: str, last_week: str
) -> Sequence[AssignmentRow]:
    """The weekly assignments from `first_week` to `last_week` (ISO weeks, both included)."""
    return (
        await session.exec(
            select(AssignmentRow).where(
                col(AssignmentRow.week) >= first_week, col(AssignmentRow.week) <= last_week
            )
        )
    ).all()


async def project_standings(session: AsyncSession, *, limit: int) -> Sequence[ProjectStandingRow]:
    """Projects' priorities as allocation applies them, by project id."""
    return (
        await session.exec(
            select(ProjectStandingRow).order_by(col(ProjectStandingRow.project_id)).limit(limit)
        )
    ).all()


async def conflicts_page(
    session: AsyncSession,
    *,
    state: str | None,
    project_id: str | None,
    before: ConflictRow | None,
    limit: int,
) -> Sequence[ConflictRow]:
    """Conflicts newest first, filtered (by state; won or lost by a project), older than
    `before` (a page cursor), at most `limit` of the matching ones."""
    query = select(ConflictRow).order_by(
        col(ConflictRow.created_at).desc(), col(ConflictRow.conflict_id).desc()
    )
    if state:
        query = query.where(ConflictRow.state == state)
    if project_id:
        decision = [{"project_id": project_id}]
        query = query.where(
            or_(
                col(ConflictRow.winners).contains(decision),
                col(ConflictRow.losers).contains(decision),
            )
        )
    if before is not None:
        query = query.where(
            tuple_(col(ConflictRow.created_at), col(ConflictRow.conflict_id))
            < tuple_(literal(before.created_at), literal(before.conflict_id))
        )
    return (await session.exec(query.limit(limit))).all()


async def recent_resolutions(session: AsyncSession, *, limit: int) -> Sequence[ResolutionRunRow]:
    """The latest re-resolution runs, newest first."""
    return (
        await session.exec(
            select(ResolutionRunRow).order_by(col(ResolutionRunRow.id).desc()).limit(limit)
        )
    ).all()


async def experts(session: AsyncSession) -> Sequence[ResourceRow]:
    """The resources with at least one PMO specialty, by resource id."""
    return (
        await session.exec(
            select(ResourceRow)
            .where(func.cardinality(col(ResourceRow.specialties)) > 0)
            .order_by(col(ResourceRow.resource_id))
        )
    ).all()


async def specialties_held(session: AsyncSession) -> set[str]:
    """Every specialty some resource of the pool has."""
    return {
        specialty
        for specialties in (await session.exec(select(ResourceRow.specialties))).all()
        for specialty in specialties
    }


async def interventions_page(
    session: AsyncSession, *, project_id: str | None, state: str | None, limit: int
) -> Sequence[InterventionRow]:
    """Interventions newest first, of one project and in one state when given."""
    query = select(InterventionRow).order_by(
        col(InterventionRow.proposed_at).desc(), col(InterventionRow.intervention_id)
    )
    if project_id is not None:
        query = query.where(col(InterventionRow.project_id) == project_id)
    if state is not None:
        query = query.where(col(InterventionRow.state) == state)
    return (await session.exec(query.limit(limit))).all()
