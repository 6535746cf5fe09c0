"""How notifications' service layer reads and changes its rows: the repositories' contracts
(what a fake in the tests also keeps) and their SQL implementations on a session."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.adapters.tables import DeliveryRow, ProjectRow, SubscriptionRow


class DeliveryRepository(Protocol):
    """The deliveries: one notice to one subscription each."""

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert pending deliveries (`DeliveryRow` columns), in order, each (event_id,
        subscription_id) at most once (a replayed notice inserts nothing). Returns how many
        were inserted."""
        ...

    async def held_until(self, now: datetime) -> list[DeliveryRow]:
        """The held deliveries whose throttle window has ended by `now`, by id, claimed until
        the unit of work ends (another replica's clock skips them)."""
        ...

    async def id_of(self, event_id: str, subscription_id: uuid.UUID | None) -> int | None:
        """The id of the delivery of `event_id` to the subscription, if there is one."""
        ...


class SubscriptionRepository(Protocol):
    """Who wants which notices, and where to send them."""

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionRow | None: ...

    async def enabled(self) -> list[SubscriptionRow]:
        """The enabled subscriptions, by id."""
        ...


class ProjectRepository(Protocol):
    """What notifications knows of each project."""

    async def to_escalate(
        self, at_risk_before: datetime, *, finished: Collection[str], limit: int
    ) -> list[ProjectRow]:
        """Projects at risk since `at_risk_before` or earlier, not escalated in this episode and
        not in a `finished` lifecycle: the longest at risk first, at most `limit`, claimed
        until the unit of work ends."""
        ...


class SqlDeliveryRepository:
    """`DeliveryRepository` in notifications' schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        statement = (
            insert(DeliveryRow)
            .values(list(rows))
            .on_conflict_do_nothing(constraint="delivery_once_per_subscription")
            .returning(col(DeliveryRow.id))
        )
        return len((await self.session.exec(statement)).all())

    async def held_until(self, now: datetime) -> list[DeliveryRow]:
        query = (
            select(DeliveryRow)
            .where(DeliveryRow.state == "held", col(DeliveryRow.held_until) <= now)
            .order_by(col(DeliveryRow.id))
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.exec(query)).all())

    async def id_of(self, event_id: str, subscription_id: uuid.UUID | None) -> int | None:
        query = select(DeliveryRow.id).where(
            DeliveryRow.event_id == event_id, DeliveryRow.subscription_id == subscription_id
        )
        return (await self.session.exec(query)).first()


class SqlSubscriptionRepository:
    """`SubscriptionRepository` in notifications' schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionRow | None:
        return await self.session.get(SubscriptionRow, subscription_id)

    async def enabled(self) -> list[SubscriptionRow]:
        query = (
            select(SubscriptionRow)
            .where(col(SubscriptionRow.enabled))
            .order_by(col(SubscriptionRow.id))
        )
        return list((await self.session.exec(query)).all())


class SqlProjectRepository:
    """`ProjectRepository` in notifications' schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def to_escalate(
        self, at_risk_before: datetime, *, finished: Collection[str], limit: int
    ) -> list[ProjectRow]:
        query = (
            select(ProjectRow)
            .where(
                col(ProjectRow.at_risk_since).is_not(None),
                col(ProjectRow.escalated_at).is_(None),
                col(ProjectRow.at_risk_since) <= at_risk_before,
                col(ProjectRow.lifecycle).not_in(finished),
            )
            .order_by(col(ProjectRow.at_risk_since))
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        return list((await self.session.exec(query)).all())
