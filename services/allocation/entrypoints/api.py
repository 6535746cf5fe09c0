"""Allocation's HTTP API: the pool, requests and decisions, allocations, utilisation, conflicts,
what-if."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from sqlalchemy import literal, or_, tuple_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.repository import change_kind, pool_members
from services.allocation.adapters.tables import (
    AssignmentRow,
    CapacityChangeRow,
    ConflictRow,
    ProjectStandingRow,
    ResolutionRun,
    Resource,
    ResourceRequest,
)
from services.allocation.domain.decisions import assignments_of
from services.allocation.domain.pool import CapacityChange, default_kind
from services.allocation.domain.requests import (
    daily_fte,
    demand_by_week,
    iso_week,
    week_monday,
    working_days_by_week,
)
from services.allocation.entrypoints.schemas import (
    AssignmentOut,
    CapacityChangeIn,
    CapacityChangeOut,
    ConflictOut,
    ProjectPriorityOut,
    RequestOut,
    ResolutionOut,
    ResourceIn,
    ResourceOut,
    ResourcePatch,
    SolverReport,
    UtilisationCell,
    UtilisationRow,
    WhatIfChange,
    WhatIfConflict,
    WhatIfIn,
    WhatIfOut,
    WhatIfOutcome,
)
from services.allocation.service_layer.pool import (
    ResourceChange,
    ResourceExists,
    UnknownResource,
    add_resource,
    change_resource,
)
from services.allocation.service_layer.resolution import (
    CLOSED,
    assignments,
    hold_resolution_lock,
    snapshot,
)
from services.allocation.service_layer.what_if import DraftRank, what_if
from shared.events.contracts import Assignment
from shared.http import runtime_of
from shared.security import Admin, Reader
from shared.settings import Settings

router = APIRouter()

Week = Annotated[str, Query(pattern=r"^\d{4}-W\d{2}$", description="An ISO week like 2026-W48")]
Limit = Annotated[int, Query(ge=1, le=1000)]
MAX_HEATMAP_WEEKS = 104


def _changes(items: list[CapacityChangeIn]) -> list[CapacityChange]:
    return [
        CapacityChange(
            starts=c.starts,
            ends=c.ends,
            capacity_fte=c.capacity_fte,
            reason=c.reason,
            kind=c.kind or default_kind(c.ends),
        )
        for c in items
    ]


async def _resources_out(session: AsyncSession, resources: list[Resource]) -> list[ResourceOut]:
    ids = [resource.resource_id for resource in resources]
    changes: dict[str, list[CapacityChangeOut]] = defaultdict(list)
    for change in (
        await session.exec(
            select(CapacityChangeRow)
            .where(col(CapacityChangeRow.resource_id).in_(ids))
            .order_by(col(CapacityChangeRow.starts))
        )
    ).all():
        changes[change.resource_id].append(
            CapacityChangeOut(
                starts=change.starts,
                ends=change.ends,
                capacity_fte=change.capacity_fte,
                kind=change_kind(change.kind),
                reason=change.reason,
            )
        )
    return [
        ResourceOut(
            resource_id=resource.resource_id,
            name=resource.name,
            skills=list(resource.skills),
            capacity_fte=resource.capacity_fte,
            capacity_changes=changes[resource.resource_id],
            updated_at=resource.updated_at,
        )
        for resource in resources
    ]


async def _resource_out(session: AsyncSession, resource: Resource) -> ResourceOut:
    return (await _resources_out(session, [resource]))[0]


# --- resources ---------------------------------------------------------------------------------


@router.post(
    "/resources",
    status_code=status.HTTP_201_CREATED,
    tags=["resources"],
    summary="Add a person or team to the pool (administrators)",
)
async def create_resource(request: Request, body: ResourceIn, _: Admin) -> ResourceOut:
    async with runtime_of(request).unit_of_work() as uow:
        # Wait for a running re-resolution, so it never solves half a change.
        await hold_resolution_lock(uow.session)
        try:
            resource = await add_resource(
                uow.session,
                resource_id=body.resource_id,
                name=body.name,
                skills=body.skills,
                capacity_fte=body.capacity_fte,
                capacity_changes=_changes(body.capacity_changes),
            )
        except ResourceExists:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Resource {body.resource_id!r} is already in the pool; change it with PATCH.",
            ) from None
        out = await _resource_out(uow.session, resource)
        await uow.commit()
    return out


@router.get("/resources", tags=["resources"], summary="The pool, by id")
async def list_resources(
    request: Request,
    _: Reader,
    skill: str | None = None,
    limit: Limit = 500,
    after: Annotated[str | None, Query(description="Page: resource ids after this one")] = None,
) -> list[ResourceOut]:
    query = select(Resource).order_by(col(Resource.resource_id))
    if after:
        query = query.where(col(Resource.resource_id) > after)
    async with runtime_of(request).sessions() as session:
        rows = list((await session.exec(query if skill else query.limit(limit))).all())
        if skill:  # skills keep the case first written: match them regardless of case
            rows = [r for r in rows if skill.casefold() in {s.casefold() for s in r.skills}]
        return await _resources_out(session, rows[:limit])


@router.get("/resources/{resource_id}", tags=["resources"], summary="One resource")
async def get_resource(request: Request, resource_id: str, _: Reader) -> ResourceOut:
    async with runtime_of(request).sessions() as session:
        resource = await session.get(Resource, resource_id)
        if resource is None:
            raise HTTPException(404, f"No resource {resource_id!r} in the pool.")
        return await _resource_out(session, resource)


@router.patch(
    "/resources/{resource_id}",
    tags=["resources"],
    summary="Change a resource: name, skills, capacity, dated capacity changes (administrators)",
)
async def patch_resource(
    request: Request, resource_id: str, body: ResourcePatch, _: Admin
) -> ResourceOut:
    change = ResourceChange(
        name=body.name,
        skills=body.skills,
        capacity_fte=body.capacity_fte,
        capacity_changes=(
            _changes(body.capacity_changes) if body.capacity_changes is not None else None
        ),
    )
    async with runtime_of(request).unit_of_work() as uow:
        # Wait for a running re-resolution, so it never solves half a change.
        await hold_resolution_lock(uow.session)
        try:
            resource = await change_resource(uow.session, resource_id, change)
        except UnknownResource:
            raise HTTPException(404, f"No resource {resource_id!r} in the pool.") from None
        out = await _resource_out(uow.session, resource)
        await uow.commit()
    return out


# --- requests and allocations -------------------------------------------------------------------


def _request_out(row: ResourceRequest, settings: Settings, lines: list[Assignment]) -> RequestOut:
    return RequestOut(
        request_id=row.request_id,
        project_id=row.project_id,
        skill=row.skill,
        fte=row.fte,
        hours=row.hours,
        fte_per_week=daily_fte(
            row.fte,
            row.hours,
            sum(working_days_by_week(row.start, row.end).values()),
            settings.allocation_hours_per_fte_week,
        ),
        fte_by_week=demand_by_week(
            row.fte, row.hours, row.start, row.end, settings.allocation_hours_per_fte_week
        ),
        start=row.start,
        end=row.end,
        weeks=list(working_days_by_week(row.start, row.end)),
        priority=row.priority,
        named_resource=row.named_resource,
        status=row.status,
        fte_granted=row.fte_granted,
        reason=row.reason,
        received_at=row.received_at,
        decided_at=row.decided_at,
        assignments=lines,
    )


async def _lines(session: AsyncSession, request_ids: list[str]) -> dict[str, list[Assignment]]:
    """Each request's assignments, one line per person and FTE."""
    held: dict[str, dict[tuple[str, str], float]] = defaultdict(dict)
    for row in (
        await session.exec(
            select(AssignmentRow).where(col(AssignmentRow.request_id).in_(request_ids))
        )
    ).all():
        held[row.request_id][(row.resource_id, row.week)] = row.fte
    return {
        request_id: [
            Assignment(resource_id=line.resource_id, fte=line.fte, weeks=list(line.weeks))
            for line in assignments_of(held[request_id])
        ]
        for request_id in request_ids
    }


