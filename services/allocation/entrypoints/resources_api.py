"""Allocation's HTTP API for the pool: people and teams, their skills and dated capacity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters import queries
from services.allocation.adapters.tables import ResourceRow
from services.allocation.entrypoints.mapping import capacity_changes, resources_out
from services.allocation.entrypoints.schemas import ResourceIn, ResourceOut, ResourcePatchIn
from services.allocation.service_layer.pool import (
    ResourceChange,
    ResourceExists,
    UnknownResource,
    add_resource,
    change_resource,
)
from services.allocation.service_layer.resolution import hold_resolution_lock
from shared.dependencies import Admin, LargePageSize, Reader, SessionDep, UnitOfWorkDep, row_or_404

router = APIRouter(tags=["resources"])


def missing_resource(resource_id: str) -> str:
    """The 404's detail for a resource id the pool does not have."""
    return f"No resource {resource_id!r} in the pool."


async def _out(session: AsyncSession, resources: Sequence[ResourceRow]) -> list[ResourceOut]:
    ids = [resource.resource_id for resource in resources]
    return resources_out(resources, await queries.capacity_changes_of(session, ids))


@router.post(
    "/resources",
    status_code=status.HTTP_201_CREATED,
    summary="Add a person or team to the pool (administrators)",
)
async def create_resource(uow: UnitOfWorkDep, body: ResourceIn, _: Admin) -> ResourceOut:
    # Wait for a running re-resolution, so it never solves half a change.
    await hold_resolution_lock(uow.session)
    try:
        resource = await add_resource(
            uow.session,
            resource_id=body.resource_id,
            name=body.name,
            skills=body.skills,
            capacity_fte=body.capacity_fte,
            capacity_changes=capacity_changes(body.capacity_changes),
        )
    except ResourceExists:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Resource {body.resource_id!r} is already in the pool; change it with PATCH.",
        ) from None
    [out] = await _out(uow.session, [resource])
    await uow.commit()
    return out


@router.get("/resources", summary="The pool, by id")
async def list_resources(
    session: SessionDep,
    _: Reader,
    skill: str | None = None,
    limit: LargePageSize = 500,
    after: Annotated[str | None, Query(description="Page: resource ids after this one")] = None,
) -> list[ResourceOut]:
    rows = list(await queries.resources_after(session, after=after, limit=None if skill else limit))
    if skill:  # skills keep the case first written: match them regardless of case
        rows = [r for r in rows if skill.casefold() in {s.casefold() for s in r.skills}]
    return await _out(session, rows[:limit])


@router.get("/resources/{resource_id}", summary="One resource")
async def get_resource(session: SessionDep, resource_id: str, _: Reader) -> ResourceOut:
    resource = await row_or_404(session, ResourceRow, resource_id, missing_resource(resource_id))
    [out] = await _out(session, [resource])
    return out


@router.patch(
    "/resources/{resource_id}",
    summary="Change a resource: name, skills, capacity, dated capacity changes (administrators)",
)
async def patch_resource(
    uow: UnitOfWorkDep, resource_id: str, body: ResourcePatchIn, _: Admin
) -> ResourceOut:
    change = ResourceChange(
        name=body.name,
        skills=body.skills,
        capacity_fte=body.capacity_fte,
        capacity_changes=(
            capacity_changes(body.capacity_changes) if body.capacity_changes is not None else None
        ),
    )
    # Wait for a running re-resolution, so it never solves half a change.
    await hold_resolution_lock(uow.session)
    try:
        resource = await change_resource(uow.session, resource_id, change)
    except UnknownResource:
        raise HTTPException(status.HTTP_404_NOT_FOUND, missing_resource(resource_id)) from None
    [out] = await _out(uow.session, [resource])
    await uow.commit()
    return out
