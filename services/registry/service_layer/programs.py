"""Programs in the registry: defining them, placing projects in them, and rolling them up.

The registry owns programs because it owns projects, their charters and the strategy: a
program is a grouping of charters, and strategy directives and reports target it as they target
a business unit. Membership reaches other services as `project-program-changed` (through the
outbox, in the same transaction as the change).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import ProgramRow, ProjectRow
from services.registry.domain.programs import MemberProject, ProgramRollUp, roll_up
from services.registry.domain.stage_models import StageModels, UnknownMethodology
from services.registry.service_layer import projects as changes
from services.registry.service_layer.reports import open_shortfalls
from shared.events.contracts import ProjectProgramChanged
from shared.messaging.unit_of_work import UnitOfWork


async def ensure_program(uow: UnitOfWork, program_id: str, *, cause: str) -> None:
    """Create `program_id`, named by its id, unless it exists (an event named it first).

    One statement (insert or nothing), so two events naming a new program at once both pass.
    """
    await uow.session.exec(
        insert(ProgramRow)
        .values(program_id=program_id, name=program_id, created_by=cause)
        .on_conflict_do_nothing(index_elements=[col(ProgramRow.program_id)])
    )


async def place(
    uow: UnitOfWork, project: ProjectRow, program_id: str | None, *, cause: str
) -> bool:
    """Put `project` in `program_id` (None: in no program); history and announcement if it moved.

    The program must exist (see `ensure_program`). Returns whether the membership changed.
    """
    previous = project.program_id
    if previous == program_id:
        return False
    project.program_id = program_id
    project.updated_at = datetime.now(UTC)
    changes.record(
        uow,
        project.project_id,
        "program",
        cause=cause,
        before={"program_id": previous},
        after={"program_id": program_id},
    )
    await uow.publish(
        ProjectProgramChanged(
            project_id=project.project_id,
            program_id=program_id,
            previous_program_id=previous,
            changed_at=datetime.now(UTC),
            cause=cause,
        )
    )
    return True


async def place_from_charter(
    uow: UnitOfWork, project: ProjectRow, program_id: str | None, *, cause: str
) -> None:
    """A charter's `program_id`: the project joins it (created if new); absent changes nothing."""
    if program_id is None:
        return
    await ensure_program(uow, program_id, cause=cause)
    await place(uow, project, program_id, cause=cause)


async def members_of(session: AsyncSession, program_id: str) -> list[ProjectRow]:
    query = select(ProjectRow).where(ProjectRow.program_id == program_id)
    return list((await session.exec(query.order_by(col(ProjectRow.project_id)))).all())


async def member_ids(session: AsyncSession) -> dict[str, list[str]]:
    """Program id -> its projects' ids (sorted), for every program with projects."""
    rows = (
        await session.exec(
            select(ProjectRow.program_id, ProjectRow.project_id)
            .where(col(ProjectRow.program_id).is_not(None))
            .order_by(col(ProjectRow.project_id))
        )
    ).all()
    members: dict[str, list[str]] = {}
    for program_id, project_id in rows:
        if program_id is not None:
            members.setdefault(program_id, []).append(project_id)
    return members


def _closed(project: ProjectRow, models: StageModels) -> bool:
    try:
        model = models.resolve(project.methodology)
    except UnknownMethodology:
        return True
    stage = changes.stage_of(project)
    return not model.has_stage(stage) or model.is_final(stage)


def member_project(project: ProjectRow, models: StageModels, shortfall: float) -> MemberProject:
    return MemberProject(
        project_id=project.project_id,
        name=project.name,
        lifecycle=project.lifecycle,
        closed=_closed(project, models),
        budget=project.budget,
        currency=project.currency,
        planned_finish_date=project.planned_finish_date,
        health=project.health,
        reasons=project.health_details,
        metrics=project.health_metrics,
        forecast_finish=project.forecast_finish,
        open_shortfall_fte=shortfall,
    )


async def program_roll_up(
    session: AsyncSession, program: ProgramRow, models: StageModels, *, today: date
) -> tuple[Sequence[MemberProject], ProgramRollUp]:
    """The program's projects and their roll-up (see `domain.programs`)."""
    projects = await members_of(session, program.program_id)
    shortfalls = await open_shortfalls(session, [project.project_id for project in projects])
    members = [
        member_project(project, models, shortfalls.get(project.project_id, 0.0))
        for project in projects
    ]
    return members, roll_up(members, ends_on=program.end_date, today=today)