@router.get("/requests", tags=["requests"], summary="Resource requests and their decisions")
async def list_requests(
    request: Request,
    _: Reader,
    project_id: str | None = None,
    state: Annotated[
        Literal["open", "granted", "partial", "denied"] | None,
        Query(alias="status", description="open (undecided), granted, partial or denied"),
    ] = None,
    limit: Limit = 100,
    after: Annotated[str | None, Query(description="Page: request ids after this one")] = None,
) -> list[RequestOut]:
    query = select(ResourceRequest).order_by(col(ResourceRequest.request_id))
    if project_id:
        query = query.where(ResourceRequest.project_id == project_id)
    if state:
        query = query.where(ResourceRequest.status == state)
    if after:
        query = query.where(col(ResourceRequest.request_id) > after)
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        rows = (await session.exec(query.limit(limit))).all()  # after every filter
        lines = await _lines(session, [row.request_id for row in rows])
        return [_request_out(row, runtime.settings, lines[row.request_id]) for row in rows]


@router.get(
    "/requests/{request_id}", tags=["requests"], summary="One request, its decision and who"
)
async def get_request(request: Request, request_id: str, _: Reader) -> RequestOut:
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        row = await session.get(ResourceRequest, request_id)
        if row is None:
            raise HTTPException(404, f"No resource request {request_id!r}.")
        lines = await _lines(session, [request_id])
        return _request_out(row, runtime.settings, lines[request_id])


