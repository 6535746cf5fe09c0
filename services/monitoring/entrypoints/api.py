"""Monitoring's HTTP API: each project's current health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from sqlmodel import col, select

from services.monitoring.adapters.tables import MonitoredProject
from shared.http import runtime_of
from shared.security import Principal, require_role

router = APIRouter(tags=["health"])
Reader = Annotated[Principal, Depends(require_role("viewer", "project_manager"))]


@router.get("/projects/{project_id}/health", summary="A project's current health and metrics")
async def project_health(request: Request, project_id: str, _: Reader) -> MonitoredProject:
    async with runtime_of(request).sessions() as session:
        project = await session.get(MonitoredProject, project_id)
    if project is None:
        raise HTTPException(404, f"Monitoring has no baseline for project {project_id!r}.")
    return project


@router.get("/at-risk", summary="Projects whose health is not green")
async def at_risk(request: Request, _: Reader) -> list[MonitoredProject]:
    query = (
        select(MonitoredProject)
        .where(MonitoredProject.health != "green")
        .order_by(col(MonitoredProject.project_id))
    )
    async with runtime_of(request).sessions() as session:
        return list((await session.exec(query)).all())
