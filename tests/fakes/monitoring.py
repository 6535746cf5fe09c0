"""Monitoring's repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from services.monitoring.adapters.repository import position_of
from services.monitoring.adapters.tables import (
    BaselineRow,
    HealthAssessmentRow,
    MonitoredProjectRow,
    ResourcePositionRow,
    ThresholdOverrideRow,
)
from services.monitoring.domain.health import ResourcePosition
from shared.projections import supersedes
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


def monitored_project(
    project_id: str, *, expected_since: date, **columns: Any
) -> MonitoredProjectRow:
    """A project as `on_project_started` keeps it (a year-long plan of 100,000 EUR from
    2026-01-01, green, never reported), expected to report from `expected_since`; other
    columns changed by keyword."""
    fields: dict[str, Any] = {
        "name": f"Project {project_id}",
        "currency": "EUR",
        "budget_at_completion": 100_000.0,
        "start_date": date(2026, 1, 1),
        "planned_finish_date": date(2026, 12, 31),
        "lifecycle": "active",
        **columns,
    }
    project = MonitoredProjectRow(
        project_id=project_id, status_expected_since=expected_since, **fields
    )
    return FakeProjectRepository.stored(project)


class FakeProjectRepository:
    """`ProjectRepository` on a dict of projects; `claim_stale` takes what the SQL one does
    (no other unit of work holds a lock here)."""

    def __init__(self, projects: Iterable[MonitoredProjectRow] = ()) -> None:
        self.projects = {project.project_id: project for project in projects}

    @staticmethod
    def stored(project: MonitoredProjectRow) -> MonitoredProjectRow:
        """`project` with the columns' server defaults, as the database keeps it."""
        for name, empty in (("reasons", list), ("index_levels", dict), ("metrics", dict)):
            if getattr(project, name, None) is None:
                setattr(project, name, empty())
        return project

    async def get(self, project_id: str, *, lock: bool = False) -> MonitoredProjectRow | None:
        return self.projects.get(project_id)

    def add(self, project: MonitoredProjectRow) -> None:
        self.projects[project.project_id] = self.stored(project)

    async def claim_stale(self, *, expected_before: date, limit: int) -> list[MonitoredProjectRow]:
        due = [
            project
            for _, project in sorted(self.projects.items())
            if project.monitoring_state == "active"
            and project.stale_since is None
            and project.status_expected_since < expected_before
        ]
        return due[:limit]


class FakeBaselineRepository:
    """`BaselineRepository` on a dict keyed by (project, version)."""

    def __init__(self) -> None:
        self.kept: dict[tuple[str, int], BaselineRow] = {}

    def add(self, baseline: BaselineRow) -> None:
        self.kept[(baseline.project_id, baseline.version)] = baseline

    async def keep(self, baseline: BaselineRow) -> None:
        self.kept.setdefault((baseline.project_id, baseline.version), baseline)


class FakeAssessmentRepository:
    """`AssessmentRepository` on a list (ids in order)."""

    def __init__(self) -> None:
        self.rows: list[HealthAssessmentRow] = []

    def add(self, record: dict[str, Any]) -> HealthAssessmentRow:
        row = HealthAssessmentRow(id=len(self.rows) + 1, **record)
        self.rows.append(row)
        return row

    def of(self, project_id: str) -> list[HealthAssessmentRow]:
        """The project's history, oldest first."""
        return [row for row in self.rows if row.project_id == project_id]


class FakePositionRepository:
    """`PositionRepository` on a dict keyed by request id."""

    def __init__(self) -> None:
        self.rows: dict[str, ResourcePositionRow] = {}

    async def of(self, project_id: str) -> list[ResourcePosition]:
        return [
            position_of(row) for _, row in sorted(self.rows.items()) if row.project_id == project_id
        ]

    async def get(self, request_id: str, *, lock: bool = False) -> ResourcePositionRow | None:
        return self.rows.get(request_id)

    async def record(self, request_id: str, values: dict[str, Any]) -> None:
        kept = self.rows.get(request_id)
        decided_at: datetime = values["decided_at"]
        if kept is None or supersedes(decided_at, kept.decided_at):
            self.rows[request_id] = ResourcePositionRow(request_id=request_id, **values)


class FakeThresholdRepository:
    """`ThresholdRepository` on one optional override."""

    def __init__(self) -> None:
        self.stored: ThresholdOverrideRow | None = None

    async def override(self, *, lock: bool = False) -> ThresholdOverrideRow | None:
        return self.stored

    async def put(self, thresholds: dict[str, Any], *, by: str, at: datetime) -> None:
        self.stored = ThresholdOverrideRow(
            id=1, thresholds=thresholds, updated_by=by, updated_at=at
        )

    async def drop(self) -> None:
        self.stored = None


class FakeMonitoringUnitOfWork(FakeUnitOfWork):
    """`MonitoringUnitOfWork` in memory: its repositories are the fakes above."""

    service = "monitoring"

    def __init__(
        self, projects: Iterable[MonitoredProjectRow] = (), settings: Settings | None = None
    ) -> None:
        super().__init__(settings)
        self.projects = FakeProjectRepository(projects)
        self.baselines = FakeBaselineRepository()
        self.assessments = FakeAssessmentRepository()
        self.positions = FakePositionRepository()
        self.thresholds = FakeThresholdRepository()
