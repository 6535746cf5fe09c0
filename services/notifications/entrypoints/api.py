"""Notifications' HTTP API: the alerts and how their delivery went."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel
from sqlmodel import col, select

from services.notifications.adapters.tables import Alert
from shared.http import runtime_of
from shared.security import Reader

router = APIRouter(tags=["alerts"])


class AlertView(BaseModel):
    id: int
    event_id: str
    event_type: str
    project_id: str | None
    channel: str
    state: str
    attempts: int
    last_error: str | None


@router.get("/alerts", summary="Alerts, newest first, with their delivery state")
async def list_alerts(
    request: Request,
    _: Reader,
    state: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AlertView]:
    query = select(Alert).order_by(col(Alert.id).desc()).limit(limit)
    if state:
        query = query.where(Alert.state == state)
    async with runtime_of(request).sessions() as session:
        alerts = (await session.exec(query)).all()
    return [AlertView.model_validate(alert, from_attributes=True) for alert in alerts]
