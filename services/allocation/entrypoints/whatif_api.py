"""Allocation's HTTP API for what-if: what a draft strategy or request would do; changes nothing."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Response, status

from services.allocation.adapters import queries
from services.allocation.entrypoints.mapping import what_if_out
from services.allocation.entrypoints.schemas import WhatIfIn, WhatIfOut
from services.allocation.service_layer.what_if import DraftRank, what_if
from shared.dependencies import Reader, SessionDep, SettingsDep

router = APIRouter(tags=["what-if"])


@router.post(
    "/what-if",
    summary="The allocations and conflicts a draft strategy or hypothetical request would give; "
    "changes nothing",
)
async def post_what_if(
    session: SessionDep, settings: SettingsDep, body: WhatIfIn, _: Reader, response: Response
) -> WhatIfOut:
    # A what-if changes nothing: like the registry's, it is a read, open to every role on the
    # whole portfolio (a strategy draft is what a PMO discusses with its stakeholders).
    ids = [hypothetical.request_id for hypothetical in body.requests]
    known = await queries.requests_known(session, ids) if ids else set()
    for request_id in ids:
        if request_id in known:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Request {request_id!r} exists; give the hypothetical one another id.",
            )
    result = await what_if(
        session,
        settings,
        ranking=(
            [DraftRank(d.project_id, d.rank, d.score) for d in body.ranking]
            if body.ranking is not None
            else None
        ),
        lifecycles=body.lifecycle,
        requests=body.requests,
    )
    response.headers["Cache-Control"] = "no-store"
    return what_if_out(result)
