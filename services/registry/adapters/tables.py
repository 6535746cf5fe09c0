"""The registry's tables in its own schema."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SCHEMA = "registry"


class Project(SQLModel, table=True):
    """A project in the portfolio."""

    __tablename__ = "project"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str
    business_unit: str
    manager: str
    sponsor: str | None = None
    start_date: date
    planned_finish_date: date
    budget: float
    currency: str
    objectives: list[dict[str, object]] = Field(default_factory=list, sa_column=Column(JSONB))
    key_project: bool = False
    methodology: str | None = None
    lifecycle: str
    percent_complete: float | None = None
    status_as_of: date | None = None
    registered_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now())
    )
    registered_by: str
    """The event id (or user) that registered it."""


class StatusReport(SQLModel, table=True):
    """A progress report as received, kept for the project's history."""

    __tablename__ = "status_report"
    __table_args__ = {"schema": SCHEMA}

    event_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    as_of: date
    percent_complete: float
    actual_cost: float
    lifecycle: str | None = None
    reported_health: str | None = None
    received_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), server_default=func.now())
    )
