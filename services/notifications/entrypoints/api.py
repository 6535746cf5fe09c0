"""Notifications' HTTP API: subscriptions, deliveries (with their attempts), digests, alerts."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, Field, SecretStr, TypeAdapter, ValidationError, field_validator
from sqlalchemy import update
from sqlmodel import col, select

from services.notifications.adapters.tables import (
    DeliveryAttemptRow,
    DeliveryRow,
    DeliveryState,
    DigestRunRow,
    SubscriptionRow,
)
from services.notifications.domain.portfolio import portfolio_totals
from services.notifications.domain.redaction import masked_url, scrubbed
from services.notifications.domain.subscriptions import Channel, NoticeSeverity, NoticeType
from services.notifications.service_layer.clock import current_portfolio
from services.notifications.service_layer.managers import PROJECT_MANAGER
from shared.dependencies import (
    Admin,
    PageSize,
    Principal,
    Reader,
    SessionDep,
    SettingsDep,
    row_or_404,
)
from shared.events.contracts import Email
from shared.http_input import RequestBody
from shared.settings import Settings

router = APIRouter()

MIN_SECRET_LENGTH = 16
MAX_ID = 2**31 - 1
"""Delivery ids are int4: a larger one names no delivery (and would fail in the database)."""
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID)]

SIGNATURE_DOC = """
**Webhook signatures.** Every POST to a `webhook` subscription carries
`X-PMO-Timestamp` (Unix seconds) and `X-PMO-Signature: sha256=<hex>`, the HMAC-SHA256 of
`<timestamp>.<raw body>` keyed with the subscription's `secret`. A receiver recomputes it over the
raw bytes, compares in constant time, and refuses timestamps more than 5 minutes old (the
timestamp is signed, so a replayed request fails). `X-PMO-Delivery` is the delivery id, the same
on every retry: a receiver that has seen it may answer 2xx and drop the copy. `X-PMO-Event-Type`
names the notice (`pmo.project-at-risk`, `pmo.project-escalated`, `pmo.notification-summary`,
`pmo.portfolio-digest`, ...). The body is JSON: `delivery_id`, `subscription_id`, `event_id`,
`event_type`, `source`, `time`, `title`, `link`, `project`, `data` (the event's data).
Answer 2xx to acknowledge; 408, 425, 429 and 5xx are retried with backoff, other 4xx are final.
A redirect (3xx) is never followed; it, 401, 403, 404 and 410 also disable the subscription
(`disabled_reason`, `disabled_at`) until an administrator enables it again
(`POST /subscriptions/{id}/enable`).
"""

_email = TypeAdapter(Email)


def _check_recipient(channel: str, recipient: str) -> str:
    recipient = recipient.strip()
    if channel == "email":
        try:
            return _email.validate_python(recipient)
        except ValidationError:
            raise ValueError(
                f"an e-mail subscription needs an address like pmo@example.com (got {recipient!r})"
            ) from None
    needs = f"a {channel} subscription needs an http(s) URL with a host (got {recipient[:60]!r})"
    try:
        url = httpx.URL(recipient)
    except httpx.InvalidURL as error:
        # What the worker's client would refuse at every attempt, e.g. a port that is no number.
        raise ValueError(f"{needs}: {error}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(needs)
    return recipient


class SubscriptionFieldsIn(RequestBody):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    """What the subscription is for, e.g. "PMO director: escalations"."""
    channel: Channel
    recipient: Annotated[str, Field(min_length=3, max_length=2000)]
    """E-mail address (`email`), or the URL to POST to (`webhook`, `slack`)."""
    event_types: list[NoticeType] = Field(default_factory=list)
    """The notices wanted; may be empty for an escalation target that wants escalations only."""
    min_severity: NoticeSeverity = "info"
    """`amber` or `red` keeps only at-risk alerts (and escalations) at least that severe."""
    project_id: str | None = None
    """Only notices about this project."""
    business_unit: str | None = None
    """Only notices about projects of this business unit."""
    escalation_target: bool = False
    """Receives the escalation of projects at risk too long (the PMO director)."""
    throttle_window_s: Annotated[int | None, Field(ge=0)] = None
    """This subscription's throttle window in seconds (0: none); unset: the service's."""
    enabled: bool = True


class SubscriptionIn(SubscriptionFieldsIn):
    secret: SecretStr | None = None
    """Webhook only, required there: the HMAC key signing each POST. Write-only: never returned."""

    @field_validator("event_types")
    @classmethod
    def _unique(cls, value: list[NoticeType]) -> list[NoticeType]:
        return list(dict.fromkeys(value))


NULLABLE_CHANGES = frozenset({"project_id", "business_unit", "throttle_window_s", "secret"})
"""Fields a PATCH may set to null (`secret: null` keeps the secret); the others are required."""


class SubscriptionPatchIn(RequestBody):
    """Only the fields given change; `secret` replaces the webhook secret."""

    nullable_fields = NULLABLE_CHANGES

    name: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    channel: Channel | None = None
    recipient: Annotated[str | None, Field(min_length=3, max_length=2000)] = None
    event_types: list[NoticeType] | None = None
    min_severity: NoticeSeverity | None = None
    project_id: str | None = None
    business_unit: str | None = None
    escalation_target: bool | None = None
    throttle_window_s: Annotated[int | None, Field(ge=0)] = None
    enabled: bool | None = None
    secret: SecretStr | None = None


class SubscriptionOut(BaseModel):
    id: uuid.UUID
    name: str
    channel: str
    recipient: str | None
    """Slack and webhook URLs often carry a token: other roles than `pmo_admin` see only their
    scheme and host (`https://hooks.slack.com/…`), the environment's webhook included."""
    has_secret: bool
    event_types: list[str]
    min_severity: str
    project_id: str | None
    business_unit: str | None
    escalation_target: bool
    throttle_window_s: int | None
    enabled: bool
    disabled_reason: str | None
    """Why it is disabled: the receiver's refusal for good (a redirect, 401/403/404/410, a mail
    server's "no such mailbox"), or the administrator who disabled it; null when enabled."""
    disabled_at: datetime | None
    managed_by: str
    """`api`: made through this API; `environment`: the built-in subscription of
    PMO_ALERT_WEBHOOK_URL (change it there); `project-manager`: the project's manager's e-mail
    subscription, kept by notifications from project-registered (only `enabled` changes)."""
    created_by: str | None
    created_at: datetime | None
    updated_at: datetime | None


class DeliveryOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    subscription_id: uuid.UUID | None
    channel: str
    project_id: str | None
    severity: str | None
    state: str
    """pending, delivered, dead, held (throttled, in a summary later), summarized, cancelled,
    no_channel (the environment's webhook is not configured)."""
    attempts: int
    max_attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    held_until: datetime | None
    summary_id: int | None
    delivered_at: datetime | None
    created_at: datetime | None


class AttemptOut(BaseModel):
    number: int
    worker: str
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str
    status_code: int | None
    error: str | None


class DeliveryDetailOut(DeliveryOut):
    attempt_log: list[AttemptOut]


class AlertOut(BaseModel):
    id: int
    event_id: str
    event_type: str
    project_id: str | None
    channel: str
    state: str
    attempts: int
    last_error: str | None


class DigestRunOut(BaseModel):
    slot: datetime
    claimed_by: str
    claimed_at: datetime | None
    projects: int
    deliveries: int


async def _subscription_for_change(session: Any, subscription_id: uuid.UUID) -> SubscriptionRow:
    """The subscription, locked FOR UPDATE for the caller's transaction; 404 when there is none."""
    return await row_or_404(
        session, SubscriptionRow, subscription_id, f"no subscription {subscription_id}", lock=True
    )


def _view(
    subscription: SubscriptionRow, settings: Settings, principal: Principal
) -> SubscriptionOut:
    recipient: str | None = subscription.recipient
    has_secret = subscription.secret is not None
    enabled = subscription.enabled
    if subscription.managed_by == "environment":
        recipient = settings.alert_webhook_url
        has_secret = settings.alert_webhook_secret is not None
        enabled = enabled and bool(settings.alert_webhook_url)
    if recipient and subscription.channel != "email" and principal.role != "pmo_admin":
        recipient = masked_url(recipient)  # never the path, query or user:password either
    return SubscriptionOut(
        id=subscription.id,
        name=subscription.name,
        channel=subscription.channel,
        recipient=recipient,
        has_secret=has_secret,
        event_types=list(subscription.event_types),
        min_severity=subscription.min_severity,
        project_id=subscription.project_id,
        business_unit=subscription.business_unit,
        escalation_target=subscription.escalation_target,
        throttle_window_s=subscription.throttle_window_s,
        enabled=enabled,
        disabled_reason=None if subscription.enabled else subscription.disabled_reason,
        disabled_at=None if subscription.enabled else subscription.disabled_at,
        managed_by=subscription.managed_by,
        created_by=subscription.created_by,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
    )


def _delivery_view(delivery: DeliveryRow, settings: Settings) -> dict[str, Any]:
    return {
        **delivery.model_dump(exclude={"context", "traceparent", "tracestate"}),
        # Stored scrubbed already; rows written by an earlier version are scrubbed here.
        "last_error": scrubbed(delivery.last_error) if delivery.last_error else None,
        "max_attempts": delivery.max_attempts or settings.notification_max_attempts,
    }


def _validated(subscription: SubscriptionRow) -> None:
    """Rules across fields, checked after a create or an update is applied."""
    try:
        subscription.recipient = _check_recipient(subscription.channel, subscription.recipient)
    except ValueError as error:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(error)) from None
    if subscription.channel == "webhook" and subscription.secret is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "a webhook subscription needs a `secret` (at least "
            f"{MIN_SECRET_LENGTH} characters) to sign its requests",
        )
    if subscription.channel != "webhook" and subscription.secret is not None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"a {subscription.channel} subscription has no `secret`: only webhooks are signed "
            "(a Slack URL is its own secret)",
        )
    if subscription.secret is not None and len(subscription.secret) < MIN_SECRET_LENGTH:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"the webhook `secret` must have at least {MIN_SECRET_LENGTH} characters",
        )
    if not subscription.event_types and not subscription.escalation_target:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "choose at least one of `event_types`, or make it an `escalation_target`",
        )


