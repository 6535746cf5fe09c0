"""Allocation's HTTP API for who works on what: allocations, utilisation, projects' priority."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, HTTPException, status

from services.allocation.adapters import queries
from services.allocation.adapters.repository import pool_members
from services.allocation.adapters.tables import ResourceRow
from services.allocation.domain.requests import iso_week, week_monday
from services.allocation.entrypoints.mapping import allocations_out, utilisation_out
from services.allocation.entrypoints.resources_api import missing_resource
from services.allocation.entrypoints.schemas import (
    AssignmentOut,
    ProjectPriorityOut,
    ResourceUtilisationOut,
    Week,
)
from shared.dependencies import LargePageSize, Reader, SessionDep, row_or_404

router = APIRouter(tags=["allocations"])

MAX_HEATMAP_WEEKS = 104


@router.get("/allocations", summary="Who works on what, in which weeks")
async def list_allocations(
    session: SessionDep,
    _: Reader,
    project_id: str | None = None,
    resource_id: str | None = None,
    from_week: Week | None = None,
    to_week: Week | None = None,
) -> list[AssignmentOut]:
    names = await queries.resource_names(session)
    held = await queries.assignments_with_requests(
        session,
        project_id=project_id,
        resource_id=resource_id,
        from_week=from_week,
        to_week=to_week,
    )
    return allocations_out(held, names)


@router.get("/projects/{project_id}/allocations", summary="A project's people")
async def project_allocations(
    session: SessionDep, project_id: str, _: Reader
) -> list[AssignmentOut]:
    names = await queries.resource_names(session)
    held = await queries.assignments_with_requests(session, project_id=project_id)
    return allocations_out(held, names)


@router.get("/resources/{resource_id}/allocations", summary="A person's projects")
async def resource_allocations(
    session: SessionDep, resource_id: str, _: Reader
) -> list[AssignmentOut]:
    await row_or_404(session, ResourceRow, resource_id, missing_resource(resource_id))
    names = await queries.resource_names(session)
    held = await queries.assignments_with_requests(session, resource_id=resource_id)
    return allocations_out(held, names)


@router.get(
    "/utilisation", summary="Capacity and allocated FTE per person per week: the heatmap's data"
)
async def utilisation(
    session: SessionDep,
    _: Reader,
    from_week: Week | None = None,
    to_week: Week | None = None,
    skill: str | None = None,
) -> list[ResourceUtilisationOut]:
    start = from_week or iso_week(datetime.now(UTC).date())
    if to_week is None:
        to_week = max(await queries.last_assigned_week(session) or start, start)
    invalid = status.HTTP_422_UNPROCESSABLE_CONTENT
    try:
        first_day, last_day = week_monday(start), week_monday(to_week)
    except ValueError as error:
        raise HTTPException(invalid, f"Not an ISO week: {error}") from None
    if last_day < first_day:
        raise HTTPException(invalid, f"to_week {to_week} is before from_week {start}.")
    span = (last_day - first_day).days // 7 + 1
    if span > MAX_HEATMAP_WEEKS:
        raise HTTPException(invalid, f"At most {MAX_HEATMAP_WEEKS} weeks at once (asked {span}).")
    weeks = [iso_week(first_day + timedelta(days=7 * i)) for i in range(span)]
    members = await pool_members(session)
    held = await queries.assignments_between(session, weeks[0], weeks[-1])
    return utilisation_out(members.values(), weeks, held, skill)


@router.get(
    "/projects",
    summary="Each project's priority as allocation applies it: stage, key project, rank",
)
async def list_project_priorities(
    session: SessionDep, _: Reader, limit: LargePageSize = 500
) -> list[ProjectPriorityOut]:
    rows = await queries.project_standings(session, limit=limit)
    return [ProjectPriorityOut.model_validate(row, from_attributes=True) for row in rows]
