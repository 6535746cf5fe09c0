"""The registry's repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

from services.registry.adapters.repository import strategy_of
from services.registry.adapters.tables import (
    DeliverableRow,
    GateReviewRow,
    ProjectHistoryRow,
    ProjectRow,
    StrategyRow,
)
from services.registry.domain.stage_models import GateEvidence
from shared.events.contracts import Stage, StrategyChanged
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


def registered_project(project_id: str, *, lifecycle: str = "active", **charter: Any) -> ProjectRow:
    """A project as `on_project_started` keeps it: a year-long charter, changed by keyword
    (`planned_finish_date` may be an ISO date string, as in an event)."""
    fields: dict[str, Any] = {
        "name": f"Project {project_id}",
        "business_unit": "Operations",
        "manager": "grace.hopper@example.com",
        "start_date": date(2026, 1, 1),
        "planned_finish_date": date(2026, 12, 31),
        "budget": 100000.0,
        "currency": "EUR",
        **charter,
    }
    if isinstance(fields["planned_finish_date"], str):
        fields["planned_finish_date"] = date.fromisoformat(fields["planned_finish_date"])
    return ProjectRow(project_id=project_id, lifecycle=lifecycle, registered_by="test", **fields)


class FakeProjectRepository:
    """`ProjectRepository` on a dict of projects; the history kept in a list."""

    def __init__(self, projects: Iterable[ProjectRow] = ()) -> None:
        self.projects = {project.project_id: project for project in projects}
        self.history: list[ProjectHistoryRow] = []

    async def all(self, *, lock: bool = False) -> list[ProjectRow]:
        return [self.projects[key] for key in sorted(self.projects)]

    def add_history(self, entry: ProjectHistoryRow) -> None:
        self.history.append(entry)

    def history_of(self, project_id: str) -> list[ProjectHistoryRow]:
        return [entry for entry in self.history if entry.project_id == project_id]


class FakeGateRepository:
    """`GateRepository` on a dict of deliverables and a list of reviews; `lessons` counts the
    lessons learned recorded per project (none unless a test sets them)."""

    def __init__(self) -> None:
        self.submitted: dict[tuple[str, str], DeliverableRow] = {}
        self.reviews: list[GateReviewRow] = []
        self.lessons: dict[str, int] = {}

    async def deliverable(self, project_id: str, name: str) -> DeliverableRow | None:
        return self.submitted.get((project_id, name))

    async def deliverables(self, project_id: str) -> list[DeliverableRow]:
        return sorted(
            (row for (key, _), row in self.submitted.items() if key == project_id),
            key=lambda row: row.name,
        )

    async def submit(self, deliverable: DeliverableRow) -> DeliverableRow:
        self.submitted[(deliverable.project_id, deliverable.name)] = deliverable
        return deliverable

    async def add_review(self, review: GateReviewRow) -> GateReviewRow:
        review.id = len(self.reviews) + 1
        self.reviews.append(review)
        return review

    async def evidence(self, project_id: str, from_stage: Stage, to_stage: Stage) -> GateEvidence:
        return GateEvidence(
            deliverables=frozenset(row.name for row in await self.deliverables(project_id)),
            lessons=self.lessons.get(project_id, 0),
            reviewed=any(
                (r.project_id, r.from_stage, r.to_stage, r.decision, r.used_by)
                == (project_id, from_stage, to_stage, "passed", None)
                for r in self.reviews
            ),
        )

    async def close_reviews(self, project_id: str, *, cause: str) -> None:
        for review in self.reviews:
            if review.project_id == project_id and review.used_by is None:
                review.used_by = cause


class FakeStrategyRepository:
    """`StrategyRepository` on a list of received versions."""

    def __init__(self) -> None:
        self.received: list[StrategyRow] = []
        self.locks = 0

    async def lock(self) -> None:
        self.locks += 1

    async def current(self) -> StrategyChanged | None:
        applied = [row for row in self.received if row.outcome == "applied"]
        if not applied:
            return None
        return strategy_of(max(applied, key=lambda row: row.strategy_version))

    def add(self, received: StrategyRow) -> None:
        self.received.append(received)


class FakeRegistryUnitOfWork(FakeUnitOfWork):
    """`RegistryUnitOfWork` in memory: its repositories are the fakes above."""

    def __init__(
        self, projects: Iterable[ProjectRow] = (), settings: Settings | None = None
    ) -> None:
        super().__init__(settings)
        self.projects = FakeProjectRepository(projects)
        self.strategies = FakeStrategyRepository()
        self.gates = FakeGateRepository()
