"""Allocation's tables in its own schema."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlmodel import Field, SQLModel

from shared.columns import identity_key, jsonb, text_array, timestamp

SCHEMA = "allocation"


class ResourceRequestRow(SQLModel, table=True):
    """A project's request for a skill (or a named person) over a period, and its decision."""

    __tablename__ = "resource_request"
    __table_args__ = {"schema": SCHEMA}

    request_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    skill: str
    fte: float | None = None
    hours: float | None = None
    start: date
    end: date
    weeks: list[str] = text_array(list)
    priority: str | None = None
    named_resource: str | None = None
    status: str = "open"
    """open (not decided yet), granted, partial or denied."""
    received_at: datetime | None = timestamp(nullable=False, server_now=True)
    event_id: str
    fte_granted: float | None = None
    """Average FTE granted per planned week."""
    reason: str | None = None
    decided_at: datetime | None = timestamp()
    """When its decision (resource-allocated) was published; None while open."""


class ResourceRow(SQLModel, table=True):
    """A person or team of the pool."""

    __tablename__ = "resource"
    __table_args__ = {"schema": SCHEMA}

    resource_id: str = Field(primary_key=True)
    name: str
    skills: list[str] = text_array(list)
    capacity_fte: float
    """Usual capacity in FTE per week (a team may have more than 1)."""
    specialties: list[str] = text_array(list, server_default="{}")
    """PMO expert specialties (e.g. schedule-recovery); empty: not one of the PMO's experts."""
    created_at: datetime | None = timestamp(nullable=False, server_now=True)
    updated_at: datetime | None = timestamp(nullable=False, server_now=True)


class CapacityChangeRow(SQLModel, table=True):
    """A dated change of a resource's capacity: holiday, part time, leaving."""

    __tablename__ = "capacity_change"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    resource_id: str = Field(
        foreign_key=f"{SCHEMA}.resource.resource_id", ondelete="CASCADE", index=True
    )
    starts: date
    ends: date | None = None
    capacity_fte: float
    reason: str = ""
    kind: str = "contract"
    """absence (an exception on top of the working pattern) or contract (the pattern itself)."""


class ProjectStandingRow(SQLModel, table=True):
    """A project as the registry's events describe it: lifecycle, key project, strategic rank."""

    __tablename__ = "project"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str | None = None
    manager: str | None = None
    key_project: bool = False
    lifecycle: str | None = None
    """The registry's stage; None until project-registered (or a lifecycle change) arrives."""
    rank: int | None = None
    score: float | None = None
    why: str | None = None
    strategy_version: int | None = None
    updated_at: datetime | None = timestamp(nullable=False, server_now=True, on_update_now=True)


class PortfolioVersionRow(SQLModel, table=True):
    """A portfolio ranking applied: its strategy version and how many projects it ranked."""

    __tablename__ = "portfolio_version"
    __table_args__ = {"schema": SCHEMA}

    strategy_version: int = Field(primary_key=True)
    ranked: int
    event_id: str
    applied_at: datetime | None = timestamp(nullable=False, server_now=True)


class AssignmentRow(SQLModel, table=True):
    """One person's FTE on one request in one ISO week: the allocations in force."""

    __tablename__ = "assignment"
    __table_args__ = {"schema": SCHEMA}

    request_id: str = Field(primary_key=True)
    resource_id: str = Field(primary_key=True, index=True)
    week: str = Field(primary_key=True)
    fte: float


class ConflictRow(SQLModel, table=True):
    """A conflict as resolved and published; open while its losers still wait."""

    __tablename__ = "conflict"
    __table_args__ = {"schema": SCHEMA}

    conflict_id: str = Field(primary_key=True)
    contest_key: str = Field(index=True)
    skill: str | None = None
    resource_id: str | None = None
    weeks: list[str] = text_array(list)
    winners: list[dict[str, Any]] = jsonb(list)
    losers: list[dict[str, Any]] = jsonb(list)
    rationale: str
    request_ids: list[str] = text_array(list)
    cause: str
    state: str = "resolved"
    """resolved: published and standing, its losers short as it says; closed: the shortage
    ended or a newer resolution superseded it."""
    closed_reason: str | None = None
    """How it stopped standing."""
    created_at: datetime | None = timestamp(nullable=False, server_now=True)
    resolved_at: datetime | None = timestamp(nullable=False, server_now=True)
    """When its resolution was (last) published."""
    closed_at: datetime | None = timestamp()


class PendingResolutionRow(SQLModel, table=True):
    """Weeks to re-solve and why, written with the change that makes it necessary."""

    __tablename__ = "resolution_pending"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    weeks: list[str] | None = text_array(nullable=True)
    """None: every planned week."""
    cause: str
    traceparent: str | None = None
    created_at: datetime | None = timestamp(nullable=False, server_now=True)


class ResolutionRunRow(SQLModel, table=True):
    """One re-resolution as it ran: why, by which method, how well and how fast."""

    __tablename__ = "resolution_run"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    causes: list[str] = text_array(list)
    weeks: int
    requests: int
    method: str
    status: str
    seconds: float
    value: float
    greedy_value: float | None = None
    mip_gap: float
    moved: int
    decided: int
    changed: int
    conflicts: int
    ran_at: datetime | None = timestamp(nullable=False, server_now=True)


class ProjectHealthRow(SQLModel, table=True):
    """A project's latest health as monitoring assessed it (project-health-assessed)."""

    __tablename__ = "project_health"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    health: str
    """green, amber or red."""
    reason_codes: list[str] = text_array(list)
    reasons: list[str] = text_array(list)
    """The reasons' messages, worst first."""
    at_risk_since: datetime | None = timestamp()
    assessed_at: datetime = timestamp(nullable=False, required=True)


class InterventionRow(SQLModel, table=True):
    """A PMO expert proposed for (then sent to) a project: from proposal to its end."""

    __tablename__ = "intervention"
    __table_args__ = {"schema": SCHEMA}

    intervention_id: str = Field(primary_key=True)
    project_id: str = Field(index=True)
    origin: str
    """risk (pushed by a key project's health) or advice (asked by its manager)."""
    specialty: str
    reasons: list[str] = text_array(list)
    episode: datetime | None = timestamp()
    """The at-risk episode (its `at_risk_since`) a risk intervention answers: one per episode."""
    fte: float
    starts: date
    ends: date
    expert_id: str | None = None
    staffing: str = ""
    """Why this expert, or why none is free."""
    state: str
    """proposed, accepted, declined or ended."""
    requested_by: str | None = None
    decided_by: str | None = None
    decision_note: str | None = None
    request_id: str | None = None
    """The resource request allocating the expert, once accepted."""
    end_reason: str | None = None
    proposed_at: datetime | None = timestamp(nullable=False, server_now=True)
    decided_at: datetime | None = timestamp()
    ended_at: datetime | None = timestamp()
