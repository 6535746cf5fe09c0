"""Notifications' unit of work: the shared one (settings, outbox) and its repositories."""

from __future__ import annotations

from typing import Protocol

from services.notifications.adapters.repository import (
    DeliveryRepository,
    ProjectRepository,
    SqlDeliveryRepository,
    SqlProjectRepository,
    SqlSubscriptionRepository,
    SubscriptionRepository,
)
from shared.messaging.unit_of_work import AbstractUnitOfWork, ServiceUnitOfWork, UnitOfWork


class NotificationsUnitOfWork(AbstractUnitOfWork, Protocol):
    """What notifications' rules work in: `SqlNotificationsUnitOfWork`, or the tests' fake."""

    @property
    def deliveries(self) -> DeliveryRepository: ...

    @property
    def subscriptions(self) -> SubscriptionRepository: ...

    @property
    def projects(self) -> ProjectRepository: ...


class SqlNotificationsUnitOfWork(ServiceUnitOfWork):
    """Notifications' repositories in the transaction of the runtime's (open) `UnitOfWork`."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self.deliveries = SqlDeliveryRepository(uow.session)
        self.subscriptions = SqlSubscriptionRepository(uow.session)
        self.projects = SqlProjectRepository(uow.session)
