"""The registry's HTTP API: the projects of the portfolio."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from sqlmodel import col, select

from services.registry.adapters.tables import Project
from shared.http import runtime_of
from shared.security import Reader

router = APIRouter(prefix="/projects", tags=["projects"])


@router.get("", summary="The portfolio's projects, by id")
async def list_projects(
    request: Request,
    _: Reader,
    business_unit: str | None = None,
    lifecycle: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(description="Page: project ids after this one")] = None,
) -> list[Project]:
    query = select(Project).order_by(col(Project.project_id)).limit(limit)
    if business_unit:
        query = query.where(Project.business_unit == business_unit)
    if lifecycle:
        query = query.where(Project.lifecycle == lifecycle)
    if after:
        query = query.where(col(Project.project_id) > after)
    async with runtime_of(request).sessions() as session:
        return list((await session.exec(query)).all())


@router.get("/{project_id}", summary="One project")
async def get_project(request: Request, project_id: str, _: Reader) -> Project:
    async with runtime_of(request).sessions() as session:
        project = await session.get(Project, project_id)
    if project is None:
        raise HTTPException(404, f"No project {project_id!r} is registered.")
    return project
