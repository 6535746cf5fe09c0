"""The projects of the portfolio over HTTP: propose, read, list, change, move, and their history.

Roles: every role reads. A project manager proposes projects they manage (the `manager` defaults
to them) and changes or moves only projects whose `manager` is them; the manager and the
key-project flag are changed by PMO administrators only; administrators do everything.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import ProjectHistoryRow, ProjectRow
from services.registry.domain.projects import changed_fields, registration
from services.registry.domain.stage_models import (
    ImpossibleTransition,
    StageModels,
    UnknownMethodology,
)
from services.registry.entrypoints.dependencies import StageModelsDep
from services.registry.entrypoints.schemas import (
    ADMIN_ONLY_CHANGES,
    NULLABLE_CHANGES,
    BaselineIn,
    BaselineOut,
    HistoryEntryOut,
    HistoryPageOut,
    ProjectChangesIn,
    ProjectOut,
    ProjectPageOut,
    ProjectProposalIn,
    TransitionIn,
)
from services.registry.service_layer import projects as changes
from services.registry.service_layer.baselines import (
    BASELINE_FIELDS,
    BaselineTerms,
    baselines_of,
    rebaseline,
    stored_curve,
    terms_in_force,
)
from services.registry.service_layer.reports import open_shortfalls
from shared.dependencies import (
    Admin,
    LargePageSize,
    PageSize,
    Principal,
    ProjectManager,
    Reader,
    SessionDep,
    UnitOfWorkDep,
    require_manager,
    row_or_404,
)
from shared.events.contracts import CLOSED_STAGES, ProjectCharter, Stage
from shared.messaging.unit_of_work import UnitOfWork

router = APIRouter(prefix="/projects", tags=["projects"])


def view(project: ProjectRow, models: StageModels, shortfall: float = 0.0) -> ProjectOut:
    try:
        next_stages: list[str] = list(
            models.resolve(project.methodology).next_stages(changes.stage_of(project))
        )
    except UnknownMethodology:
        next_stages = []
    return ProjectOut(
        **project.model_dump(
            include=set(ProjectOut.model_fields) - {"next_stages", "open_shortfall_fte"}
        ),
        next_stages=next_stages,
        open_shortfall_fte=shortfall,
    )


def missing_project(project_id: str) -> str:
    """The 404's detail for a project id the registry does not have."""
    return f"No project {project_id!r} is registered."


def _not_found(project_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, missing_project(project_id))


def _may_change(principal: Principal, project: ProjectRow) -> None:
    require_manager(
        principal,
        project.manager,
        f"{project.project_id} is managed by {project.manager}: a project manager may "
        "change only the projects they manage.",
    )


async def project_to_change(
    uow: UnitOfWork, project_id: str, principal: Principal | None = None
) -> ProjectRow:
    """The registered project `project_id`, read for a change in `uow`.

    Raises HTTPException 404 when no such project is registered, and 403 when `principal` is
    given and may not change it (see `_may_change`).
    """
    project = await changes.project_for_change(uow, project_id)
    if project is None:
        raise _not_found(project_id)
    if principal is not None:
        _may_change(principal, project)
    return project


def _invalid(
    error: ValidationError, filled_in: dict[str, str] | None = None
) -> RequestValidationError:
    """The same 422 shape FastAPI gives for a malformed body, located in the body.

    `filled_in` names the fields the caller left out and the server filled in (with what to
    send instead): a problem with one of them is about a field missing, never about a value
    the caller did not send.
    """
    filled_in = filled_in or {}
    problems: list[dict[str, Any]] = []
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else ""
        if field in filled_in:
            problem = {
                "type": "missing",
                "loc": (field,),
                "msg": f"Field required: {filled_in[field]}",
                "input": None,
            }
        problems.append({**problem, "loc": ("body", *problem["loc"])})
    return RequestValidationError(problems)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Propose a project: it enters its stage model's initial stage and is announced",
)
async def propose_project(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    proposal: ProjectProposalIn,
    principal: ProjectManager,
) -> ProjectOut:
    manager = proposal.manager or principal.subject
    if principal.role != "pmo_admin":
        require_manager(
            principal,
            manager,
            "A project manager proposes projects they manage: leave `manager` out or give "
            f"your own ({principal.subject}).",
        )
        if proposal.key_project:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, "Only a PMO administrator designates key projects."
            )
    try:
        model = models.resolve(proposal.methodology)
    except UnknownMethodology as unknown:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown.reason) from unknown
    try:
        charter = ProjectCharter.model_validate(
            {**proposal.model_dump(), "manager": manager, "methodology": model.name}
        )
    except ValidationError as error:
        filled_in = (
            {
                "manager": "give the project manager's e-mail address; it defaults to the "
                f"caller's, but this caller ({principal.subject}) has none"
            }
            if proposal.manager is None
            else {}
        )
        raise _invalid(error, filled_in) from error
    existing = await changes.project_for_change(uow, charter.project_id)
    if existing is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{charter.project_id} is already registered ({existing.lifecycle}).",
        )
    project = await changes.register(
        uow, registration(charter, model.initial, model.name), cause=principal.subject
    )
    await uow.commit()
    return view(project, models)


