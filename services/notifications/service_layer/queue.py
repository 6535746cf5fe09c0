"""Queues a notice for every subscription that wants it: rows only, the delivery worker sends.

It works through notifications' repositories: on a handler's session (the SQL ones) or in a
`NotificationsUnitOfWork` (the clock's, or a test's fake).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.adapters.repository import (
    DeliveryRepository,
    SqlDeliveryRepository,
    SqlSubscriptionRepository,
    SubscriptionRepository,
)
from services.notifications.adapters.tables import (
    ENVIRONMENT_WEBHOOK_ID,
    DeliveryRow,
    SubscriptionRow,
)
from services.notifications.domain.subscriptions import (
    SUBSCRIPTION_DISABLED,
    Notice,
    audience_of,
    wants,
)
from services.notifications.service_layer.managers import PROJECT_MANAGER, manager_has_channel
from services.notifications.service_layer.unit_of_work import NotificationsUnitOfWork
from shared.settings import Settings
from shared.telemetry import current_trace_headers

PROJECTLESS = frozenset({"portfolio-digest", SUBSCRIPTION_DISABLED})
"""Notices that a subscription's project filter does not decide (see `wants`)."""

ContextFor = Callable[[SubscriptionRow], dict[str, Any] | None]
"""The message context for one subscription (None: nothing to tell it, e.g. an empty digest)."""


Into = AsyncSession | NotificationsUnitOfWork
"""Where notices are queued: a handler's session, or a unit of work with the repositories."""


def _repositories(into: Into) -> tuple[DeliveryRepository, SubscriptionRepository]:
    if isinstance(into, AsyncSession):
        return SqlDeliveryRepository(into), SqlSubscriptionRepository(into)
    return into.deliveries, into.subscriptions


async def subscriptions_wanting(into: Into, notice: Notice) -> list[SubscriptionRow]:
    """The enabled subscriptions whose filters take `notice`, by id."""
    _, subscriptions = _repositories(into)
    return [item for item in await subscriptions.enabled() if _wants(item, notice)]


def _wants(subscription: SubscriptionRow, notice: Notice) -> bool:
    return wants(
        audience_of(
            subscription.event_types,
            subscription.min_severity,
            subscription.project_id,
            subscription.business_unit,
            subscription.escalation_target,
        ),
        notice,
    )


def has_channel(subscription: SubscriptionRow, settings: Settings) -> bool:
    """Whether the subscription has somewhere to send: the environment's built-in webhook has
    none while `PMO_ALERT_WEBHOOK_URL` is unset, a project manager's none while SMTP is unset
    or `notify_project_managers` is off (then nothing is queued for them, and nothing can
    fail); every other subscription names its own recipient."""
    if subscription.managed_by == PROJECT_MANAGER:
        return manager_has_channel(settings)
    return subscription.id != ENVIRONMENT_WEBHOOK_ID or bool(settings.alert_webhook_url)


@dataclass(frozen=True)
class Queued:
    """One notice to queue: what it tells, the event it comes from, and its message context."""

    notice: Notice
    event_id: str
    event_type: str
    context_for: ContextFor
    project_id: str | None = None
    cause: Context | None = None
    """The trace the deliveries continue (None: the current one)."""


async def queue_notice(
    into: Into,
    notice: Notice,
    *,
    settings: Settings,
    event_id: str,
    event_type: str,
    context_for: ContextFor,
    project_id: str | None = None,
    subscriptions: Sequence[SubscriptionRow] | None = None,
) -> int:
    """Insert one pending delivery per wanting subscription, in the caller's transaction.

    The unique (event_id, subscription_id) constraint makes a replay of the same notice (an
    event parked and replayed, a clock tick run twice) insert nothing new.
    """
    return await queue_notices(
        into,
        [Queued(notice, event_id, event_type, context_for, project_id)],
        settings=settings,
        subscriptions=subscriptions,
    )


async def queue_notices(
    into: Into,
    queued: Sequence[Queued],
    *,
    settings: Settings,
    subscriptions: Sequence[SubscriptionRow] | None = None,
) -> int:
    """Queue several notices at once: the subscriptions read once, one insert for all.

    The deliveries are inserted in the order of `queued` (so their ids, which the delivery
    worker and the throttle follow, keep the events' order); each (event_id, subscription_id)
    at most once, as with `queue_notice`. Returns how many deliveries were inserted.
    """
    return len(await queue_deliveries(into, queued, settings=settings, subscriptions=subscriptions))


async def queue_deliveries(
    into: Into,
    queued: Sequence[Queued],
    *,
    settings: Settings,
    subscriptions: Sequence[SubscriptionRow] | None = None,
) -> list[tuple[DeliveryRow, SubscriptionRow]]:
    """`queue_notices`, returning the deliveries inserted (by id), each with its subscription
    as read in this transaction: what an alert's handler leases to its process's worker
    (`lease_at_once`)."""
    if not queued:
        return []
    deliveries, known = _repositories(into)
    chosen = subscriptions is not None  # the caller's are those that want the notice
    if subscriptions is None:
        # Only the subscriptions that may want one of these notices are read: those for any
        # project or for one of theirs (there is a manager's subscription per project), and
        # managers' only when they can be served. A digest or a disabled subscription is news
        # whatever a subscription's project, so then every one is read.
        about_projects = all(item.notice.notice_type not in PROJECTLESS for item in queued)
        subscriptions = await known.enabled(
            project_ids=(
                {project for item in queued for project in item.notice.project_ids}
                if about_projects
                else None
            ),
            managers=manager_has_channel(settings),
        )
    # By id (the deliveries' `subscription_id`, never None for those queued here).
    enabled: dict[uuid.UUID | None, SubscriptionRow] = {
        subscription.id: subscription
        for subscription in subscriptions
        if has_channel(subscription, settings)
    }
    rows: list[dict[str, Any]] = []
    for item in queued:
        trace = current_trace_headers(item.cause)
        for subscription in enabled.values():
            if not chosen and not _wants(subscription, item.notice):
                continue
            context = item.context_for(subscription)
            if context is None:
                continue
            rows.append(
                {
                    "event_id": item.event_id,
                    "event_type": item.event_type,
                    "subscription_id": subscription.id,
                    "project_id": item.project_id,
                    "channel": subscription.channel,
                    "severity": item.notice.severity,
                    "context": context,
                    "throttle_key": item.project_id or "",
                    "traceparent": trace.get("traceparent"),
                    "tracestate": trace.get("tracestate"),
                }
            )
    return [
        (delivery, enabled[delivery.subscription_id])
        for delivery in await deliveries.add_pending(rows)
    ]
