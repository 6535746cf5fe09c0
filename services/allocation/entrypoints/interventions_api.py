"""Allocation's HTTP API for the PMO's experts and their interventions.

Who may do what: everyone reads; administrators name the experts' specialties and accept or
decline proposals; a project manager asks for advice on their own projects (an administrator on
any project).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status

from services.allocation.adapters import queries
from services.allocation.adapters.tables import InterventionRow, ProjectStandingRow, ResourceRow
from services.allocation.domain.interventions import specialty_key
from services.allocation.domain.pool import specialties_of
from services.allocation.entrypoints.mapping import expert_out, intervention_out
from services.allocation.entrypoints.resources_api import missing_resource
from services.allocation.entrypoints.schemas import (
    AcceptIn,
    AdviceIn,
    DeclineIn,
    ExpertOut,
    InterventionOut,
    InterventionState,
    SpecialtiesIn,
)
from services.allocation.service_layer.interventions import (
    Ask,
    InterventionRefused,
    UnknownIntervention,
    accept,
    decline,
    hold_interventions_lock,
    propose,
    restaff,
)
from shared.dependencies import (
    Admin,
    LargePageSize,
    ProjectManager,
    Reader,
    SessionDep,
    UnitOfWorkDep,
    require_manager,
    row_or_404,
)
from shared.events.contracts import Id
from shared.messaging.unit_of_work import UnitOfWork

router = APIRouter(tags=["interventions"])

MAX_ADVICE_DAYS = 366
"""The longest advice one request may ask for: a PMO expert is lent, not transferred."""


@router.get("/experts", summary="The PMO's experts and their specialties")
async def list_experts(session: SessionDep, _: Reader) -> list[ExpertOut]:
    return [expert_out(resource) for resource in await queries.experts(session)]


@router.put(
    "/resources/{resource_id}/specialties",
    summary="Make a resource a PMO expert with these specialties, or no longer (administrators)",
)
async def put_specialties(
    uow: UnitOfWorkDep, resource_id: str, body: SpecialtiesIn, _: Admin
) -> ExpertOut:
    await hold_interventions_lock(uow)
    resource = await row_or_404(
        uow.session, ResourceRow, resource_id, missing_resource(resource_id), lock=True
    )
    resource.specialties = specialties_of(body.specialties)
    uow.session.add(resource)
    await uow.session.flush()
    await restaff(uow)  # proposals waiting for such an expert may now have one
    out = expert_out(resource)
    await uow.commit()
    return out


@router.get("/interventions", summary="Interventions, newest first")
async def list_interventions(
    session: SessionDep,
    _: Reader,
    project_id: Annotated[str | None, Query(description="Only this project's")] = None,
    state: Annotated[InterventionState | None, Query(description="Only in this state")] = None,
    limit: LargePageSize = 200,
) -> list[InterventionOut]:
    rows = await queries.interventions_page(
        session, project_id=project_id, state=state, limit=limit
    )
    return [intervention_out(row) for row in rows]


@router.get("/interventions/{intervention_id}", summary="One intervention")
async def get_intervention(session: SessionDep, intervention_id: str, _: Reader) -> InterventionOut:
    row = await row_or_404(
        session, InterventionRow, intervention_id, f"No intervention {intervention_id!r}."
    )
    return intervention_out(row)


@router.post(
    "/projects/{project_id}/advice",
    status_code=status.HTTP_201_CREATED,
    summary="Ask a PMO expert's advice on a project (its manager, or an administrator)",
)
async def ask_advice(
    uow: UnitOfWorkDep, project_id: Id, body: AdviceIn, caller: ProjectManager
) -> InterventionOut:
    today = datetime.now(UTC).date()
    if body.until < today:
        raise HTTPException(422, f"until {body.until} is in the past (today is {today}).")
    if body.until > today + timedelta(days=MAX_ADVICE_DAYS):
        raise HTTPException(
            422, f"until {body.until} is more than {MAX_ADVICE_DAYS} days away; ask again later."
        )
    standing = await uow.session.get(ProjectStandingRow, project_id)
    if standing is None or standing.lifecycle is None:
        raise HTTPException(404, f"No registered project {project_id!r}.")
    require_manager(
        caller,
        standing.manager,
        f"{caller.subject} does not manage {project_id} (its manager is "
        f"{standing.manager or 'not named'}); only its manager or an administrator may "
        "ask advice for it.",
    )
    held = await queries.specialties_held(uow.session)
    topic = specialty_key(body.topic)
    if topic not in held:
        offered = ", ".join(sorted(held)) or "none yet"
        raise HTTPException(
            422, f"No PMO expert has the specialty {topic!r}; the PMO offers: {offered}."
        )
    row = await propose(
        uow,
        Ask(
            project_id=project_id,
            origin="advice",
            specialty=topic,
            fte=body.fte,
            start=today,
            end=body.until,
            reasons=(f"advice asked by {caller.subject}", *([body.note] if body.note else [])),
            requested_by=caller.subject,
        ),
    )
    if row is None:  # only risk interventions are limited to one open per project
        raise HTTPException(409, f"An intervention for {project_id} is already open.")
    out = intervention_out(row)
    await uow.commit()
    return out


async def _decide(
    uow: UnitOfWork, intervention_id: str, decision: str, **kwargs: str
) -> InterventionOut:
    try:
        if decision == "accept":
            row = await accept(uow, intervention_id, **kwargs)
        else:
            row = await decline(uow, intervention_id, **kwargs)
    except UnknownIntervention:
        raise HTTPException(404, f"No intervention {intervention_id!r}.") from None
    except InterventionRefused as refused:
        raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
    out = intervention_out(row)
    await uow.commit()
    return out


@router.post(
    "/interventions/{intervention_id}/accept",
    summary="Accept a proposed intervention: its expert is allocated (administrators)",
)
async def accept_intervention(
    uow: UnitOfWorkDep, intervention_id: str, caller: Admin, body: AcceptIn | None = None
) -> InterventionOut:
    return await _decide(
        uow, intervention_id, "accept", by=caller.subject, note=body.note if body else ""
    )


@router.post(
    "/interventions/{intervention_id}/decline",
    summary="Decline a proposed intervention, saying why (administrators)",
)
async def decline_intervention(
    uow: UnitOfWorkDep, intervention_id: str, body: DeclineIn, caller: Admin
) -> InterventionOut:
    return await _decide(uow, intervention_id, "decline", by=caller.subject, reason=body.reason)
