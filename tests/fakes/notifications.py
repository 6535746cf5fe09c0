"""Notifications' repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from services.notifications.adapters.tables import (
    DeliveryAttemptRow,
    DeliveryRow,
    ProjectRow,
    SubscriptionRow,
)
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


class FakeDeliveryRepository:
    """`DeliveryRepository` on a list; ids given in order, once per (event, subscription).

    Its attempts are in `attempts`; the subscriptions (for `due`) are those of `subscriptions`.
    Changes to a row read from it are kept as made (no lock: one test, one worker).
    """

    def __init__(
        self,
        deliveries: Iterable[DeliveryRow] = (),
        subscriptions: FakeSubscriptionRepository | None = None,
    ) -> None:
        self.rows: list[DeliveryRow] = []
        self.attempts: list[DeliveryAttemptRow] = []
        self.subscriptions = subscriptions or FakeSubscriptionRepository()
        for delivery in deliveries:
            self.add(delivery)

    def add(self, delivery: DeliveryRow) -> DeliveryRow:
        """Keep a delivery as the database would: with the next id and a creation time."""
        delivery.id = len(self.rows) + 1
        delivery.created_at = delivery.created_at or datetime.now(UTC)
        self.rows.append(delivery)
        return delivery

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> list[DeliveryRow]:
        inserted: list[DeliveryRow] = []
        for row in rows:
            if await self.id_of(row["event_id"], row["subscription_id"]) is None:
                inserted.append(self.add(DeliveryRow(**row)))
        return inserted

    async def held_until(self, now: datetime) -> list[DeliveryRow]:
        return [
            row
            for row in self.rows
            if row.state == "held" and row.held_until is not None and row.held_until <= now
        ]

    async def id_of(self, event_id: str, subscription_id: uuid.UUID | None) -> int | None:
        return next(
            (
                row.id
                for row in self.rows
                if row.event_id == event_id and row.subscription_id == subscription_id
            ),
            None,
        )

    async def due(
        self, now: datetime, limit: int
    ) -> list[tuple[DeliveryRow, SubscriptionRow | None]]:
        due = [
            row
            for row in self.rows
            if row.state == "pending"
            and (row.next_attempt_at or row.created_at or now) <= now
            and (row.locked_until is None or row.locked_until < now)
        ]
        due.sort(key=lambda row: (row.next_attempt_at or row.created_at or now, row.id or 0))
        known = self.subscriptions.by_id
        return [(row, known.get(row.subscription_id or uuid.UUID(int=0))) for row in due[:limit]]

    async def window_opened(
        self, delivery: DeliveryRow, *, since: datetime, unthrottled: Collection[str]
    ) -> datetime | None:
        return next(
            (
                row.created_at
                for row in self.rows
                if row.subscription_id == delivery.subscription_id
                and row.throttle_key == delivery.throttle_key
                and (row.id or 0) < (delivery.id or 0)
                and row.state not in ("held", "summarized", "cancelled")
                and row.event_type not in unthrottled
                and row.created_at is not None
                and row.created_at > since
            ),
            None,
        )

    async def get(self, delivery_id: int, *, lock: bool = False) -> DeliveryRow | None:
        return next((row for row in self.rows if row.id == delivery_id), None)

    async def save(self, delivery: DeliveryRow) -> None:
        return None

    async def abandon_in_flight(
        self, delivery_ids: Collection[int], *, now: datetime, error: str
    ) -> None:
        for attempt in self.attempts:
            if attempt.delivery_id in delivery_ids and attempt.outcome == "in_flight":
                attempt.outcome, attempt.finished_at, attempt.error = "abandoned", now, error

    async def open_attempts(
        self, deliveries: Sequence[DeliveryRow], *, worker: str
    ) -> dict[int, int]:
        opened: dict[int, int] = {}
        for delivery in deliveries:
            assert delivery.id is not None
            attempt = DeliveryAttemptRow(
                id=len(self.attempts) + 1,
                delivery_id=delivery.id,
                number=delivery.attempts,
                worker=worker,
            )
            self.attempts.append(attempt)
            opened[delivery.id] = len(self.attempts)
        return opened

    async def finish_attempt(
        self,
        attempt_id: int,
        *,
        outcome: str,
        now: datetime,
        status_code: int | None = None,
        error: str | None = None,
    ) -> None:
        attempt = self.attempts[attempt_id - 1]
        attempt.outcome, attempt.finished_at = outcome, now
        attempt.status_code, attempt.error = status_code, error

    async def release(self, delivery_id: int, *, owner: str) -> None:
        row = await self.get(delivery_id)
        if row is not None and row.lease_owner == owner and row.state == "pending":
            row.locked_until = row.lease_owner = None

    def of_type(self, event_type: str) -> list[DeliveryRow]:
        return [row for row in self.rows if row.event_type == event_type]


class FakeSubscriptionRepository:
    """`SubscriptionRepository` on a dict by id."""

    def __init__(self, subscriptions: Iterable[SubscriptionRow] = ()) -> None:
        self.by_id = {subscription.id: subscription for subscription in subscriptions}

    async def get(
        self, subscription_id: uuid.UUID, *, lock: bool = False
    ) -> SubscriptionRow | None:
        return self.by_id.get(subscription_id)

    async def save(self, subscription: SubscriptionRow) -> None:
        self.by_id[subscription.id] = subscription

    async def enabled(
        self, *, project_ids: Collection[str] | None = None, managers: bool = True
    ) -> list[SubscriptionRow]:
        return sorted(
            (
                s
                for s in self.by_id.values()
                if s.enabled
                and (project_ids is None or s.project_id is None or s.project_id in project_ids)
                and (managers or s.managed_by != "project-manager")
            ),
            key=lambda s: s.id,
        )


class FakeProjectRepository:
    """`ProjectRepository` on a dict by id."""

    def __init__(self, projects: Iterable[ProjectRow] = ()) -> None:
        self.by_id = {project.project_id: project for project in projects}

    async def to_escalate(
        self, at_risk_before: datetime, *, finished: Collection[str], limit: int
    ) -> list[ProjectRow]:
        due = [
            project
            for project in self.by_id.values()
            if project.at_risk_since is not None
            and project.escalated_at is None
            and project.at_risk_since <= at_risk_before
            and project.lifecycle not in finished
        ]
        return sorted(due, key=lambda project: project.at_risk_since or at_risk_before)[:limit]


class FakeNotificationsUnitOfWork(FakeUnitOfWork):
    """`NotificationsUnitOfWork` in memory: the repositories are the fakes above."""

    def __init__(
        self,
        *,
        subscriptions: Iterable[SubscriptionRow] = (),
        projects: Iterable[ProjectRow] = (),
        deliveries: Iterable[DeliveryRow] = (),
        settings: Settings | None = None,
    ) -> None:
        super().__init__(settings)
        self.subscriptions = FakeSubscriptionRepository(subscriptions)
        self.deliveries = FakeDeliveryRepository(deliveries, self.subscriptions)
        self.projects = FakeProjectRepository(projects)