async def _allocations(
    session: AsyncSession,
    *,
    project_id: str | None = None,
    resource_id: str | None = None,
    from_week: str | None = None,
    to_week: str | None = None,
) -> list[AssignmentOut]:
    query = select(AssignmentRow, ResourceRequest).join(
        ResourceRequest, col(ResourceRequest.request_id) == col(AssignmentRow.request_id)
    )
    if project_id:
        query = query.where(ResourceRequest.project_id == project_id)
    if resource_id:
        query = query.where(AssignmentRow.resource_id == resource_id)
    if from_week:
        query = query.where(col(AssignmentRow.week) >= from_week)
    if to_week:
        query = query.where(col(AssignmentRow.week) <= to_week)
    names = {r.resource_id: r.name for r in (await session.exec(select(Resource))).all()}
    lines: dict[tuple[str, str, float], tuple[ResourceRequest, list[str]]] = {}
    for held, owner in (await session.exec(query)).all():
        key = (held.request_id, held.resource_id, round(held.fte, 3))
        lines.setdefault(key, (owner, []))[1].append(held.week)
    return [
        AssignmentOut(
            request_id=request_id,
            project_id=owner.project_id,
            skill=owner.skill,
            resource_id=person,
            resource_name=names.get(person),
            fte=fte,
            weeks=sorted(weeks),
        )
        for (request_id, person, fte), (owner, weeks) in sorted(lines.items())
    ]


@router.get("/allocations", tags=["allocations"], summary="Who works on what, in which weeks")
async def list_allocations(
    request: Request,
    _: Reader,
    project_id: str | None = None,
    resource_id: str | None = None,
    from_week: Week | None = None,
    to_week: Week | None = None,
) -> list[AssignmentOut]:
    async with runtime_of(request).sessions() as session:
        return await _allocations(
            session,
            project_id=project_id,
            resource_id=resource_id,
            from_week=from_week,
            to_week=to_week,
        )


@router.get(
    "/projects/{project_id}/allocations", tags=["allocations"], summary="A project's people"
)
async def project_allocations(request: Request, project_id: str, _: Reader) -> list[AssignmentOut]:
    async with runtime_of(request).sessions() as session:
        return await _allocations(session, project_id=project_id)


@router.get(
    "/resources/{resource_id}/allocations", tags=["allocations"], summary="A person's projects"
)
async def resource_allocations(
    request: Request, resource_id: str, _: Reader
) -> list[AssignmentOut]:
    async with runtime_of(request).sessions() as session:
        if await session.get(Resource, resource_id) is None:
            raise HTTPException(404, f"No resource {resource_id!r} in the pool.")
        return await _allocations(session, resource_id=resource_id)


