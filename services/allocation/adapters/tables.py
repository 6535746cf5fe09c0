"""Allocation's tables in its own schema."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlmodel import Field, SQLModel

SCHEMA = "allocation"


class ResourceRequest(SQLModel, table=True):
    """A project's request for a skill (or a named person) over a period."""

    __tablename__ = "resource_request"
    __table_args__ = {"schema": SCHEMA}

    request_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    skill: str
    fte: float | None = None
    hours: float | None = None
    start: date
    end: date
    weeks: list[str] = Field(default_factory=list, sa_column=Column(ARRAY(TEXT)))
    priority: str | None = None
    named_resource: str | None = None
    status: str = "open"
    received_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now())
    )
    event_id: str
