"""Notifications' tables in its own schema: subscriptions, deliveries, the projects it knows."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import Column, Float, Integer
from sqlalchemy.dialects.postgresql import UUID
from sqlmodel import Field, SQLModel

from shared.allocation_outcomes import RequestOutcomeColumns
from shared.columns import column, identity_key, jsonb, text_array, timestamp, timestamp_key

SCHEMA = "notifications"

ENVIRONMENT_WEBHOOK_ID = uuid.UUID("6d1f3c2e-5b7a-5e0c-9f8e-2a4b6c8d0e1f")
"""The built-in subscription standing for `PMO_ALERT_WEBHOOK_URL` (made by migration 0002)."""

PROJECT_MANAGER = "project-manager"
"""`managed_by` of a project manager's own subscription: kept by notifications, not made through
the API (service_layer/managers.py)."""


class SubscriptionRow(SQLModel, table=True):
    """Who wants to hear about what, on which channel; `secret` signs its webhooks."""

    __tablename__ = "subscription"
    __table_args__ = {"schema": SCHEMA}

    id: uuid.UUID = Field(
        default_factory=uuid.uuid4, sa_column=Column(UUID(as_uuid=True), primary_key=True)
    )
    name: str
    channel: str
    recipient: str
    secret: str | None = None
    event_types: list[str] = text_array(required=True)
    min_severity: str = "info"
    project_id: str | None = None
    business_unit: str | None = None
    escalation_target: bool = False
    throttle_window_s: int | None = None
    enabled: bool = True
    disabled_reason: str | None = None
    """Why it is disabled: a receiver's refusal for good, or the administrator who did it."""
    disabled_at: datetime | None = timestamp()
    managed_by: str = "api"
    created_by: str | None = None
    created_at: datetime | None = timestamp(nullable=False, server_now=True)
    updated_at: datetime | None = timestamp(nullable=False, server_now=True)


DeliveryState = Literal[
    "pending", "delivered", "dead", "held", "summarized", "cancelled", "no_channel"
]
"""A delivery's states, as the table's check constraint `delivery_state` allows them."""


class DeliveryRow(SQLModel, table=True):
    """One notice to one subscription: its message context, state, lease and attempts."""

    __tablename__ = "delivery"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = Field(default=None, primary_key=True)
    event_id: str
    """The CloudEvents id, or a made-up key for escalations, summaries and digests."""
    event_type: str
    subscription_id: uuid.UUID | None = column(UUID(as_uuid=True))
    project_id: str | None = None
    channel: str
    severity: str | None = None
    context: dict[str, Any] = jsonb(required=True)
    state: str = "pending"
    throttle_key: str = ""
    held_until: datetime | None = timestamp()
    summary_id: int | None = column(Integer)
    attempts: int = 0
    max_attempts: int | None = None
    last_error: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    next_attempt_at: datetime | None = timestamp(nullable=False, server_now=True)
    locked_until: datetime | None = timestamp()
    lease_owner: str | None = None
    delivered_at: datetime | None = timestamp()
    created_at: datetime | None = timestamp(nullable=False, server_now=True)


class DeliveryAttemptRow(SQLModel, table=True):
    """One try at sending a delivery, and how it ended."""

    __tablename__ = "delivery_attempt"
    __table_args__ = {"schema": SCHEMA}

    id: int | None = identity_key()
    delivery_id: int
    number: int
    worker: str
    started_at: datetime | None = timestamp(nullable=False, server_now=True)
    finished_at: datetime | None = timestamp()
    outcome: str = "in_flight"
    status_code: int | None = None
    error: str | None = None


class ProjectRow(SQLModel, table=True):
    """What notifications knows of a project, from the registry's and monitoring's events."""

    __tablename__ = "project"
    __table_args__ = {"schema": SCHEMA}

    project_id: str = Field(primary_key=True)
    name: str
    business_unit: str
    manager: str | None = None
    lifecycle: str
    rank: int | None = None
    score: float | None = column(Float)
    health: str = "green"
    metrics: dict[str, Any] = jsonb(dict, server_default="{}")
    reasons: list[dict[str, Any]] = jsonb(list, server_default="[]")
    at_risk_since: datetime | None = timestamp()
    """When the current at-risk episode began (monitoring's own time); escalation counts from
    it, once per episode."""
    escalated_at: datetime | None = timestamp()
    health_assessed_at: datetime | None = timestamp()
    """When monitoring made the assessment kept here: only a newer one replaces it."""
    health_as_of: date | None = None
    """The as-of date of the status report behind that assessment."""
    forecast_finish: date | None = None
    updated_at: datetime | None = timestamp(nullable=False, server_now=True)


class ResourceRequestRow(RequestOutcomeColumns, table=True):
    """A project's resource request as allocation last decided it, for the shortfall."""

    __tablename__ = "resource_request"
    __table_args__: ClassVar[dict[str, str]] = {"schema": SCHEMA}

    # request_id, project_id, skill, fte_requested, fte_granted: RequestOutcomeColumns'
    decided_at: datetime | None = timestamp()
    """When allocation decided (the event's time): an older decision never overwrites it."""


class DigestRunRow(SQLModel, table=True):
    """The portfolio digest of one schedule slot: claimed once, whichever replica gets there."""

    __tablename__ = "digest_run"
    __table_args__ = {"schema": SCHEMA}

    slot: datetime = timestamp_key()
    claimed_by: str
    claimed_at: datetime | None = timestamp(nullable=False, server_now=True)
    projects: int
    deliveries: int