@router.get(
    "/subscriptions",
    tags=["subscriptions"],
    summary="Subscriptions: who hears about what, on which channel",
)
async def list_subscriptions(
    session: SessionDep, settings: SettingsDep, principal: Reader
) -> list[SubscriptionOut]:
    found = (
        await session.exec(select(SubscriptionRow).order_by(col(SubscriptionRow.created_at)))
    ).all()
    return [_view(subscription, settings, principal) for subscription in found]


@router.post(
    "/subscriptions",
    tags=["subscriptions"],
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a recipient to notices (administrators)",
    description=(
        "Choose notices by type, minimum severity, project and business unit; name a channel "
        "(`email`, `webhook`, `slack`) and a recipient. Bursts per project are throttled into "
        "one message plus a summary; escalation targets also get escalations.\n" + SIGNATURE_DOC
    ),
)
async def create_subscription(
    session: SessionDep, settings: SettingsDep, body: SubscriptionIn, principal: Admin
) -> SubscriptionOut:
    subscription = SubscriptionRow(
        **body.model_dump(exclude={"secret"}),
        secret=body.secret.get_secret_value() if body.secret else None,
        created_by=principal.subject,
    )
    _validated(subscription)
    async with session.begin():
        session.add(subscription)
    return _view(subscription, settings, principal)


