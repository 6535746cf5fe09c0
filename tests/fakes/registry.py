"""The registry's repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

from collections.abc import Iterable

from services.registry.adapters.repository import strategy_of
from services.registry.adapters.tables import Project, ProjectHistory, StrategyRecord
from services.registry.domain.stage_models import GateEvidence
from shared.events.contracts import Stage, StrategyChanged
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


class FakeProjectRepository:
    """`ProjectRepository` on a dict of projects; history and closed reviews kept in lists."""

    def __init__(self, projects: Iterable[Project] = ()) -> None:
        self.projects = {project.project_id: project for project in projects}
        self.history: list[ProjectHistory] = []
        self.evidence: dict[tuple[str, str, str], GateEvidence] = {}
        """What each (project, from, to) gate has; none submitted unless a test sets it."""
        self.closed_reviews: list[tuple[str, str]] = []

    async def all(self, *, lock: bool = False) -> list[Project]:
        return [self.projects[key] for key in sorted(self.projects)]

    def add_history(self, entry: ProjectHistory) -> None:
        self.history.append(entry)

    async def gate_evidence(
        self, project_id: str, from_stage: Stage, to_stage: Stage
    ) -> GateEvidence:
        return self.evidence.get(
            (project_id, from_stage, to_stage),
            GateEvidence(deliverables=frozenset(), lessons=0, reviewed=False),
        )

    async def close_reviews(self, project_id: str, *, cause: str) -> None:
        self.closed_reviews.append((project_id, cause))

    def history_of(self, project_id: str) -> list[ProjectHistory]:
        return [entry for entry in self.history if entry.project_id == project_id]


class FakeStrategyRepository:
    """`StrategyRepository` on a list of received versions."""

    def __init__(self) -> None:
        self.received: list[StrategyRecord] = []
        self.locks = 0

    async def lock(self) -> None:
        self.locks += 1

    async def current(self) -> StrategyChanged | None:
        applied = [row for row in self.received if row.outcome == "applied"]
        if not applied:
            return None
        return strategy_of(max(applied, key=lambda row: row.strategy_version))

    def add(self, received: StrategyRecord) -> None:
        self.received.append(received)


class FakeRegistryUnitOfWork(FakeUnitOfWork):
    """`RegistryUnitOfWork` in memory: `projects` and `strategies` are the fakes above."""

    def __init__(self, projects: Iterable[Project] = (), settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.projects = FakeProjectRepository(projects)
        self.strategies = FakeStrategyRepository()
