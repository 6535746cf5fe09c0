"""Allocation's unit of work: the shared one (settings, outbox) and its repositories."""

from __future__ import annotations

from typing import Protocol

from services.allocation.adapters.repository import (
    AssignmentRepository,
    ConflictRepository,
    InterventionRepository,
    PortfolioRepository,
    RequestRepository,
    SqlAssignmentRepository,
    SqlConflictRepository,
    SqlInterventionRepository,
    SqlPortfolioRepository,
    SqlRequestRepository,
)
from shared.messaging.unit_of_work import (
    AbstractUnitOfWork,
    ServiceUnitOfWork,
    UnitOfWork,
    service_work,
)


class AllocationUnitOfWork(AbstractUnitOfWork, Protocol):
    """What allocation's rules work in: `SqlAllocationUnitOfWork`, or the tests' fake one."""

    @property
    def requests(self) -> RequestRepository: ...

    @property
    def assignments(self) -> AssignmentRepository: ...

    @property
    def conflicts(self) -> ConflictRepository: ...

    @property
    def portfolio(self) -> PortfolioRepository: ...

    @property
    def interventions(self) -> InterventionRepository: ...


class SqlAllocationUnitOfWork(ServiceUnitOfWork):
    """Allocation's repositories in the transaction of the runtime's (open) `UnitOfWork`."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self.requests = SqlRequestRepository(uow.session)
        self.assignments = SqlAssignmentRepository(uow.session)
        self.conflicts = SqlConflictRepository(uow.session)
        self.portfolio = SqlPortfolioRepository(uow.session)
        self.interventions = SqlInterventionRepository(uow.session)


def allocation_work(uow: UnitOfWork | AllocationUnitOfWork) -> AllocationUnitOfWork:
    """Allocation's unit of work for `uow` (see `shared.messaging.unit_of_work.service_work`)."""
    return service_work(uow, SqlAllocationUnitOfWork)
