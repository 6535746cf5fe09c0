"""How the registry's service layer reads and changes its rows: the repositories' contracts
(what a fake in the tests also keeps) and their SQL implementations on a session."""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import func, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import (
    DeliverableRow,
    GateReviewRow,
    LessonRow,
    ProjectHistoryRow,
    ProjectRow,
    StrategyRow,
)
from services.registry.domain.stage_models import GateEvidence
from shared.events.contracts import Stage, StrategyChanged

# Any fixed number: it names the registry's strategy lock among the database's advisory locks.
_STRATEGY_LOCK = 0x5245_4749  # "REGI"


class ProjectRepository(Protocol):
    """The portfolio's projects, their history and what they have to pass a stage gate with."""

    async def all(self, *, lock: bool = False) -> list[ProjectRow]:
        """Every project, by id; `lock`: held until the unit of work ends."""
        ...

    def add_history(self, entry: ProjectHistoryRow) -> None:
        """Append one history entry (what changed, when, why) in this unit of work."""
        ...


class GateRepository(Protocol):
    """What projects pass their stage gates with: deliverables, gate reviews, lessons (count)."""

    async def deliverable(self, project_id: str, name: str) -> DeliverableRow | None:
        """The deliverable as last submitted, if it was."""
        ...

    async def deliverables(self, project_id: str) -> list[DeliverableRow]:
        """The project's submitted deliverables, by name."""
        ...

    async def submit(self, deliverable: DeliverableRow) -> DeliverableRow:
        """Keep a submission, replacing an earlier one of the same name; returns it as stored."""
        ...

    async def add_review(self, review: GateReviewRow) -> GateReviewRow:
        """Keep a gate review; returns it with its id."""
        ...

    async def evidence(self, project_id: str, from_stage: Stage, to_stage: Stage) -> GateEvidence:
        """The project's submitted deliverables, its lessons learned (count) and whether a
        passed review of the `from_stage` -> `to_stage` gate is waiting to be used."""
        ...

    async def close_reviews(self, project_id: str, *, cause: str) -> None:
        """Mark the project's unused gate reviews used by `cause` (it left their stage)."""
        ...


class StrategyRepository(Protocol):
    """The strategy versions received, applied or ignored."""

    async def lock(self) -> None:
        """Serialize strategy changes until the unit of work ends (across replicas)."""
        ...

    async def current(self) -> StrategyChanged | None:
        """The applied strategy with the highest version, as its event said it."""
        ...

    def add(self, received: StrategyRow) -> None:
        """Keep a received version (applied or ignored) in the strategy history."""
        ...


def strategy_of(row: StrategyRow) -> StrategyChanged:
    """A stored strategy version as its `strategy-changed` event said it."""
    return StrategyChanged.model_validate(
        {
            "strategy_version": row.strategy_version,
            "effective_date": row.effective_date,
            "objectives": row.objectives,
            "directives": row.directives,
        }
    )


class SqlProjectRepository:
    """`ProjectRepository` in the registry's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def all(self, *, lock: bool = False) -> list[ProjectRow]:
        query = select(ProjectRow).order_by(col(ProjectRow.project_id))
        if lock:
            query = query.with_for_update()
        return list((await self.session.exec(query)).all())

    def add_history(self, entry: ProjectHistoryRow) -> None:
        self.session.add(entry)


class SqlGateRepository:
    """`GateRepository` in the registry's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def deliverable(self, project_id: str, name: str) -> DeliverableRow | None:
        return await self.session.get(DeliverableRow, (project_id, name))

    async def deliverables(self, project_id: str) -> list[DeliverableRow]:
        query = (
            select(DeliverableRow)
            .where(DeliverableRow.project_id == project_id)
            .order_by(col(DeliverableRow.name))
        )
        return list((await self.session.exec(query)).all())

    async def submit(self, deliverable: DeliverableRow) -> DeliverableRow:
        values = {
            "evidence": deliverable.evidence,
            "note": deliverable.note,
            "submitted_by": deliverable.submitted_by,
            "submitted_at": deliverable.submitted_at,
        }
        await self.session.exec(
            insert(DeliverableRow)
            .values(project_id=deliverable.project_id, name=deliverable.name, **values)
            .on_conflict_do_update(index_elements=["project_id", "name"], set_=values)
        )
        stored = await self.session.get(
            DeliverableRow, (deliverable.project_id, deliverable.name), populate_existing=True
        )
        assert stored is not None
        return stored

    async def add_review(self, review: GateReviewRow) -> GateReviewRow:
        self.session.add(review)
        await self.session.flush()
        return review

    async def evidence(self, project_id: str, from_stage: Stage, to_stage: Stage) -> GateEvidence:
        session = self.session
        names = (
            await session.exec(
                select(DeliverableRow.name).where(DeliverableRow.project_id == project_id)
            )
        ).all()
        lessons = (
            await session.exec(
                select(func.count())
                .select_from(LessonRow)
                .where(col(LessonRow.project_id) == project_id)
            )
        ).one()
        reviewed = (
            await session.exec(
                select(GateReviewRow.id)
                .where(
                    GateReviewRow.project_id == project_id,
                    GateReviewRow.from_stage == from_stage,
                    GateReviewRow.to_stage == to_stage,
                    GateReviewRow.decision == "passed",
                    col(GateReviewRow.used_by).is_(None),
                )
                .limit(1)
            )
        ).first()
        return GateEvidence(
            deliverables=frozenset(names), lessons=lessons, reviewed=reviewed is not None
        )

    async def close_reviews(self, project_id: str, *, cause: str) -> None:
        await self.session.exec(
            update(GateReviewRow)
            .where(
                col(GateReviewRow.project_id) == project_id, col(GateReviewRow.used_by).is_(None)
            )
            .values(used_by=cause)
        )


class SqlStrategyRepository:
    """`StrategyRepository` in the registry's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> None:
        # A transaction-scoped advisory lock: released by the commit or rollback.
        connection = await self.session.connection()
        await connection.execute(
            text("SELECT pg_advisory_xact_lock(:key)"), {"key": _STRATEGY_LOCK}
        )

    async def current(self) -> StrategyChanged | None:
        row = (
            await self.session.exec(
                select(StrategyRow)
                .where(StrategyRow.outcome == "applied")
                .order_by(col(StrategyRow.strategy_version).desc())
                .limit(1)
            )
        ).first()
        return strategy_of(row) if row is not None else None

    def add(self, received: StrategyRow) -> None:
        self.session.add(received)
