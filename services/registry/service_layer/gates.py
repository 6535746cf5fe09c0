"""Stage gates of a project: deliverables submitted, gate reviews recorded, what each gate lacks.

Every submission and review writes the project's history; a review is published as
`gate-reviewed`, all in the caller's unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.repository import SqlGateRepository
from services.registry.adapters.tables import DeliverableRow, GateReviewRow, ProjectRow
from services.registry.domain.stage_models import Gate, GateEvidence, StageModel
from services.registry.service_layer.gate_evidence import evidence_for
from services.registry.service_layer.projects import record, stage_of
from services.registry.service_layer.unit_of_work import RegistryUnitOfWork, registry_work
from shared.events.contracts import GateReviewed, Stage, SubmittedDeliverable
from shared.messaging.unit_of_work import UnitOfWork


class GateRefused(Exception):
    """A deliverable or review the project's stage model does not take now; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class GateStatus:
    """One gate out of the project's current stage: what it requires and what is missing."""

    to_stage: Stage
    gate: Gate
    missing: list[str]


async def submit_deliverable(
    uow: UnitOfWork | RegistryUnitOfWork,
    project: ProjectRow,
    model: StageModel,
    name: str,
    *,
    evidence: str,
    note: str | None,
    by: str,
) -> DeliverableRow:
    """Submit (or resubmit, replacing the evidence) a deliverable one of the model's gates requires.

    Raises GateRefused if no gate of the project's stage model names `name`.
    """
    if name not in model.deliverables:
        known = ", ".join(model.deliverables) or "none"
        raise GateRefused(
            f"no gate of the {model.name} stage model requires a deliverable {name!r} "
            f"(its deliverables: {known})"
        )
    work = registry_work(uow)
    previous = await work.gates.deliverable(project.project_id, name)
    before = {"evidence": previous.evidence} if previous is not None else None
    submitted = await work.gates.submit(
        DeliverableRow(
            project_id=project.project_id,
            name=name,
            evidence=evidence,
            note=note,
            submitted_by=by,
            submitted_at=datetime.now(UTC),
        )
    )
    record(
        work,
        project.project_id,
        "deliverable",
        cause=by,
        before=before,
        after={"deliverable": name, "evidence": evidence},
        note=note,
    )
    return submitted


async def deliverables_of(session: AsyncSession, project_id: str) -> list[DeliverableRow]:
    """The project's submitted deliverables, by name."""
    return await SqlGateRepository(session).deliverables(project_id)


async def reviews_of(session: AsyncSession, project_id: str) -> list[GateReviewRow]:
    """The project's gate reviews, oldest first."""
    query = (
        select(GateReviewRow)
        .where(GateReviewRow.project_id == project_id)
        .order_by(col(GateReviewRow.id))
    )
    return list((await session.exec(query)).all())


async def review_gate(
    uow: UnitOfWork | RegistryUnitOfWork,
    project: ProjectRow,
    model: StageModel,
    to_stage: Stage,
    *,
    decision: Literal["passed", "failed"],
    evidence: str | None,
    reviewer: str,
) -> GateReviewRow:
    """Record a review of the gate from the project's current stage to `to_stage`.

    A passed review needs the gate's deliverables submitted (the reviewer passes a gate on its
    deliverables); it lets the next move through that gate, and lapses if the project leaves
    its stage another way. Raises GateRefused if the model has no such transition from the
    current stage, or a passed review lacks deliverables (the reason names them).
    """
    work = registry_work(uow)
    from_stage = stage_of(project)
    gate = model.gate(from_stage, to_stage)
    if gate is None:
        allowed = ", ".join(model.next_stages(from_stage)) or "nowhere"
        raise GateRefused(
            f"{from_stage} -> {to_stage} is not a transition of the {model.name} stage model "
            f"(from {from_stage} a project may go to: {allowed}): there is no such gate to review"
        )
    submitted = {row.name: row for row in await work.gates.deliverables(project.project_id)}
    missing = [name for name in gate.deliverables if name not in submitted]
    if decision == "passed" and missing:
        raise GateRefused(
            f"the {from_stage} -> {to_stage} gate cannot pass: missing deliverable "
            f"{', '.join(missing)}"
        )
    seen = [
        SubmittedDeliverable(
            name=name,
            evidence=row.evidence,
            submitted_by=row.submitted_by,
            submitted_at=row.submitted_at or datetime.now(UTC),
        )
        for name in gate.deliverables
        if (row := submitted.get(name)) is not None
    ]
    reviewed_at = datetime.now(UTC)
    review = GateReviewRow(
        project_id=project.project_id,
        from_stage=from_stage,
        to_stage=to_stage,
        decision=decision,
        reviewer=reviewer,
        reviewed_at=reviewed_at,
        deliverables=[item.model_dump(mode="json") for item in seen],
        evidence=evidence,
    )
    review = await work.gates.add_review(review)
    assert review.id is not None
    record(
        work,
        project.project_id,
        "gate_review",
        cause=reviewer,
        after={
            "review_id": review.id,
            "from": from_stage,
            "to": to_stage,
            "decision": decision,
            "deliverables": [item.name for item in seen],
        },
        note=evidence,
    )
    await work.publish(
        GateReviewed(
            project_id=project.project_id,
            review_id=review.id,
            from_stage=from_stage,
            to_stage=to_stage,
            decision=decision,
            reviewer=reviewer,
            reviewed_at=reviewed_at,
            deliverables=seen,
            evidence=evidence,
            methodology=model.name,
        )
    )
    return review


async def gates_ahead(
    session: AsyncSession, project: ProjectRow, model: StageModel
) -> list[GateStatus]:
    """The gates out of the project's current stage with what each still lacks.

    Only deliverables, lessons learned and reviews are reported as missing (a reason or a
    progress is given with the move itself).
    """
    from_stage = stage_of(project)
    statuses = []
    for to_stage in model.next_stages(from_stage):
        gate = model.gate(from_stage, to_stage)
        assert gate is not None
        evidence = (
            await evidence_for(session, project.project_id, from_stage, to_stage)
            if gate.needs_evidence
            else GateEvidence()
        )
        statuses.append(GateStatus(to_stage, gate, evidence.missing(gate)))
    return statuses
