"""Monitoring's tables in its own schema."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SCHEMA = "monitoring"


class MonitoredProject(SQLModel, table=True):
    """A project's baseline and its current health."""

    __tablename__ = "monitored_project"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str
    budget_at_completion: float
    start_date: date
    planned_finish_date: date
    health: str = "green"
    at_risk_since: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    latest_as_of: date | None = None
    metrics: dict[str, float | None] = Field(default_factory=dict, sa_column=Column(JSONB))
    updated_at: datetime | None = Field(
        default=None,
        sa_column=Column(DateTime(timezone=True), server_default=func.now(), onupdate=func.now()),
    )
