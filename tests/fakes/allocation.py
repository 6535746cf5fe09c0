"""Allocation's repositories and unit of work in memory, for unit tests of its rules."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from services.allocation.adapters.repository import RESOLVED, Decided, Decision
from services.allocation.adapters.tables import ConflictRow
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


class FakeAllocationUnitOfWork(FakeUnitOfWork):
    """`AllocationUnitOfWork` in memory: the repositories are the fakes above."""

    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings)
        self.requests = FakeRequestRepository()
        self.assignments = FakeAssignmentRepository()
        self.conflicts = FakeConflictRepository()
