"""The registry's tables in its own schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, ClassVar

from sqlmodel import Field, SQLModel

from shared.allocation_outcomes import RequestOutcomeColumns
from shared.columns import identity_key, jsonb, timestamp

SCHEMA = "registry"


class ProjectRow(SQLModel, table=True):
    """A project in the portfolio: its charter, where it stands, and what the PMO learned of it."""

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
    objectives: list[dict[str, Any]] = jsonb(list)
    key_project: bool = False
    methodology: str | None = None
    """The stage model's canonical name (the default model's when the sender named none)."""
    lifecycle: str
    percent_complete: float | None = None
    status_as_of: date | None = None
    registered_at: datetime | None = timestamp(nullable=False, server_now=True)
    registered_by: str
    """The event id (or user) that registered it."""
    updated_at: datetime | None = timestamp(nullable=False, server_now=True)
    health: str | None = None
    """Monitoring's newest assessment (green, amber, red); None until it has assessed."""
    health_reasons: list[str] = jsonb(list)
    """The reasons' codes, worst first."""
    health_as_of: datetime | None = timestamp()
    """When monitoring made that assessment (`assessed_at`): the newest one is kept."""
    health_details: list[dict[str, Any]] = jsonb(list)
    """The reasons in full: `[{code, severity, message, numbers}]`."""
    health_metrics: dict[str, Any] = jsonb(dict)
    """The earned-value figures of the assessment (SPI, SPI(t), CPI, EAC, VAC, TCPI, ...)."""
    health_status_as_of: date | None = None
    """The as-of date of the status report the assessment's figures come from."""
    forecast_finish: date | None = None
    at_risk_since: datetime | None = timestamp()
    planned_value_curve: list[dict[str, Any]] | None = jsonb(nullable=True)
    """The baseline's planned-value curve; None: linear from start to planned finish."""
    baseline_version: int | None = None
    """The approved baseline in force (1: the one it started with); None before it started."""
    rebaselined_at: datetime | None = timestamp()
    """When the baseline in force was approved, if the project was re-baselined."""
    rank: int | None = None
    """Rank at the last reprioritization (a strategy change), None if it was not ranked then."""
    score: float | None = None
    recommended_action: str | None = None
    why: str | None = None
    ranked_version: int | None = None
    """The strategy version of that reprioritization."""
    program_id: str | None = Field(default=None, foreign_key="registry.program.program_id")
    """The program it belongs to, if any (see `ProgramRow`)."""


class StatusReportRow(SQLModel, table=True):
    """A progress report as received, kept for the project's history."""

    __tablename__ = "status_report"
    __table_args__ = {"schema": SCHEMA}

    # An event's identity is its CloudEvents source and id together: two systems may share ids.
    source: str = Field(primary_key=True)
    event_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    as_of: date
    percent_complete: float
    actual_cost: float
    lifecycle: str | None = None
    reported_health: str | None = None
    received_at: datetime | None = timestamp(nullable=False, server_now=True)


class ProjectHistoryRow(SQLModel, table=True):
    """One change to a project: when, what (before and after), and which event or user caused it."""

    __tablename__ = "project_history"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    project_id: str
    at: datetime | None = timestamp(nullable=False, server_now=True)
    change: str
    """registered, updated, lifecycle, status, health, resource_shortfall, reprioritized,
    directive, intervention (a PMO expert proposed, accepted, declined or ended)."""
    before: dict[str, Any] | None = jsonb(nullable=True)
    after: dict[str, Any] | None = jsonb(nullable=True)
    cause: str
    """The event id, or the subject of the user's token."""
    note: str | None = None


class StrategyRow(SQLModel, table=True):
    """A strategy version as received: applied, or ignored because a newer one was current."""

    __tablename__ = "strategy"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    strategy_version: int
    effective_date: date
    objectives: list[dict[str, Any]] = jsonb(list)
    directives: list[dict[str, Any]] = jsonb(list)
    cause: str
    received_at: datetime | None = timestamp(nullable=False, server_now=True)
    outcome: str
    """applied or ignored."""
    note: str | None = None
    directive_effects: list[dict[str, Any]] = jsonb(list)


class BaselineRow(SQLModel, table=True):
    """One approved baseline of a project: budget, dates and plan, who approved it and why."""

    __tablename__ = "baseline"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    version: int = Field(primary_key=True)
    budget: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None = jsonb(nullable=True)
    approved_by: str
    reason: str
    approved_at: datetime = timestamp(nullable=False, required=True)
    cause: str
    """The event id, or the subject of the user's token."""


class ResourceShortfallRow(RequestOutcomeColumns, table=True):
    """A resource request's latest allocation outcome: how much of it is still not granted."""

    __tablename__ = "resource_shortfall"
    __table_args__: ClassVar[dict[str, str]] = {"schema": SCHEMA}

    # request_id, project_id, skill, fte_requested, fte_granted: RequestOutcomeColumns'
    status: str
    """granted, partial or denied."""
    decided_at: datetime = timestamp(nullable=False, required=True)
    """When allocation decided it (the event's time): an older decision never overwrites a newer."""
    cause: str


class DeliverableRow(SQLModel, table=True):
    """A deliverable a stage gate requires, as last submitted for a project, with its evidence."""

    __tablename__ = "deliverable"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str = Field(primary_key=True)
    """The deliverable's name in the stage model (business_case, closure_report, ...)."""
    evidence: str
    """Where it is or what it says: a document link, a reference, a summary."""
    note: str | None = None
    submitted_by: str
    submitted_at: datetime | None = timestamp(nullable=False, server_now=True)


class GateReviewRow(SQLModel, table=True):
    """A review of one gate (from -> to) of a project: who, when, the decision, the evidence."""

    __tablename__ = "gate_review"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    project_id: str
    from_stage: str
    to_stage: str
    decision: str
    """passed or failed."""
    reviewer: str
    reviewed_at: datetime | None = timestamp(nullable=False, server_now=True)
    deliverables: list[dict[str, Any]] = jsonb(list)
    """The deliverables as the reviewer saw them:
    `[{name, evidence, submitted_by, submitted_at}]`."""
    evidence: str | None = None
    used_by: str | None = None
    """The event id or user whose move passed the gate on this review; None: not used yet."""


class LessonRow(SQLModel, table=True):
    """A lesson learned on a project: what happened, what to repeat or avoid.

    The table also has `search`, a stored tsvector generated from the text (GIN-indexed), which
    this mapping leaves out: PostgreSQL computes it, full-text queries read it.
    """

    __tablename__ = "lesson"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    project_id: str
    title: str
    what_happened: str
    repeat: str | None = None
    avoid: str | None = None
    tags: list[str] = jsonb(list)
    methodology: str | None = None
    business_unit: str
    stage: str
    """The project's stage when the lesson was recorded."""
    recorded_by: str
    recorded_at: datetime | None = timestamp(nullable=False, server_now=True)


class ProgramRow(SQLModel, table=True):
    """A group of projects managed as one (PMI, The Standard for Program Management), e.g. a
    merger: temporary when it has an end date."""

    __tablename__ = "program"
    __table_args__ = {"schema": SCHEMA}

    program_id: str = Field(primary_key=True)
    name: str
    description: str | None = None
    end_date: date | None = None
    """When a temporary program ends; None: a standing program."""
    created_at: datetime | None = timestamp(nullable=False, server_now=True)
    created_by: str
    """The user's token subject, or the event id whose charter named it first."""
    updated_at: datetime | None = timestamp(nullable=False, server_now=True)
