"""Monitoring's tables in its own schema: baselines and current health, history, allocations."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from shared.allocation_outcomes import RequestOutcomeColumns
from shared.columns import identity_key, jsonb, timestamp

SCHEMA = "monitoring"


class MonitoredProjectRow(SQLModel, table=True):
    """A project's baseline, the latest facts about it, and its current health."""

    __tablename__ = "monitored_project"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str
    business_unit: str | None = None
    manager: str | None = None
    currency: str | None = None
    budget_at_completion: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None = jsonb(nullable=True)
    """`[{date, planned_value}]` from project-started; null for a linear plan."""
    baseline_event_id: str | None = None
    baseline_version: int = 1
    """The approved baseline in force: 1 is project-started's, later ones project-rebaselined's."""
    rebaselined_at: datetime | None = timestamp()
    """When the baseline in force was approved, if it is not the original one."""

    monitoring_state: str = "active"
    """`active` (watched), `on_hold` (watched, but the staleness clock waits) or `closed`
    (completed or terminated: left monitoring, raises nothing)."""
    lifecycle: str | None = None
    """The last stage the registry announced (project-lifecycle-changed); reports' are ignored."""

    latest_as_of: date | None = None
    latest_percent_complete: float | None = None
    latest_actual_cost: float | None = None
    reported_health: str | None = None
    milestones: list[dict[str, Any]] | None = jsonb(nullable=True)
    """The milestones last reported (a report without them keeps these); null: never reported."""

    status_expected_since: date
    """The staleness clock counts days without a report from here: the latest report's as-of
    date, else the later of the start and the day monitoring took the baseline."""
    stale_since: datetime | None = timestamp()

    health: str = "green"
    health_since: datetime | None = timestamp()
    at_risk_since: datetime | None = timestamp()
    reasons: list[dict[str, Any]] = jsonb(required=True, server_default="[]")
    """The current reasons: `[{code, severity, message, numbers}]`."""
    index_levels: dict[str, str] = jsonb(required=True, server_default="{}")
    """The level of each measured index at the last assessment (hysteresis memory)."""
    metrics: dict[str, float | None] = jsonb(required=True, server_default="{}")
    forecast_finish: date | None = None
    assessed_at: datetime | None = timestamp()
    """When the current assessment was made; strictly increasing, the order of its
    project-health-assessed events."""
    assessed_as_of: date | None = None
    """The as-of date of the report behind the current assessment."""
    updated_at: datetime | None = timestamp(nullable=False, server_now=True, on_update_now=True)


class HealthAssessmentRow(SQLModel, table=True):
    """One assessment of one project: the series behind trend charts. Never updated."""

    __tablename__ = "health_assessment"
    __table_args__ = (
        Index("health_assessment_by_project", "project_id", "id"),
        {"schema": SCHEMA},
    )

    id: int | None = identity_key()
    project_id: str
    assessed_at: datetime = timestamp(nullable=False, server_now=True, required=True)
    trigger: str
    """What caused it: the event name, or `staleness-clock`."""
    event_id: str | None = None
    as_of: date | None = None
    """The as-of date of the report the figures come from."""
    applied: bool = True
    """False for a report older than the latest one (kept, but not the current health) and
    for reports after the project left monitoring."""
    health: str
    reasons: list[dict[str, Any]] = jsonb(required=True, server_default="[]")
    metrics: dict[str, float | None] = jsonb(required=True, server_default="{}")
    forecast_finish: date | None = None
    alert: str | None = None
    """The event this assessment published, if any: project-at-risk or project-recovered."""


class BaselineRow(SQLModel, table=True):
    """One approved baseline of a project; every one is kept, the highest version is in force."""

    __tablename__ = "baseline"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    budget_at_completion: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None = jsonb(nullable=True)
    approved_by: str | None = None
    """Who approved a re-baseline (null for the original, taken from project-started)."""
    reason: str | None = None
    approved_at: datetime | None = timestamp()
    event_id: str | None = None
    received_at: datetime | None = timestamp(nullable=False, server_now=True)


class ResourcePositionRow(RequestOutcomeColumns, table=True):
    """What a project asked for in one resource request and what it was granted, latest first."""

    __tablename__ = "resource_position"
    __table_args__ = (
        Index("resource_position_by_project", "project_id"),
        {"schema": SCHEMA},
    )

    project_id: str  # indexed by resource_position_by_project, not RequestOutcomeColumns' index
    # request_id, skill, fte_requested, fte_granted: RequestOutcomeColumns'
    status: str
    """granted, partial or denied (derived from the figures when the event gives none)."""
    why: str
    decided_at: datetime = timestamp(nullable=False, required=True)
    """When the allocation decided (the event's time): an older decision never overwrites a
    newer one, whichever topic brings it first."""
    event_id: str


class ThresholdOverrideRow(SQLModel, table=True):
    """The health rules set by a PMO administrator; absent: the settings' defaults apply."""

    __tablename__ = "threshold_override"
    __table_args__ = {"schema": SCHEMA}

    id: int = Field(default=1, primary_key=True)
    thresholds: dict[str, Any] = jsonb(required=True)
    updated_by: str
    updated_at: datetime = timestamp(nullable=False, server_now=True, required=True)
