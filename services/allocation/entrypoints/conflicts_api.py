"""Allocation's HTTP API for conflicts and the re-resolutions that settled them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.allocation.adapters import queries
from services.allocation.adapters.tables import ConflictRow
from services.allocation.entrypoints.mapping import conflict_out
from services.allocation.entrypoints.schemas import ConflictOut, ConflictState, ResolutionOut
from shared.dependencies import LargePageSize, Reader, SessionDep, row_or_404

router = APIRouter(tags=["conflicts"])


@router.get("/conflicts", summary="Conflicts, newest first")
async def list_conflicts(
    session: SessionDep,
    _: Reader,
    state: Annotated[
        ConflictState | None,
        Query(
            description="resolved: published and standing, its losers short; closed: the "
            "shortage ended or a newer resolution superseded it"
        ),
    ] = None,
    project_id: Annotated[
        str | None, Query(description="Only conflicts this project won or lost")
    ] = None,
    limit: LargePageSize = 100,
    before: Annotated[
        str | None, Query(description="Page: conflicts older than this conflict id")
    ] = None,
) -> list[ConflictOut]:
    cursor = None
    if before:
        cursor = await session.get(ConflictRow, before)
        if cursor is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"before names no conflict ({before!r})."
            )
    # Every filter is part of the query, so the page limit applies to matching conflicts only.
    rows = await queries.conflicts_page(
        session, state=state, project_id=project_id, before=cursor, limit=limit
    )
    return [conflict_out(row) for row in rows]


@router.get("/conflicts/{conflict_id}", summary="One conflict")
async def get_conflict(session: SessionDep, conflict_id: str, _: Reader) -> ConflictOut:
    row = await row_or_404(session, ConflictRow, conflict_id, f"No conflict {conflict_id!r}.")
    return conflict_out(row)


@router.get(
    "/resolutions",
    summary="Recent re-resolutions: cause, solver, time, value, greedy's value, moves",
)
async def list_resolutions(
    session: SessionDep, _: Reader, limit: LargePageSize = 50
) -> list[ResolutionOut]:
    rows = await queries.recent_resolutions(session, limit=limit)
    return [ResolutionOut.model_validate(row, from_attributes=True) for row in rows]
