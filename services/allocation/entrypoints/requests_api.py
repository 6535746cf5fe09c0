"""Allocation's HTTP API for resource requests and the decisions taken on them."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from services.allocation.adapters import queries
from services.allocation.adapters.tables import ResourceRequestRow
from services.allocation.entrypoints.mapping import assignment_lines, request_out
from services.allocation.entrypoints.schemas import RequestOut
from shared.dependencies import LargePageSize, Reader, SessionDep, SettingsDep, row_or_404

router = APIRouter(tags=["requests"])


@router.get("/requests", summary="Resource requests and their decisions")
async def list_requests(
    session: SessionDep,
    settings: SettingsDep,
    _: Reader,
    project_id: str | None = None,
    state: Annotated[
        Literal["open", "granted", "partial", "denied"] | None,
        Query(alias="status", description="open (undecided), granted, partial or denied"),
    ] = None,
    limit: LargePageSize = 100,
    after: Annotated[str | None, Query(description="Page: request ids after this one")] = None,
) -> list[RequestOut]:
    rows = await queries.requests_page(
        session, project_id=project_id, status=state, after=after, limit=limit
    )
    ids = [row.request_id for row in rows]
    lines = assignment_lines(ids, await queries.assignments_of_requests(session, ids))
    hours = settings.allocation_hours_per_fte_week
    return [request_out(row, hours, lines[row.request_id]) for row in rows]


@router.get("/requests/{request_id}", summary="One request, its decision and who")
async def get_request(
    session: SessionDep, settings: SettingsDep, request_id: str, _: Reader
) -> RequestOut:
    row = await row_or_404(
        session, ResourceRequestRow, request_id, f"No resource request {request_id!r}."
    )
    held = await queries.assignments_of_requests(session, [request_id])
    lines = assignment_lines([request_id], held)
    return request_out(row, settings.allocation_hours_per_fte_week, lines[request_id])
