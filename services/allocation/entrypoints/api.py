"""Allocation's HTTP API: resource requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlmodel import col, select

from services.allocation.adapters.tables import ResourceRequest
from shared.http import runtime_of
from shared.security import Reader

router = APIRouter(tags=["requests"])


@router.get("/requests", summary="Resource requests, optionally of one project")
async def list_requests(
    request: Request,
    _: Reader,
    project_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ResourceRequest]:
    query = select(ResourceRequest).order_by(col(ResourceRequest.request_id)).limit(limit)
    if project_id:
        query = query.where(ResourceRequest.project_id == project_id)
    async with runtime_of(request).sessions() as session:
        return list((await session.exec(query)).all())
