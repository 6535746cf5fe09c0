"""Allocation's repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime

from services.allocation.adapters.repository import (
    OPEN,
    PROPOSED,
    RESOLVED,
    Decided,
    Decision,
    standing_of,
)
from services.allocation.adapters.tables import ConflictRow, InterventionRow, ProjectStandingRow
from services.allocation.domain.decisions import PoolMember
from services.allocation.domain.requests import iso_week
from services.allocation.domain.resolution import AllocationState
from services.allocation.domain.solver import Slot
from shared.settings import Settings
from tests.fakes.unit_of_work import FakeUnitOfWork


class FakeRequestRepository:
    """`RequestRepository` on a dict of decisions (a request never decided reads all None)."""

    def __init__(self) -> None:
        self.stored: dict[str, Decided] = {}
        self.decided_at: dict[str, datetime] = {}

    async def decisions(self, request_ids: Collection[str]) -> dict[str, Decided]:
        return {key: self.stored.get(key, (None, None, None)) for key in request_ids}

    async def decide(self, decisions: Sequence[Decision]) -> None:
        for decision in decisions:
            self.stored[decision.request_id] = (
                decision.status,
                decision.fte_granted,
                decision.reason,
            )
            if decision.decided_at is not None:
                self.decided_at[decision.request_id] = decision.decided_at


class FakeAssignmentRepository:
    """`AssignmentRepository` on a dict of slots."""

    def __init__(self) -> None:
        self.slots: dict[Slot, float] = {}

    async def replace(self, gone: Sequence[Slot], fresh: Mapping[Slot, float]) -> None:
        for slot in gone:
            self.slots.pop(slot, None)
        self.slots.update(fresh)


class FakeConflictRepository:
    """`ConflictRepository` on a dict by conflict id."""

    def __init__(self) -> None:
        self.by_id: dict[str, ConflictRow] = {}

    async def standing_or(self, conflict_ids: Collection[str]) -> list[ConflictRow]:
        return [
            row
            for row in self.by_id.values()
            if row.state == RESOLVED or row.conflict_id in conflict_ids
        ]

    def add(self, row: ConflictRow) -> None:
        self.by_id[row.conflict_id] = row


class FakePortfolioRepository:
    """`PortfolioRepository` on a pool of people (`experts`: who of them are PMO experts, with
    their specialties) and projects' standings; no requests, no allocations in force."""

    def __init__(
        self,
        people: Iterable[PoolMember] = (),
        standings: Iterable[ProjectStandingRow] = (),
        experts: Mapping[str, list[str]] | None = None,
    ) -> None:
        self.people = {person.resource_id: person for person in people}
        self.standings = {row.project_id: row for row in standings}
        self.specialties = dict(experts or {})

    async def state(self, *, today: date, hours_per_fte_week: float) -> AllocationState:
        size = len(self.standings)
        return AllocationState(
            current_week=iso_week(today),
            people=self.people,
            requests={},
            standings={key: standing_of(row, size) for key, row in self.standings.items()},
            allocations={},
        )

    async def standing(self, project_id: str) -> ProjectStandingRow | None:
        return self.standings.get(project_id)

    async def experts(self) -> dict[str, list[str]]:
        return dict(self.specialties)


class FakeInterventionRepository:
    """`InterventionRepository` on a dict by id; at most one open risk intervention a project
    (the table's unique index)."""

    def __init__(self) -> None:
        self.by_id: dict[str, InterventionRow] = {}
        self.locks = 0

    async def lock(self) -> None:
        self.locks += 1

    async def add_proposal(self, row: InterventionRow) -> bool:
        if row.origin == "risk" and any(
            other.project_id == row.project_id and other.origin == "risk" and other.state in OPEN
            for other in self.by_id.values()
        ):
            return False
        row.proposed_at = row.proposed_at or datetime.now(UTC)
        self.by_id[row.intervention_id] = row
        return True

    async def get(self, intervention_id: str) -> InterventionRow | None:
        return self.by_id.get(intervention_id)

    async def proposed(self) -> list[InterventionRow]:
        waiting = [row for row in self.by_id.values() if row.state == PROPOSED]
        return sorted(waiting, key=lambda row: (row.proposed_at, row.intervention_id))

    async def save(self, row: InterventionRow) -> None:
        self.by_id[row.intervention_id] = row

    async def risk_answered(self, project_id: str, episode: datetime | None) -> bool:
        return any(
            row.project_id == project_id
            and row.origin == "risk"
            and (row.state in OPEN or row.episode == episode)
            for row in self.by_id.values()
        )


class FakeAllocationUnitOfWork(FakeUnitOfWork):
    """`AllocationUnitOfWork` in memory: the repositories are the fakes above."""

    def __init__(
        self, settings: Settings | None = None, portfolio: FakePortfolioRepository | None = None
    ) -> None:
        super().__init__(settings)
        self.requests = FakeRequestRepository()
        self.assignments = FakeAssignmentRepository()
        self.conflicts = FakeConflictRepository()
        self.portfolio = portfolio or FakePortfolioRepository()
        self.interventions = FakeInterventionRepository()
