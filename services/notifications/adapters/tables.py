"""Notifications' tables in its own schema."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, LargeBinary, func
from sqlmodel import Field, SQLModel

SCHEMA = "notifications"


class Alert(SQLModel, table=True):
    """An alert to deliver to a channel, with its attempts."""

    __tablename__ = "alert"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(unique=True)
    event_type: str
    project_id: str | None = Field(default=None, index=True)
    channel: str = "webhook"
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = "pending"
    attempts: int = 0
    last_error: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    next_attempt_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now())
    )
    delivered_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now())
    )