@router.get("", summary="The portfolio's projects, filtered, a page at a time (by project id)")
async def list_projects(
    models: StageModelsDep,
    session: SessionDep,
    _: Reader,
    business_unit: str | None = None,
    lifecycle: Stage | None = None,
    manager: str | None = None,
    methodology: str | None = None,
    program_id: str | None = None,
    limit: PageSize = 100,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page")
    ] = None,
) -> ProjectPageOut:
    filters: list[Any] = []
    if business_unit:
        filters.append(func.lower(ProjectRow.business_unit) == business_unit.strip().lower())
    if lifecycle:
        filters.append(col(ProjectRow.lifecycle) == lifecycle)
    if program_id:
        filters.append(col(ProjectRow.program_id) == program_id)
    if manager:
        filters.append(func.lower(ProjectRow.manager) == manager.strip().lower())
    if methodology:
        try:
            filters.append(col(ProjectRow.methodology) == models.canonical(methodology))
        except UnknownMethodology as unknown:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown.reason) from unknown
    page_query = select(ProjectRow).where(*filters).order_by(col(ProjectRow.project_id))
    if cursor:
        page_query = page_query.where(col(ProjectRow.project_id) > cursor)
    total = (await session.exec(select(func.count()).select_from(ProjectRow).where(*filters))).one()
    rows = list((await session.exec(page_query.limit(limit + 1))).all())
    page = rows[:limit]
    shortfalls = await open_shortfalls(session, [row.project_id for row in page])
    return ProjectPageOut(
        items=[view(row, models, shortfalls.get(row.project_id, 0.0)) for row in page],
        total=total,
        next_cursor=page[-1].project_id if len(rows) > limit else None,
    )


async def _view_of(session: AsyncSession, project_id: str, models: StageModels) -> ProjectOut:
    project = await row_or_404(session, ProjectRow, project_id, missing_project(project_id))
    shortfall = (await open_shortfalls(session, [project_id])).get(project_id, 0.0)
    return view(project, models, shortfall)


@router.get("/{project_id}", summary="One project, with where its stage model lets it go next")
async def get_project(
    models: StageModelsDep, session: SessionDep, project_id: str, _: Reader
) -> ProjectOut:
    return await _view_of(session, project_id, models)


@router.patch(
    "/{project_id}",
    summary="Change a project's charter fields (the lifecycle moves by /transitions)",
)
async def change_project(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    proposed: ProjectChangesIn,
    principal: ProjectManager,
) -> ProjectOut:
    sent = {name: getattr(proposed, name) for name in proposed.model_fields_set}
    required = sorted(
        name for name, value in sent.items() if value is None and name not in NULLABLE_CHANGES
    )
    if required:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"{', '.join(required)} cannot be emptied: leave a field out to keep it.",
        )
    project = await project_to_change(uow, project_id, principal)
    if principal.role != "pmo_admin":
        _, after = changed_fields({name: getattr(project, name) for name in sent}, sent)
        reserved = sorted(set(after) & ADMIN_ONLY_CHANGES)
        if reserved:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"Only a PMO administrator changes {', '.join(reserved)}.",
            )
    if project.baseline_version is not None:
        _, after = changed_fields({name: getattr(project, name) for name in sent}, sent)
        fixed = sorted(set(after) & BASELINE_FIELDS)
        if fixed:
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"{', '.join(fixed)} {'belongs' if len(fixed) == 1 else 'belong'} to the "
                f"approved baseline of {project_id} "
                f"(version {project.baseline_version}): a PMO administrator re-baselines "
                f"with POST /projects/{project_id}/baselines, giving the reason.",
            )
    if "methodology" in sent:
        try:
            model = models.resolve(sent["methodology"])
        except UnknownMethodology as unknown:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown.reason) from unknown
        if not model.has_stage(project.lifecycle):
            raise HTTPException(
                status.HTTP_409_CONFLICT,
                f"{project_id} is {project.lifecycle}, a stage the {model.name} stage model "
                "does not have.",
            )
        sent["methodology"] = model.name
    if "objectives" in sent:
        sent["objectives"] = [item.model_dump(mode="json") for item in sent["objectives"]]
    merged = {**project.model_dump(), **sent}
    try:
        ProjectCharter.model_validate(merged)  # the charter's own rules, e.g. finish >= start
    except ValidationError as error:
        raise _invalid(error) from error
    changes.update(uow, project, sent, cause=principal.subject)
    await uow.commit()
    return await _view_of(uow.session, project_id, models)