@router.get(
    "/utilisation",
    tags=["allocations"],
    summary="Capacity and allocated FTE per person per week: the heatmap's data",
)
async def utilisation(
    request: Request,
    _: Reader,
    from_week: Week | None = None,
    to_week: Week | None = None,
    skill: str | None = None,
) -> list[UtilisationRow]:
    start = from_week or iso_week(datetime.now(UTC).date())
    async with runtime_of(request).sessions() as session:
        if to_week is None:
            last = (
                await session.exec(
                    select(AssignmentRow.week).order_by(col(AssignmentRow.week).desc())
                )
            ).first()
            to_week = max(last or start, start)
        try:
            first_day, last_day = week_monday(start), week_monday(to_week)
        except ValueError as error:
            raise HTTPException(422, f"Not an ISO week: {error}") from None
        if last_day < first_day:
            raise HTTPException(422, f"to_week {to_week} is before from_week {start}.")
        span = (last_day - first_day).days // 7 + 1
        if span > MAX_HEATMAP_WEEKS:
            raise HTTPException(422, f"At most {MAX_HEATMAP_WEEKS} weeks at once (asked {span}).")
        weeks = [iso_week(first_day + timedelta(days=7 * i)) for i in range(span)]
        members = await pool_members(session)
        loads: dict[tuple[str, str], float] = defaultdict(float)
        for held in (
            await session.exec(
                select(AssignmentRow).where(
                    col(AssignmentRow.week) >= weeks[0], col(AssignmentRow.week) <= weeks[-1]
                )
            )
        ).all():
            loads[(held.resource_id, held.week)] += held.fte
    rows: list[UtilisationRow] = []
    for member in sorted(members.values(), key=lambda m: m.resource_id):
        if skill and skill.casefold() not in member.skill_keys:
            continue
        cells = []
        for week in weeks:
            capacity = member.capacity_in(week)
            allocated = round(loads[(member.resource_id, week)], 4)
            cells.append(
                UtilisationCell(
                    week=week,
                    capacity_fte=capacity,
                    allocated_fte=allocated,
                    utilisation=round(allocated / capacity, 4) if capacity > 0 else None,
                )
            )
        rows.append(
            UtilisationRow(
                resource_id=member.resource_id,
                name=member.name,
                skills=list(member.skills),
                weeks=cells,
            )
        )
    return rows


@router.get(
    "/projects",
    tags=["allocations"],
    summary="Each project's priority as allocation applies it: stage, key project, rank",
)
async def list_project_priorities(
    request: Request, _: Reader, limit: Limit = 500
) -> list[ProjectPriorityOut]:
    async with runtime_of(request).sessions() as session:
        rows = (
            await session.exec(
                select(ProjectStandingRow).order_by(col(ProjectStandingRow.project_id)).limit(limit)
            )
        ).all()
    return [ProjectPriorityOut.model_validate(row, from_attributes=True) for row in rows]


# --- conflicts, resolutions, what-if ------------------------------------------------------------


def _conflict_out(row: ConflictRow) -> ConflictOut:
    return ConflictOut(
        conflict_id=row.conflict_id,
        state="closed" if row.state == CLOSED else "resolved",
        skill=row.skill,
        resource_id=row.resource_id,
        weeks=list(row.weeks),
        winners=list(row.winners),
        losers=list(row.losers),
        rationale=row.rationale,
        cause=row.cause,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        closed_at=row.closed_at,
        closed_reason=row.closed_reason,
    )


@router.get("/conflicts", tags=["conflicts"], summary="Conflicts, newest first")
async def list_conflicts(
    request: Request,
    _: Reader,
    state: Annotated[
        Literal["resolved", "closed"] | None,
        Query(
            description="resolved: published and standing, its losers short; closed: the "
            "shortage ended or a newer resolution superseded it"
        ),
    ] = None,
    project_id: Annotated[
        str | None, Query(description="Only conflicts this project won or lost")
    ] = None,
    limit: Limit = 100,
    before: Annotated[
        str | None, Query(description="Page: conflicts older than this conflict id")
    ] = None,
) -> list[ConflictOut]:
    # Every filter is part of the query, so the page limit applies to matching conflicts only.
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
    async with runtime_of(request).sessions() as session:
        if before:
            cursor = await session.get(ConflictRow, before)
            if cursor is None:
                raise HTTPException(422, f"before names no conflict ({before!r}).")
            query = query.where(
                tuple_(col(ConflictRow.created_at), col(ConflictRow.conflict_id))
                < tuple_(literal(cursor.created_at), literal(cursor.conflict_id))
            )
        rows = (await session.exec(query.limit(limit))).all()
    return [_conflict_out(row) for row in rows]


