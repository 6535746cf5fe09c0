"""What a project has to pass a stage gate with: deliverables, lessons learned, unused reviews.

Read when a move's gate asks for them (`projects.move`), in the mover's unit of work; a move
that leaves a stage closes the reviews recorded in it (a review is valid while the project
stays where it was reviewed). The queries are the gate repository's
(`adapters/repository.py`); this is the read for routes, which hold a session.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.repository import SqlGateRepository
from services.registry.domain.stage_models import GateEvidence
from shared.events.contracts import Stage


async def evidence_for(
    session: AsyncSession, project_id: str, from_stage: Stage, to_stage: Stage
) -> GateEvidence:
    """The project's submitted deliverables, its lessons learned (count) and whether a passed
    review of the `from_stage` -> `to_stage` gate is waiting to be used (for reads outside a
    unit of work, e.g. the gates ahead of a project)."""
    return await SqlGateRepository(session).evidence(project_id, from_stage, to_stage)
