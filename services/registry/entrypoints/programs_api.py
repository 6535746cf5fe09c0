"""Programs over HTTP: define and change them, put projects in them, and read their roll-up.

Roles: every role reads; PMO administrators define programs and place projects in them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, status
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import ProgramRow
from services.registry.domain.programs import MemberProject, ProgramRollUp
from services.registry.entrypoints.dependencies import StageModelsDep
from services.registry.entrypoints.projects_api import project_to_change, view
from services.registry.entrypoints.schemas import (
    PeopleAndConflictsOut,
    ProgramChangesIn,
    ProgramDefinitionIn,
    ProgramMembershipIn,
    ProgramOut,
    ProgramProjectFiguresOut,
    ProgramReasonOut,
    ProgramRollUpOut,
    ProjectOut,
)
from services.registry.service_layer.programs import (
    member_ids,
    members_of,
    place,
    program_roll_up,
)
from services.registry.service_layer.reports import open_shortfalls
from shared.dependencies import Admin, Reader, SessionDep, UnitOfWorkDep, row_or_404

router = APIRouter(tags=["programs"])


def _today() -> date:
    return datetime.now(UTC).date()


def _program_view(program: ProgramRow, project_ids: list[str], today: date) -> ProgramOut:
    return ProgramOut(
        program_id=program.program_id,
        name=program.name,
        description=program.description,
        end_date=program.end_date,
        temporary=program.end_date is not None,
        ended=program.end_date is not None and today > program.end_date,
        project_ids=project_ids,
        created_at=program.created_at,
        created_by=program.created_by,
        updated_at=program.updated_at,
    )


async def _program(session: AsyncSession, program_id: str, *, lock: bool = False) -> ProgramRow:
    """The program `program_id` (locked FOR UPDATE with `lock`); 404 when there is none."""
    return await row_or_404(
        session, ProgramRow, program_id, f"No program {program_id!r}.", lock=lock
    )


async def _view_of(session: AsyncSession, program: ProgramRow) -> ProgramOut:
    projects = await members_of(session, program.program_id)
    return _program_view(program, [project.project_id for project in projects], _today())


@router.post(
    "/programs",
    status_code=status.HTTP_201_CREATED,
    summary="Define a program (temporary when it has an end date)",
)
async def define_program(
    uow: UnitOfWorkDep, definition: ProgramDefinitionIn, principal: Admin
) -> ProgramOut:
    # One statement, so that two definitions of one program at once give one 201, one 409.
    created = (
        await uow.session.exec(
            insert(ProgramRow)
            .values(**definition.model_dump(), created_by=principal.subject)
            .on_conflict_do_nothing(index_elements=[col(ProgramRow.program_id)])
            .returning(col(ProgramRow.program_id))
        )
    ).first()
    if created is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"Program {definition.program_id!r} exists: change it with PATCH.",
        )
    program = await _program(uow.session, definition.program_id)
    defined = _program_view(program, [], _today())
    await uow.commit()
    return defined


@router.get("/programs", summary="The programs, by id, with their projects")
async def list_programs(session: SessionDep, _: Reader) -> list[ProgramOut]:
    programs = (await session.exec(select(ProgramRow).order_by(col(ProgramRow.program_id)))).all()
    members = await member_ids(session)
    today = _today()
    return [
        _program_view(program, members.get(program.program_id, []), today) for program in programs
    ]


@router.get("/programs/{program_id}", summary="One program, with its projects")
async def get_program(session: SessionDep, program_id: str, _: Reader) -> ProgramOut:
    return await _view_of(session, await _program(session, program_id))


@router.patch("/programs/{program_id}", summary="Change a program's name, description or end date")
async def change_program(
    uow: UnitOfWorkDep, program_id: str, proposed: ProgramChangesIn, _: Admin
) -> ProgramOut:
    sent = {name: getattr(proposed, name) for name in proposed.model_fields_set}
    if "name" in sent and sent["name"] is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "name cannot be emptied: leave it out to keep it.",
        )
    program = await _program(uow.session, program_id, lock=True)
    for name, value in sent.items():
        setattr(program, name, value)
    program.updated_at = datetime.now(UTC)
    changed = await _view_of(uow.session, program)
    await uow.commit()
    return changed


def _figures(member: MemberProject) -> ProgramProjectFiguresOut:
    metrics = member.metrics

    def figure(name: str) -> float | None:
        value = metrics.get(name)
        return float(value) if isinstance(value, int | float) else None

    return ProgramProjectFiguresOut(
        project_id=member.project_id,
        name=member.name,
        lifecycle=member.lifecycle,
        currency=member.currency,
        health=member.health,
        bac=figure("bac") if figure("bac") is not None else member.budget,
        pv=figure("pv"),
        ev=figure("ev"),
        ac=figure("ac"),
        eac=figure("eac"),
        spi=figure("spi"),
        cpi=figure("cpi"),
        planned_finish_date=member.planned_finish_date,
        forecast_finish=member.forecast_finish,
        open_shortfall_fte=member.open_shortfall_fte,
    )


def _roll_up_view(
    program: ProgramOut, members: list[MemberProject], figures: ProgramRollUp
) -> ProgramRollUpOut:
    return ProgramRollUpOut(
        program=program,
        currency=figures.currency,
        currencies=list(figures.currencies),
        budget_at_completion=figures.budget_at_completion,
        planned_value=figures.planned_value,
        earned_value=figures.earned_value,
        actual_cost=figures.actual_cost,
        spi=figures.spi,
        cpi=figures.cpi,
        estimate_at_completion=figures.estimate_at_completion,
        variance_at_completion=figures.variance_at_completion,
        health=figures.health,
        reasons=[
            ProgramReasonOut(
                project_id=reason.project_id,
                code=reason.code,
                severity=reason.severity,
                message=reason.message,
            )
            for reason in figures.reasons
        ],
        not_assessed=list(figures.not_assessed),
        eac_at_budget=list(figures.eac_at_budget),
        open_shortfall_fte=figures.open_shortfall_fte,
        finishing_after_end=list(figures.finishing_after_end),
        projects=[_figures(member) for member in members],
        people_and_conflicts=PeopleAndConflictsOut(
            people=[
                f"/projects/{quote(member.project_id, safe='')}/allocations" for member in members
            ],
            conflicts=[
                f"/conflicts?project_id={quote(member.project_id, safe='')}" for member in members
            ],
        ),
    )


@router.get(
    "/programs/{program_id}/roll-up",
    summary="A program's budget, AC, EV, PV, SPI, CPI and EAC from its projects' sums, its worst "
    "health and why, and where its people and conflicts are",
)
async def program_roll_up_view(
    models: StageModelsDep, session: SessionDep, program_id: str, _: Reader
) -> ProgramRollUpOut:
    program = await _program(session, program_id)
    members, figures = await program_roll_up(session, program, models, today=_today())
    view_ = _program_view(program, [member.project_id for member in members], _today())
    return _roll_up_view(view_, list(members), figures)


@router.put(
    "/projects/{project_id}/program",
    tags=["projects"],
    summary="Put a project in a program, move it to another, or take it out (program_id null)",
)
async def set_project_program(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    membership: ProgramMembershipIn,
    principal: Admin,
) -> ProjectOut:
    project = await project_to_change(uow, project_id)
    if membership.program_id is not None and membership.program_id != project.program_id:
        program = await uow.session.get(ProgramRow, membership.program_id)
        if program is None:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT,
                f"No program {membership.program_id!r}: define it first (POST /programs).",
            )
        today = _today()
        if program.end_date is not None and today > program.end_date:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"Program {program.program_id!r} ended on {program.end_date.isoformat()}: "
                "no project joins it any more.",
            )
    await place(uow, project, membership.program_id, cause=principal.subject)
    shortfall = (await open_shortfalls(uow.session, [project_id])).get(project_id, 0.0)
    placed = view(project, models, shortfall)
    await uow.commit()
    return placed