@router.get("/conflicts/{conflict_id}", tags=["conflicts"], summary="One conflict")
async def get_conflict(request: Request, conflict_id: str, _: Reader) -> ConflictOut:
    async with runtime_of(request).sessions() as session:
        row = await session.get(ConflictRow, conflict_id)
    if row is None:
        raise HTTPException(404, f"No conflict {conflict_id!r}.")
    return _conflict_out(row)


@router.get(
    "/resolutions",
    tags=["conflicts"],
    summary="Recent re-resolutions: cause, solver, time, value, greedy's value, moves",
)
async def list_resolutions(request: Request, _: Reader, limit: Limit = 50) -> list[ResolutionOut]:
    async with runtime_of(request).sessions() as session:
        rows = (
            await session.exec(
                select(ResolutionRun).order_by(col(ResolutionRun.id).desc()).limit(limit)
            )
        ).all()
    return [ResolutionOut.model_validate(row, from_attributes=True) for row in rows]


@router.post(
    "/what-if",
    tags=["what-if"],
    summary="The allocations and conflicts a draft strategy or hypothetical request would give; "
    "changes nothing",
)
async def post_what_if(
    request: Request, body: WhatIfIn, _: Reader, response: Response
) -> WhatIfOut:
    # A what-if changes nothing: like the registry's, it is a read, open to every role on the
    # whole portfolio (a strategy draft is what a PMO discusses with its stakeholders).
    runtime = runtime_of(request)
    async with runtime.sessions() as session:
        for hypothetical in body.requests:
            if await session.get(ResourceRequest, hypothetical.request_id) is not None:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    f"Request {hypothetical.request_id!r} exists; give the hypothetical one "
                    "another id.",
                )
        result = await what_if(
            session,
            runtime.settings,
            ranking=(
                [DraftRank(d.project_id, d.rank, d.score) for d in body.ranking]
                if body.ranking is not None
                else None
            ),
            lifecycles=body.lifecycle,
            requests=body.requests,
        )
    response.headers["Cache-Control"] = "no-store"
    requests = result.state.requests
    solution = result.resolution.solution
    return WhatIfOut(
        changes=[
            WhatIfChange(
                request_id=request_id,
                project_id=requests[request_id].project_id,
                before=snapshot(before),
                after=snapshot(after),
                reason=after.reason,
            )
            for request_id, (before, after) in sorted(result.changed.items())
        ],
        hypothetical=[
            WhatIfOutcome(
                request_id=request_id,
                project_id=requests[request_id].project_id,
                status=outcome.status,
                fte_requested=outcome.fte_requested,
                fte_granted=outcome.fte_granted,
                weeks=list(outcome.weeks),
                assignments=assignments(outcome),
                reason=outcome.reason,
            )
            for request_id, outcome in result.hypothetical.items()
        ],
        conflicts=[
            WhatIfConflict(
                conflict_id=conflict.conflict_id,
                new=conflict.conflict_id in result.new_conflicts,
                skill=conflict.skill,
                resource_id=conflict.resource_id,
                weeks=list(conflict.weeks),
                winners=[vars(d) for d in conflict.winners],
                losers=[vars(d) for d in conflict.losers],
                rationale=conflict.rationale,
            )
            for conflict in result.conflicts
        ],
        solver=SolverReport(
            method=solution.method,
            status=solution.status,
            seconds=round(solution.seconds, 4),
            value=solution.value,
            greedy_value=solution.greedy_value,
            moved_allocations=len(solution.moved),
        ),
    )
