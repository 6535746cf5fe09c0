"""The HTTP side every service has: probes, metrics, API docs, dead letters, and its own routes."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import FastAPI, Query, Response
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from shared import openapi
from shared.asyncapi_page import asyncapi_html
from shared.dependencies import PageSize
from shared.http_input import UnstorableInputGuard
from shared.messaging.tables import dead_letter, parked_event
from shared.security import Admin

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime


class DeadLetterOut(BaseModel):
    id: int
    topic: str
    partition: int
    offset: int
    reason: str
    event_id: str | None
    """The CloudEvents `id`, whenever the envelope could be read."""
    event_type: str | None
    source: str | None
    """The CloudEvents `source`: with `event_id`, the event's identity."""
    key: str | None
    """The Kafka key as text (undecodable bytes shown as U+FFFD); `key_base64` has its bytes."""
    key_base64: str | None
    value_base64: str | None
    created_at: datetime


class ParkedEventOut(BaseModel):
    seq: int
    waits_for: str
    reason: str
    event_id: str
    event_type: str
    topic: str
    parked_at: datetime


def create_http_app(runtime: ServiceRuntime) -> FastAPI:
    """The service's FastAPI app; its lifespan starts and stops the whole service."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not runtime.started:  # `pmo run` starts it first, to refuse a failure in one line
            await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    # Swagger UI and ReDoc served from the fastapi-offline wheel, not a CDN: /docs works offline.
    app = FastAPIOffline(
        title=f"PMO {runtime.name} API",
        summary=runtime.definition.summary,
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.settings = runtime.settings
    app.add_middleware(UnstorableInputGuard)
    openapi.install(app)

    @app.get("/livez", tags=["operations"], summary="The process is alive")
    async def livez() -> dict[str, str]:
        # Never checks Kafka or PostgreSQL: a slow dependency must not get a pod restarted.
        return {"status": "alive", "service": runtime.name}

    @app.get("/readyz", tags=["operations"], summary="The service can do its work now")
    async def readyz() -> JSONResponse:
        ready, checks = await runtime.ready()
        return JSONResponse(
            {"status": "ready" if ready else "not ready", "checks": checks},
            status_code=200 if ready else 503,
        )

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {}}}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json", tags=["operations"], summary="AsyncAPI document of the events")
    async def asyncapi_json() -> Response:
        return Response(
            runtime.asyncapi.to_specification().to_json(), media_type="application/json"
        )

    @app.get(
        "/asyncapi",
        tags=["operations"],
        summary="AsyncAPI document, readable",
        response_class=HTMLResponse,
    )
    async def asyncapi_page() -> HTMLResponse:
        # Rendered here rather than by FastStream's page, whose script comes from a CDN.
        return HTMLResponse(asyncapi_html(runtime.asyncapi.to_specification().to_jsonable()))

    @app.get(
        "/dead-letters",
        tags=["operations"],
        summary="Messages this service could not process, newest first, with the reason "
        "(administrators: the payloads may hold anything)",
    )
    async def dead_letters(
        _: Admin,
        limit: PageSize = 50,
        before_id: Annotated[
            int | None, Query(ge=1, le=2**62, description="Page: ids below this one")
        ] = None,
    ) -> list[DeadLetterOut]:
        query = sa.select(dead_letter).order_by(dead_letter.c.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(dead_letter.c.id < before_id)
        async with runtime.engine.connect() as session:
            rows = (await session.execute(query)).all()
        return [_dead_letter(row) for row in rows]

    @app.get(
        "/parked",
        tags=["operations"],
        summary="Events waiting for what they depend on (e.g. their project's start), oldest first",
    )
    async def parked(
        _: Admin,
        limit: PageSize = 50,
        after_seq: Annotated[int | None, Query(ge=0, le=2**62, description="Page")] = None,
    ) -> list[ParkedEventOut]:
        query = sa.select(parked_event).order_by(parked_event.c.seq).limit(limit)
        if after_seq is not None:
            query = query.where(parked_event.c.seq > after_seq)
        async with runtime.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        return [
            ParkedEventOut(
                seq=row.seq,
                waits_for=row.waits_for,
                reason=row.reason,
                event_id=row.event_id,
                event_type=row.event_type,
                topic=row.topic,
                parked_at=row.parked_at,
            )
            for row in rows
        ]

    for router in runtime.definition.routers:
        app.include_router(router)
    return app


def _dead_letter(row: Any) -> DeadLetterOut:
    return DeadLetterOut(
        id=row.id,
        topic=row.topic,
        partition=row.partition,
        offset=row.offset,
        reason=row.reason,
        event_id=row.event_id,
        event_type=row.event_type,
        source=row.source,
        key=row.key.decode("utf-8", "replace") if row.key is not None else None,
        key_base64=base64.b64encode(row.key).decode() if row.key is not None else None,
        value_base64=base64.b64encode(row.value).decode() if row.value is not None else None,
        created_at=row.created_at,
    )
