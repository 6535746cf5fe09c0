"""The registry's unit of work: the shared one (settings, outbox) and its repositories."""

from __future__ import annotations

from typing import Protocol

from services.registry.adapters.repository import (
    GateRepository,
    ProjectRepository,
    SqlGateRepository,
    SqlProjectRepository,
    SqlStrategyRepository,
    StrategyRepository,
)
from shared.messaging.unit_of_work import (
    AbstractUnitOfWork,
    ServiceUnitOfWork,
    UnitOfWork,
    service_work,
)


class RegistryUnitOfWork(AbstractUnitOfWork, Protocol):
    """What the registry's rules work in: `SqlRegistryUnitOfWork`, or the tests' fake one."""

    @property
    def projects(self) -> ProjectRepository: ...

    @property
    def strategies(self) -> StrategyRepository: ...

    @property
    def gates(self) -> GateRepository: ...


class SqlRegistryUnitOfWork(ServiceUnitOfWork):
    """The registry's repositories in the transaction of the runtime's (open) `UnitOfWork`."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self.projects = SqlProjectRepository(uow.session)
        self.strategies = SqlStrategyRepository(uow.session)
        self.gates = SqlGateRepository(uow.session)


def registry_work(uow: UnitOfWork | RegistryUnitOfWork) -> RegistryUnitOfWork:
    """The registry's unit of work for `uow`: the runtime's one (what handlers and routes are
    given) wrapped with the SQL repositories; the registry's own one (or a fake) as it is."""
    return service_work(uow, SqlRegistryUnitOfWork)
