"""What a project has to pass a stage gate with: deliverables, lessons learned, unused reviews.

Read when a move's gate asks for them (`projects.move`), in the mover's unit of work; a move
that leaves a stage closes the reviews recorded in it (a review is valid while the project
stays where it was reviewed).
"""

from __future__ import annotations

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import Deliverable, GateReview, Lesson
from services.registry.domain.stage_models import GateEvidence
from shared.events.contracts import Stage
from shared.messaging.unit_of_work import UnitOfWork


async def evidence_for(
    session: AsyncSession, project_id: str, from_stage: Stage, to_stage: Stage
) -> GateEvidence:
    """The project's submitted deliverables, its lessons learned (count) and whether a passed
    review of the `from_stage` -> `to_stage` gate is waiting to be used."""
    names = (
        await session.exec(select(Deliverable.name).where(Deliverable.project_id == project_id))
    ).all()
    lessons = (
        await session.exec(
            select(func.count()).select_from(Lesson).where(col(Lesson.project_id) == project_id)
        )
    ).one()
    reviewed = (
        await session.exec(
            select(GateReview.id)
            .where(
                GateReview.project_id == project_id,
                GateReview.from_stage == from_stage,
                GateReview.to_stage == to_stage,
                GateReview.decision == "passed",
                col(GateReview.used_by).is_(None),
            )
            .limit(1)
        )
    ).first()
    return GateEvidence(
        deliverables=frozenset(names), lessons=lessons, reviewed=reviewed is not None
    )


async def close_reviews(uow: UnitOfWork, project_id: str, *, cause: str) -> None:
    """The project left the stage its open reviews were recorded in: mark them used by `cause`
    (the one that passed the gate, and any other gate's review, which lapses)."""
    await uow.session.exec(
        update(GateReview)
        .where(col(GateReview.project_id) == project_id, col(GateReview.used_by).is_(None))
        .values(used_by=cause)
    )
