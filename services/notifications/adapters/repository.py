"""How notifications' service layer reads and changes its rows: the repositories' contracts
(what a fake in the tests also keeps) and their SQL implementations on a session."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.adapters.tables import (
    PROJECT_MANAGER,
    DeliveryAttemptRow,
    DeliveryRow,
    ProjectRow,
    SubscriptionRow,
)

DELIVERIES_QUEUED = "pmo.notifications.deliveries_queued"
"""In a session's `info`: how many pending deliveries it inserted and left due (not leased at
once, see `lease_at_once`); its commit wakes the delivery worker of this process if any."""


class DeliveryRepository(Protocol):
    """The deliveries: one notice to one subscription each."""

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> list[DeliveryRow]:
        """Insert pending deliveries (`DeliveryRow` columns), in order, each (event_id,
        subscription_id) at most once (a replayed notice inserts nothing). Returns those
        inserted, by id, as read from this repository (what the claim's rules take)."""
        ...

    async def held_until(self, now: datetime) -> list[DeliveryRow]:
        """The held deliveries whose throttle window has ended by `now`, by id, claimed until
        the unit of work ends (another replica's clock skips them)."""
        ...

    async def id_of(self, event_id: str, subscription_id: uuid.UUID | None) -> int | None:
        """The id of the delivery of `event_id` to the subscription, if there is one."""
        ...

    async def due(
        self, now: datetime, limit: int
    ) -> list[tuple[DeliveryRow, SubscriptionRow | None]]:
        """Pending deliveries due by `now` whose lease (if any) has run out, the longest due
        first, at most `limit`, each with its subscription (None: deleted); claimed until the
        unit of work ends (`SKIP LOCKED`: another replica's worker takes the others)."""
        ...

    async def window_opened(
        self, delivery: DeliveryRow, *, since: datetime, unthrottled: Collection[str]
    ) -> datetime | None:
        """When the first earlier delivery to the same subscription with the same throttle key,
        created after `since`, not itself held, summarized or cancelled and not of an
        `unthrottled` type, was created (None: there is none, no window is open)."""
        ...

    async def get(self, delivery_id: int, *, lock: bool = False) -> DeliveryRow | None:
        """One delivery; `lock`: locked until the unit of work ends."""
        ...

    async def save(self, delivery: DeliveryRow) -> None:
        """Keep the changes made to a delivery read from this repository."""
        ...

    async def abandon_in_flight(
        self, delivery_ids: Collection[int], *, now: datetime, error: str
    ) -> None:
        """End the attempts still in flight of these deliveries as abandoned, with `error`
        (one statement, whatever their number)."""
        ...

    async def open_attempts(
        self, deliveries: Sequence[DeliveryRow], *, worker: str
    ) -> dict[int, int]:
        """Keep the deliveries' changes and open an attempt for each (numbered by its
        `attempts`), in one statement each whatever their number; returns the attempt's id by
        the delivery's."""
        ...

    async def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        now: datetime,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        """Record how an attempt ended (delivered, failed, abandoned) and when."""
        ...

    async def release(self, delivery_id: int, *, owner: str) -> None:
        """Give back the lease on a pending delivery, if `owner` still holds it."""
        ...


class SubscriptionRepository(Protocol):
    """Who wants which notices, and where to send them."""

    async def get(
        self, subscription_id: uuid.UUID, *, lock: bool = False
    ) -> SubscriptionRow | None:
        """One subscription; `lock`: locked until the unit of work ends."""
        ...

    async def save(self, subscription: SubscriptionRow) -> None:
        """Keep the changes made to a subscription read from this repository (at once: what
        is read next in the unit of work sees them)."""
        ...

    async def enabled(
        self, *, project_ids: Collection[str] | None = None, managers: bool = True
    ) -> list[SubscriptionRow]:
        """The enabled subscriptions, by id; with `project_ids`, only those for any project or
        for one of these; without `managers`, none of the project managers' own."""
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


def _by_id(delivery: DeliveryRow) -> int:
    return delivery.id or 0


class SqlDeliveryRepository:
    """`DeliveryRepository` in notifications' schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> list[DeliveryRow]:
        if not rows:
            return []
        # The inserted rows come back whole (their ids and creation time, in the same round
        # trip), in the session like rows it read: an alert's are leased in this transaction.
        statement = (
            insert(DeliveryRow)
            .values(list(rows))
            .on_conflict_do_nothing(constraint="delivery_once_per_subscription")
            .returning(DeliveryRow)
        )
        added = sorted((await self.session.exec(statement)).scalars().all(), key=_by_id)
        if added:
            # For the delivery worker in this process: this transaction's commit has
            # something for it (see `DeliveryWorker`); commits without it do not wake it.
            info = self.session.info
            info[DELIVERIES_QUEUED] = info.get(DELIVERIES_QUEUED, 0) + len(added)
        return added

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

    async def due(
        self, now: datetime, limit: int
    ) -> list[tuple[DeliveryRow, SubscriptionRow | None]]:
        query = (
            select(DeliveryRow, SubscriptionRow)
            .join(
                SubscriptionRow,
                col(DeliveryRow.subscription_id) == col(SubscriptionRow.id),
                isouter=True,
            )
            .where(
                DeliveryRow.state == "pending",
                col(DeliveryRow.next_attempt_at) <= now,
                or_(
                    col(DeliveryRow.locked_until).is_(None),
                    col(DeliveryRow.locked_until) < now,
                ),
            )
            .order_by(col(DeliveryRow.next_attempt_at), col(DeliveryRow.id))
            .limit(limit)
            .with_for_update(of=DeliveryRow, skip_locked=True)
        )
        rows = (await self.session.exec(query)).all()
        return [(delivery, subscription) for delivery, subscription in rows]

    async def window_opened(
        self, delivery: DeliveryRow, *, since: datetime, unthrottled: Collection[str]
    ) -> datetime | None:
        query = (
            select(DeliveryRow.created_at)
            .where(
                DeliveryRow.subscription_id == delivery.subscription_id,
                DeliveryRow.throttle_key == delivery.throttle_key,
                col(DeliveryRow.id) < delivery.id,
                col(DeliveryRow.state).not_in(("held", "summarized", "cancelled")),
                col(DeliveryRow.event_type).not_in(unthrottled),
                col(DeliveryRow.created_at) > since,
            )
            .order_by(col(DeliveryRow.id))
            .limit(1)
        )
        return (await self.session.exec(query)).first()

    async def get(self, delivery_id: int, *, lock: bool = False) -> DeliveryRow | None:
        return await self.session.get(DeliveryRow, delivery_id, with_for_update=lock)

    async def save(self, delivery: DeliveryRow) -> None:
        self.session.add(delivery)

    async def abandon_in_flight(
        self, delivery_ids: Collection[int], *, now: datetime, error: str
    ) -> None:
        await self.session.exec(
            update(DeliveryAttemptRow)
            .where(
                col(DeliveryAttemptRow.delivery_id).in_(delivery_ids),
                col(DeliveryAttemptRow.outcome) == "in_flight",
            )
            .values(outcome="abandoned", finished_at=now, error=error)
        )

    async def open_attempts(
        self, deliveries: Sequence[DeliveryRow], *, worker: str
    ) -> dict[int, int]:
        if not deliveries:
            return {}
        self.session.add_all(deliveries)
        # The deliveries' updates are flushed (one executemany) before this insert runs.
        opened = (
            await self.session.exec(
                insert(DeliveryAttemptRow)
                .values(
                    [
                        {"delivery_id": delivery.id, "number": delivery.attempts, "worker": worker}
                        for delivery in deliveries
                    ]
                )
                .returning(col(DeliveryAttemptRow.delivery_id), col(DeliveryAttemptRow.id))
            )
        ).all()
        return {delivery_id: attempt_id for delivery_id, attempt_id in opened}

    async def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        now: datetime,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        await self.session.exec(
            update(DeliveryAttemptRow)
            .where(col(DeliveryAttemptRow.id) == attempt_id)
            .values(outcome=outcome, finished_at=now, status_code=status_code, error=error)
        )

    async def release(self, delivery_id: int, *, owner: str) -> None:
        await self.session.exec(
            update(DeliveryRow)
            .where(
                col(DeliveryRow.id) == delivery_id,
                col(DeliveryRow.lease_owner) == owner,
                col(DeliveryRow.state) == "pending",
            )
            .values(locked_until=None, lease_owner=None)
        )


class SqlSubscriptionRepository:
    """`SubscriptionRepository` in notifications' schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(
        self, subscription_id: uuid.UUID, *, lock: bool = False
    ) -> SubscriptionRow | None:
        return await self.session.get(SubscriptionRow, subscription_id, with_for_update=lock)

    async def save(self, subscription: SubscriptionRow) -> None:
        self.session.add(subscription)
        await self.session.flush()

    async def enabled(
        self, *, project_ids: Collection[str] | None = None, managers: bool = True
    ) -> list[SubscriptionRow]:
        # Narrowed here, not after loading: there is a manager's subscription per project, so
        # every enabled one is thousands of rows made into objects for each alert's batch.
        query = select(SubscriptionRow).where(col(SubscriptionRow.enabled))
        if project_ids is not None:
            query = query.where(
                col(SubscriptionRow.project_id).is_(None)
                | col(SubscriptionRow.project_id).in_(sorted(project_ids))
            )
        if not managers:
            query = query.where(col(SubscriptionRow.managed_by) != PROJECT_MANAGER)
        return list((await self.session.exec(query.order_by(col(SubscriptionRow.id)))).all())


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