@router.get("/subscriptions/{subscription_id}", tags=["subscriptions"], summary="One subscription")
async def get_subscription(
    session: SessionDep, settings: SettingsDep, subscription_id: uuid.UUID, principal: Reader
) -> SubscriptionOut:
    subscription = await row_or_404(
        session, SubscriptionRow, subscription_id, f"no subscription {subscription_id}"
    )
    return _view(subscription, settings, principal)


def _refuse_environment(subscription: SubscriptionRow) -> None:
    if subscription.managed_by == "environment":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this is the built-in subscription of PMO_ALERT_WEBHOOK_URL: change or unset "
            "PMO_ALERT_WEBHOOK_URL / PMO_ALERT_WEBHOOK_SECRET instead",
        )


def _refuse_project_manager(subscription: SubscriptionRow, changes: set[str]) -> None:
    if subscription.managed_by == PROJECT_MANAGER and changes - {"enabled"}:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "this is the project manager's subscription, kept from the project's registration: "
            "only `enabled` can be changed here (change the manager in the registry)",
        )


@router.patch(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    summary="Change a subscription (administrators); pending deliveries use the new recipient",
)
async def update_subscription(
    session: SessionDep,
    settings: SettingsDep,
    subscription_id: uuid.UUID,
    body: SubscriptionPatchIn,
    principal: Admin,
) -> SubscriptionOut:
    required = sorted(
        name
        for name in body.model_fields_set
        if getattr(body, name) is None and name not in NULLABLE_CHANGES
    )
    if required:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{', '.join(required)} cannot be emptied: leave a field out to keep it.",
        )
    async with session.begin():
        subscription = await _subscription_for_change(session, subscription_id)
        _refuse_environment(subscription)
        _refuse_project_manager(subscription, set(body.model_fields_set))
        changes = body.model_dump(exclude_unset=True, exclude={"secret"})
        for name, value in changes.items():
            setattr(subscription, name, value)
        if body.secret is not None:
            subscription.secret = body.secret.get_secret_value()
        if "channel" in changes and subscription.channel != "webhook":
            subscription.secret = None
        _validated(subscription)
        now = datetime.now(UTC)
        if changes.get("enabled") is True:
            subscription.disabled_reason = subscription.disabled_at = None
        elif changes.get("enabled") is False and subscription.disabled_at is None:
            subscription.disabled_reason = f"disabled by {principal.subject}"
            subscription.disabled_at = now
        subscription.updated_at = now
        session.add(subscription)
    return _view(subscription, settings, principal)