@router.post(
    "/{project_id}/transitions",
    summary="Move a project to another stage; 409 with the reason if its stage model forbids it",
)
async def move_project(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    transition: TransitionIn,
    principal: ProjectManager,
) -> ProjectOut:
    project = await project_to_change(uow, project_id, principal)
    try:
        model = models.resolve(project.methodology)
        await changes.move(
            uow,
            project,
            model,
            transition.to,
            cause=principal.subject,
            reason=transition.reason,
        )
    except (ImpossibleTransition, UnknownMethodology) as impossible:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{project_id}: {impossible.reason}"
        ) from impossible
    await uow.commit()
    return await _view_of(uow.session, project_id, models)


@router.post(
    "/{project_id}/baselines",
    status_code=status.HTTP_201_CREATED,
    summary="Re-baseline a started project (PMO administrators): new budget, dates or "
    "planned-value curve, with the reason; announced as project-rebaselined",
)
async def rebaseline_project(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    change: BaselineIn,
    principal: Admin,
) -> BaselineOut:
    project = await project_to_change(uow, project_id)
    if project.baseline_version is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{project_id} has not started: its budget and dates are still a proposal "
            "(change them with PATCH); its project-started sets baseline 1.",
        )
    stage = changes.stage_of(project)
    try:
        closed = models.resolve(project.methodology).phase(stage) == "closed"
    except UnknownMethodology:
        closed = stage in CLOSED_STAGES
    if closed:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"{project_id} is {stage}: a closed project is not re-baselined.",
        )
    current = terms_in_force(project)
    terms = BaselineTerms(
        budget=current.budget if change.budget is None else change.budget,
        start_date=change.start_date or current.start_date,
        planned_finish_date=change.planned_finish_date or current.planned_finish_date,
        planned_value_curve=stored_curve(change.planned_value_curve),
    )
    if terms == current:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            f"The baseline of {project_id} already has these terms: nothing to re-baseline.",
        )
    try:
        await rebaseline(
            uow,
            project,
            terms,
            approved_by=principal.subject,
            reason=change.reason,
            cause=principal.subject,
        )
    except ValidationError as error:
        raise _invalid(error) from error
    await uow.commit()
    latest = (await baselines_of(uow.session, project_id))[-1]
    return BaselineOut.model_validate(latest).model_copy(update={"in_force": True})


@router.get(
    "/{project_id}/baselines",
    summary="Every approved baseline of a project, oldest first, with who approved it and why",
)
async def project_baselines(session: SessionDep, project_id: str, _: Reader) -> list[BaselineOut]:
    project = await row_or_404(session, ProjectRow, project_id, missing_project(project_id))
    rows = await baselines_of(session, project_id)
    return [
        BaselineOut.model_validate(row).model_copy(
            update={"in_force": row.version == project.baseline_version}
        )
        for row in rows
    ]


@router.get("/{project_id}/history", summary="Every change to a project, oldest first")
async def project_history(
    session: SessionDep,
    project_id: str,
    _: Reader,
    limit: LargePageSize = 200,
    cursor: Annotated[
        int | None, Query(description="The `next_cursor` of the previous page")
    ] = None,
) -> HistoryPageOut:
    query = (
        select(ProjectHistoryRow)
        .where(ProjectHistoryRow.project_id == project_id)
        .order_by(col(ProjectHistoryRow.id))
        .limit(limit + 1)
    )
    if cursor is not None:
        query = query.where(col(ProjectHistoryRow.id) > cursor)
    await row_or_404(session, ProjectRow, project_id, missing_project(project_id))
    rows = list((await session.exec(query)).all())
    page = rows[:limit]
    return HistoryPageOut(
        project_id=project_id,
        items=[HistoryEntryOut.model_validate(row, from_attributes=True) for row in page],
        next_cursor=page[-1].id if len(rows) > limit else None,
    )
