"""Monitoring's HTTP API: each project's current health."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from sqlmodel import col, select

from services.monitoring.adapters.tables import MonitoredProject
from shared.http import runtime_of
from shared.security import Reader

router = APIRouter(tags=["health"])


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