@router.post(
    "/subscriptions/{subscription_id}/enable",
    tags=["subscriptions"],
    summary="Enable a disabled subscription again (administrators)",
    description=(
        "A subscription whose receiver refused for good (a redirect, 401, 403, 404 or 410; a "
        "mail server's permanent refusal of the mailbox) is disabled with `disabled_reason` and "
        "`disabled_at`. Once the receiver is fixed (or the recipient changed with PATCH), this "
        "enables it again; the notices it missed are not sent. The environment's built-in "
        "subscription is enabled here too. Enabling an enabled subscription changes nothing."
    ),
)
async def enable_subscription(
    session: SessionDep, settings: SettingsDep, subscription_id: uuid.UUID, principal: Admin
) -> SubscriptionOut:
    async with session.begin():
        subscription = await _subscription_for_change(session, subscription_id)
        if not subscription.enabled:
            subscription.enabled = True
            subscription.disabled_reason = subscription.disabled_at = None
            subscription.updated_at = datetime.now(UTC)
            session.add(subscription)
    return _view(subscription, settings, principal)


@router.delete(
    "/subscriptions/{subscription_id}",
    tags=["subscriptions"],
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a subscription (administrators); its unsent deliveries are cancelled",
)
async def delete_subscription(
    session: SessionDep, subscription_id: uuid.UUID, _: Admin
) -> Response:
    async with session.begin():
        subscription = await _subscription_for_change(session, subscription_id)
        _refuse_environment(subscription)
        if subscription.managed_by == PROJECT_MANAGER:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                "this is the project manager's subscription, kept from the project's "
                "registration: disable it (PATCH `enabled: false`) instead of deleting it",
            )
        await session.exec(
            update(DeliveryRow)
            .where(
                col(DeliveryRow.subscription_id) == subscription_id,
                col(DeliveryRow.state).in_(("pending", "held")),
            )
            .values(state="cancelled", last_error="its subscription was deleted")
        )
        await session.delete(subscription)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/deliveries",
    tags=["deliveries"],
    summary="Deliveries, newest first: one per notice and subscription, with its state",
)
async def list_deliveries(
    session: SessionDep,
    settings: SettingsDep,
    _: Reader,
    state: DeliveryState | None = None,
    subscription_id: uuid.UUID | None = None,
    project_id: str | None = None,
    event_type: Annotated[
        str | None, Query(description="e.g. pmo.project-at-risk, pmo.portfolio-digest")
    ] = None,
    before_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="Page: ids below this one")
    ] = None,
    limit: PageSize = 100,
) -> list[DeliveryOut]:
    query = select(DeliveryRow).order_by(col(DeliveryRow.id).desc()).limit(limit)
    if state:
        query = query.where(DeliveryRow.state == state)
    if subscription_id:
        query = query.where(DeliveryRow.subscription_id == subscription_id)
    if project_id:
        query = query.where(DeliveryRow.project_id == project_id)
    if event_type:
        query = query.where(DeliveryRow.event_type == event_type)
    if before_id is not None:
        query = query.where(col(DeliveryRow.id) < before_id)
    found = (await session.exec(query)).all()
    return [DeliveryOut.model_validate(_delivery_view(delivery, settings)) for delivery in found]


