"""The methodology over HTTP: a project's gates, deliverables, gate reviews and lessons learned.

Roles: every role reads. A project manager submits deliverables and records lessons on the
projects they manage; gate reviews are recorded by PMO administrators. Lessons are searched
with PostgreSQL full-text search (`GET /lessons?q=`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import DeliverableRow, GateReviewRow, LessonRow, ProjectRow
from services.registry.domain.stage_models import StageModel, StageModels, UnknownMethodology
from services.registry.entrypoints.dependencies import StageModelsDep
from services.registry.entrypoints.methodology_schemas import (
    DeliverableIn,
    DeliverableOut,
    FoundLessonOut,
    GateOut,
    GateReviewIn,
    GateReviewOut,
    LessonIn,
    LessonOut,
    LessonSuggestionOut,
    ProjectGatesOut,
)
from services.registry.entrypoints.projects_api import missing_project, project_to_change
from services.registry.service_layer import gates
from services.registry.service_layer import projects as changes
from services.registry.service_layer.lessons import (
    add_lesson,
    lessons_of,
    search_lessons,
    similar_lessons,
)
from shared.dependencies import Admin, ProjectManager, Reader, SessionDep, UnitOfWorkDep, row_or_404

router = APIRouter(tags=["methodology"])


def _model_of(models: StageModels, project: ProjectRow) -> StageModel:
    try:
        return models.resolve(project.methodology)
    except UnknownMethodology as unknown:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{project.project_id}: {unknown.reason}"
        ) from unknown


async def _project(session: AsyncSession, project_id: str) -> ProjectRow:
    return await row_or_404(session, ProjectRow, project_id, missing_project(project_id))


def _review_view(review: GateReviewRow) -> GateReviewOut:
    return GateReviewOut.model_validate(review, from_attributes=True)


def _lesson_view(lesson: LessonRow) -> LessonOut:
    return LessonOut.model_validate(lesson, from_attributes=True)


@router.get(
    "/projects/{project_id}/gates",
    summary="The gates out of a project's stage, what each lacks, its deliverables and reviews",
)
async def project_gates(
    models: StageModelsDep, session: SessionDep, project_id: str, _: Reader
) -> ProjectGatesOut:
    project = await _project(session, project_id)
    model = _model_of(models, project)
    ahead = await gates.gates_ahead(session, project, model)
    deliverables = await gates.deliverables_of(session, project_id)
    reviews = await gates.reviews_of(session, project_id)
    return ProjectGatesOut(
        project_id=project_id,
        methodology=model.name,
        stage=project.lifecycle,
        gates=[
            GateOut(
                to=item.to_stage,
                requires=item.gate.model_dump(exclude_defaults=True),
                missing=item.missing,
            )
            for item in ahead
        ],
        deliverables=[
            DeliverableOut.model_validate(row, from_attributes=True) for row in deliverables
        ],
        reviews=[_review_view(row) for row in reviews],
    )


@router.post(
    "/projects/{project_id}/deliverables",
    status_code=status.HTTP_201_CREATED,
    summary="Submit a deliverable a gate requires, with its evidence (resubmitting replaces it)",
)
async def submit_deliverable(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    submission: DeliverableIn,
    principal: ProjectManager,
) -> DeliverableOut:
    project = await project_to_change(uow, project_id, principal)
    model = _model_of(models, project)
    try:
        row: DeliverableRow = await gates.submit_deliverable(
            uow,
            project,
            model,
            submission.name,
            evidence=submission.evidence,
            note=submission.note,
            by=principal.subject,
        )
    except gates.GateRefused as refused:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{project_id}: {refused.reason}"
        ) from refused
    view = DeliverableOut.model_validate(row, from_attributes=True)
    await uow.commit()
    return view


@router.post(
    "/projects/{project_id}/gate-reviews",
    status_code=status.HTTP_201_CREATED,
    summary="Record a gate review (PMO administrators); announced as gate-reviewed",
)
async def review_gate(
    models: StageModelsDep,
    uow: UnitOfWorkDep,
    project_id: str,
    review: GateReviewIn,
    principal: Admin,
) -> GateReviewOut:
    project = await project_to_change(uow, project_id)
    model = _model_of(models, project)
    try:
        row = await gates.review_gate(
            uow,
            project,
            model,
            review.to,
            decision=review.decision,
            evidence=review.evidence,
            reviewer=principal.subject,
        )
    except gates.GateRefused as refused:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"{project_id}: {refused.reason}"
        ) from refused
    view = _review_view(row)
    await uow.commit()
    return view


@router.post(
    "/projects/{project_id}/lessons",
    status_code=status.HTTP_201_CREATED,
    summary="Record a lesson learned on a project (at closure or at any time)",
)
async def record_lesson(
    uow: UnitOfWorkDep, project_id: str, lesson: LessonIn, principal: ProjectManager
) -> LessonOut:
    project = await project_to_change(uow, project_id, principal)
    row = add_lesson(uow.session, project, lesson.model_dump(), by=principal.subject)
    await uow.session.flush()
    changes.record(
        uow,
        project_id,
        "lesson",
        cause=principal.subject,
        after={"lesson_id": row.id, "title": row.title, "tags": row.tags},
    )
    await uow.session.refresh(row)
    view = _lesson_view(row)
    await uow.commit()
    return view


@router.get("/projects/{project_id}/lessons", summary="The lessons learned on a project")
async def project_lessons(session: SessionDep, project_id: str, _: Reader) -> list[LessonOut]:
    await _project(session, project_id)
    rows = await lessons_of(session, project_id)
    return [_lesson_view(row) for row in rows]


@router.get(
    "/projects/{project_id}/lesson-suggestions",
    summary="Lessons of similar closed projects (same business unit, methodology or objectives)",
)
async def lesson_suggestions(
    models: StageModelsDep, session: SessionDep, project_id: str, _: Reader
) -> list[LessonSuggestionOut]:
    closed = models.closed_stages
    project = await _project(session, project_id)
    suggestions = await similar_lessons(session, project, closed)
    return [
        LessonSuggestionOut(
            **_lesson_view(item.lesson).model_dump(), similarity=list(item.similarity)
        )
        for item in suggestions
    ]


@router.get(
    "/lessons",
    summary="Search lessons learned (PostgreSQL full-text search, English stems), best first",
)
async def find_lessons(
    models: StageModelsDep,
    session: SessionDep,
    _: Reader,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=500,
            description='Words, "a phrase", `or`, `-word` (websearch_to_tsquery syntax)',
        ),
    ],
    business_unit: str | None = None,
    methodology: str | None = None,
    tag: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[FoundLessonOut]:
    canonical = None
    if methodology:
        try:
            canonical = models.canonical(methodology)
        except UnknownMethodology as unknown:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, unknown.reason) from unknown
    found = await search_lessons(
        session,
        q,
        business_unit=business_unit.strip() if business_unit else None,
        methodology=canonical,
        tag=tag.strip().lower() if tag else None,
        limit=limit,
    )
    return [
        FoundLessonOut(**_lesson_view(item.lesson).model_dump(), rank=item.rank) for item in found
    ]
