"""The portfolio status report over HTTP, as JSON, CSV or an HTML page."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from services.registry.adapters.tables import ProgramRow
from services.registry.domain.reports import as_csv, as_html, as_json
from services.registry.entrypoints.dependencies import ConfigurationDep
from services.registry.service_layer.reports import portfolio_report
from shared.dependencies import Reader, SessionDep, row_or_404

router = APIRouter(prefix="/reports", tags=["reports"])

ReportFormat = Literal["json", "csv", "html"]
_MEDIA_TYPES: dict[ReportFormat, str] = {
    "json": "application/json",
    "csv": "text/csv",
    "html": "text/html",
}


def negotiated(accept: str | None) -> ReportFormat:
    """The format an Accept header prefers among ours (by q-value, then order); JSON by default."""
    best: tuple[float, int, ReportFormat] | None = None
    for position, part in enumerate((accept or "").split(",")):
        media, *params = (piece.strip() for piece in part.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        for format_, media_type in _MEDIA_TYPES.items():
            if media.lower() == media_type and quality > 0:
                candidate = (-quality, position, format_)
                if best is None or candidate < best:
                    best = candidate
    return best[2] if best else "json"


@router.get(
    "/portfolio",
    summary="The portfolio status report: every project (or one program's) with lifecycle, rank, "
    "score, health and open resource shortfall",
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "`format` chooses; without it, the Accept header does (JSON default).",
        }
    },
)
async def portfolio_status_report(
    configuration: ConfigurationDep,
    request: Request,
    session: SessionDep,
    _: Reader,
    report_format: Annotated[
        ReportFormat | None, Query(alias="format", description="json, csv or html")
    ] = None,
    program_id: Annotated[
        str | None,
        Query(description="Only this program's projects (ranked within the whole portfolio)"),
    ] = None,
) -> Response:
    chosen = report_format or negotiated(request.headers.get("accept"))
    program = None
    if program_id is not None:
        program = await row_or_404(session, ProgramRow, program_id, f"No program {program_id!r}.")
    report = await portfolio_report(session, configuration, program)
    if chosen == "csv":
        day = report.generated_at.strftime("%Y-%m-%d")
        # The id is the client's text: only its safe characters go into the header's file name.
        scope = (
            "portfolio"
            if program is None
            else "program-"
            + "".join(
                char if char.isascii() and (char.isalnum() or char in "-_.") else "_"
                for char in program.program_id
            )
        )
        return Response(
            as_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'inline; filename="{scope}-{day}.csv"'},
        )
    if chosen == "html":
        return HTMLResponse(as_html(report))
    return JSONResponse(as_json(report))