@router.get(
    "/deliveries/{delivery_id}",
    tags=["deliveries"],
    summary="One delivery with every attempt and its outcome",
)
async def get_delivery(
    session: SessionDep, settings: SettingsDep, delivery_id: DeliveryId, _: Reader
) -> DeliveryDetailOut:
    delivery = await row_or_404(session, DeliveryRow, delivery_id, f"no delivery {delivery_id}")
    attempts = (
        await session.exec(
            select(DeliveryAttemptRow)
            .where(DeliveryAttemptRow.delivery_id == delivery_id)
            .order_by(col(DeliveryAttemptRow.id))
        )
    ).all()
    return DeliveryDetailOut.model_validate(
        {
            **_delivery_view(delivery, settings),
            "attempt_log": [
                {**attempt.model_dump(), "error": scrubbed(attempt.error or "") or None}
                for attempt in attempts
            ],
        }
    )


@router.post(
    "/deliveries/{delivery_id}/retry",
    tags=["deliveries"],
    summary="Send a dead delivery again, with a new round of attempts, or a failing one now "
    "rather than at its next attempt (administrators)",
)
async def retry_delivery(
    session: SessionDep, settings: SettingsDep, delivery_id: DeliveryId, _: Admin
) -> DeliveryOut:
    """A dead (or `no_channel`) delivery gets a new round of attempts from now; a failing one
    (pending after a failed attempt) is tried now, within the attempts it has left."""
    async with session.begin():
        delivery = await row_or_404(
            session, DeliveryRow, delivery_id, f"no delivery {delivery_id}", lock=True
        )
        failing = delivery.state == "pending" and delivery.last_error is not None
        if delivery.state not in ("dead", "no_channel") and not failing:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"delivery {delivery_id} is {delivery.state}"
                + (" and not failing: it is being sent" if delivery.state == "pending" else "")
                + ": only dead (or no_channel) and failing deliveries are retried by hand",
            )
        if delivery.subscription_id is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"delivery {delivery_id} has no subscription any more: nothing to send it to",
            )
        if not failing:
            delivery.max_attempts = delivery.attempts + settings.notification_max_attempts
        delivery.state = "pending"
        delivery.next_attempt_at = datetime.now(UTC)
        session.add(delivery)
    return DeliveryOut.model_validate(_delivery_view(delivery, settings))


@router.get(
    "/digests",
    tags=["digests"],
    summary="Portfolio digest runs, newest first: which slot, which replica, how many sent",
)
async def list_digests(session: SessionDep, _: Reader, limit: PageSize = 50) -> list[DigestRunOut]:
    runs = (
        await session.exec(
            select(DigestRunRow).order_by(col(DigestRunRow.slot).desc()).limit(limit)
        )
    ).all()
    return [DigestRunOut.model_validate(run, from_attributes=True) for run in runs]


class PortfolioLineOut(BaseModel):
    project_id: str
    name: str
    business_unit: str
    lifecycle: str
    health: str
    """Monitoring's newest assessment."""
    spi: float | None
    cpi: float | None
    rank: int | None
    shortfall_fte: float
    spi_t: float | None = None
    health_as_of: str | None = None
    """The as-of date of the status report behind the health and figures."""


class PortfolioOut(BaseModel):
    totals: dict[str, int | float]
    lines: list[PortfolioLineOut]


@router.get(
    "/portfolio",
    tags=["digests"],
    summary="The weekly digest's content as of now: running projects, ranked, with health",
)
async def portfolio_preview(session: SessionDep, _: Reader) -> PortfolioOut:
    lines = await current_portfolio(session)
    return PortfolioOut(
        totals=portfolio_totals(lines),
        lines=[PortfolioLineOut.model_validate(line.as_context()) for line in lines],
    )


@router.get(
    "/alerts",
    tags=["deliveries"],
    summary="Deliveries as the first version listed them (use /deliveries)",
    deprecated=True,
)
async def list_alerts(
    session: SessionDep,
    _: Reader,
    state: DeliveryState | None = None,
    limit: PageSize = 100,
) -> list[AlertOut]:
    query = select(DeliveryRow).order_by(col(DeliveryRow.id).desc()).limit(limit)
    if state:
        query = query.where(DeliveryRow.state == state)
    found = (await session.exec(query)).all()
    return [AlertOut.model_validate(delivery, from_attributes=True) for delivery in found]
