"""Monitoring's unit of work: the shared one (settings, outbox) and its repositories."""

from __future__ import annotations

from typing import Protocol

from services.monitoring.adapters.repository import (
    AssessmentRepository,
    BaselineRepository,
    PositionRepository,
    ProjectRepository,
    SqlAssessmentRepository,
    SqlBaselineRepository,
    SqlPositionRepository,
    SqlProjectRepository,
    SqlThresholdRepository,
    ThresholdRepository,
)
from shared.messaging.unit_of_work import (
    AbstractUnitOfWork,
    ServiceUnitOfWork,
    UnitOfWork,
    service_work,
)


class MonitoringUnitOfWork(AbstractUnitOfWork, Protocol):
    """What monitoring's rules work in: `SqlMonitoringUnitOfWork`, or the tests' fake one."""

    @property
    def service(self) -> str:
        """The service's name, as its log lines carry it."""
        ...

    @property
    def projects(self) -> ProjectRepository: ...

    @property
    def baselines(self) -> BaselineRepository: ...

    @property
    def assessments(self) -> AssessmentRepository: ...

    @property
    def positions(self) -> PositionRepository: ...

    @property
    def thresholds(self) -> ThresholdRepository: ...


class SqlMonitoringUnitOfWork(ServiceUnitOfWork):
    """Monitoring's repositories in the transaction of the runtime's (open) `UnitOfWork`."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self.service = uow.service
        self.projects = SqlProjectRepository(uow.session)
        self.baselines = SqlBaselineRepository(uow.session)
        self.assessments = SqlAssessmentRepository(uow.session)
        self.positions = SqlPositionRepository(uow.session)
        self.thresholds = SqlThresholdRepository(uow.session)


def monitoring_work(uow: UnitOfWork | MonitoringUnitOfWork) -> MonitoringUnitOfWork:
    """Monitoring's unit of work for `uow`: the runtime's one (what handlers, routes and the
    clock are given) wrapped with the SQL repositories; monitoring's own one (or a fake) as
    it is."""
    return service_work(uow, SqlMonitoringUnitOfWork)
