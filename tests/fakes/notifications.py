"""Notifications' repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from services.notifications.adapters.tables import DeliveryRow, ProjectRow, SubscriptionRow
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


class FakeDeliveryRepository:
    """`DeliveryRepository` on a list; ids given in order, once per (event, subscription)."""

    def __init__(self, deliveries: Iterable[DeliveryRow] = ()) -> None:
        self.rows: list[DeliveryRow] = []
        for delivery in deliveries:
            self.add(delivery)

    def add(self, delivery: DeliveryRow) -> DeliveryRow:
        """Keep a delivery as the database would: with the next id and a creation time."""
        delivery.id = len(self.rows) + 1
        delivery.created_at = delivery.created_at or datetime.now(UTC)
        self.rows.append(delivery)
        return delivery

    async def add_pending(self, rows: Sequence[dict[str, Any]]) -> int:
        inserted = 0
        for row in rows:
            if await self.id_of(row["event_id"], row["subscription_id"]) is None:
                self.add(DeliveryRow(**row))
                inserted += 1
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

    def of_type(self, event_type: str) -> list[DeliveryRow]:
        return [row for row in self.rows if row.event_type == event_type]


class FakeSubscriptionRepository:
    """`SubscriptionRepository` on a dict by id."""

    def __init__(self, subscriptions: Iterable[SubscriptionRow] = ()) -> None:
        self.by_id = {subscription.id: subscription for subscription in subscriptions}

    async def get(self, subscription_id: uuid.UUID) -> SubscriptionRow | None:
        return self.by_id.get(subscription_id)

    async def enabled(self) -> list[SubscriptionRow]:
        return sorted((s for s in self.by_id.values() if s.enabled), key=lambda s: s.id)


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
        self.deliveries = FakeDeliveryRepository(deliveries)
        self.subscriptions = FakeSubscriptionRepository(subscriptions)
        self.projects = FakeProjectRepository(projects)
