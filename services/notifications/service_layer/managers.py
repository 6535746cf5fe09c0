"""Keeps each project's manager subscribed by e-mail to the notices about their project.

The project's `manager` (an e-mail address, from project-registered) gets the notices meant
for them without anyone subscribing them: notifications keeps one system-owned subscription
(`managed_by = "project-manager"`) per project, through the same subscriptions and delivery
queue as every other notice. It is created when the project is learnt, moved to the new address
when the manager changes, and an administrator may disable it (PATCH `enabled: false`), which
a later project-registered never undoes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.adapters.tables import PROJECT_MANAGER as PROJECT_MANAGER
from services.notifications.adapters.tables import SubscriptionRow
from services.notifications.domain.subscriptions import NoticeType
from shared.settings import Settings

MANAGER_NOTICES: tuple[NoticeType, ...] = (
    "intervention-proposed",
    "intervention-accepted",
    "intervention-declined",
    "intervention-ended",
    "lessons-suggested",
    "gate-reviewed",
    "project-at-risk",
    "project-recovered",
)
"""What a project manager hears about their own project; escalations too (the subscription is
an escalation target, limited to the project like every filter). Not the weekly portfolio
digest, allocations or reprioritizations: those are the PMO's."""

_NAMESPACE = uuid.UUID("3b0f7a52-8c1e-4d6a-9e2f-5a7c1d3e9b40")


def manager_subscription_id(project_id: str) -> uuid.UUID:
    """The manager's subscription of `project_id`: the same id whichever replica makes it."""
    return uuid.uuid5(_NAMESPACE, project_id)


def manager_has_channel(settings: Settings) -> bool:
    """Whether managers' subscriptions can be served: the feature on and SMTP configured."""
    return settings.notify_project_managers and bool(settings.smtp_host)


async def keep_manager_subscription(
    session: AsyncSession, settings: Settings, *, project_id: str, name: str, manager: str
) -> None:
    """Create the project's manager subscription, or move it to `manager` (an e-mail address).

    Idempotent (a redelivered project-registered changes nothing); its `enabled` is left as it
    is, so a subscription an administrator disabled stays disabled. Does nothing when the
    feature is off (`notify_project_managers`).
    """
    if not settings.notify_project_managers:
        return
    statement = insert(SubscriptionRow).values(
        id=manager_subscription_id(project_id),
        name=f"Manager of {name}",
        channel="email",
        recipient=manager,
        event_types=list(MANAGER_NOTICES),
        project_id=project_id,
        escalation_target=True,
        managed_by=PROJECT_MANAGER,
        created_by="notifications",
    )
    await session.exec(
        statement.on_conflict_do_update(
            index_elements=["project_id"],
            index_where=text("managed_by = 'project-manager'"),
            set_={
                "recipient": statement.excluded.recipient,
                "name": statement.excluded.name,
                "updated_at": datetime.now(UTC),
            },
            where=(col(SubscriptionRow.recipient) != statement.excluded.recipient)
            | (col(SubscriptionRow.name) != statement.excluded.name),
        )
    )
