"""Allocation's HTTP API for the PMO's experts and their interventions (a router of its own).

Who may do what: everyone reads; administrators name the experts' specialties and accept or
decline proposals; a project manager asks for advice on their own projects (an administrator on
any project).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, Field
from sqlmodel import col, func, select

from services.allocation.adapters.tables import InterventionRow, ProjectStandingRow, Resource
from services.allocation.domain.interventions import specialty_key
from services.allocation.domain.pool import specialties_of
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
from shared.events.contracts import Id, InterventionOrigin, IsoDate, Name, Text
from shared.http import runtime_of
from shared.http_input import RequestBody
from shared.security import Admin, ProjectManager, Reader

router = APIRouter()

InterventionState = Literal["proposed", "accepted", "declined", "ended"]
MAX_ADVICE_DAYS = 366
"""The longest advice one request may ask for: a PMO expert is lent, not transferred."""


class ExpertOut(BaseModel):
    """One of the PMO's experts: a resource of the pool with specialties."""

    resource_id: str
    name: str
    specialties: list[str]
    capacity_fte: float
    """Usual FTE per week."""


class SpecialtiesIn(RequestBody):
    """The resource's PMO specialties (replacing the list); empty: no longer a PMO expert."""

    specialties: list[Name] = Field(max_length=50)


class AdviceIn(RequestBody):
    """A project manager asks a PMO expert's advice on their project."""

    topic: Name
    """The specialty wanted, e.g. `schedule-recovery`, `cost-control`, `agile-coaching`."""
    fte: float = Field(gt=0, le=1, allow_inf_nan=False)
    """How much of the expert's time, in FTE per week (0.2 = one day a week)."""
    until: IsoDate
    """The last day of the advice (from today on)."""
    note: Text = ""
    """What the manager would like help with."""


class AcceptIn(RequestBody):
    note: Text = ""


class DeclineIn(RequestBody):
    reason: Annotated[Text, Field(min_length=1)]
    """Why the proposal is declined (told to the project manager)."""


class InterventionOut(BaseModel):
    """An intervention as it stands."""

    intervention_id: str
    project_id: str
    origin: InterventionOrigin
    specialty: str
    reasons: list[str]
    fte: float
    """FTE per week of the expert's time."""
    start: date
    end: date
    expert_id: str | None
    staffing: str
    """Why this expert, or why none is free."""
    state: InterventionState
    requested_by: str | None
    decided_by: str | None
    decision_note: str | None
    request_id: str | None
    """The resource request allocating the expert, once accepted."""
    end_reason: str | None
    proposed_at: datetime | None
    decided_at: datetime | None
    ended_at: datetime | None


def _out(row: InterventionRow) -> InterventionOut:
    return InterventionOut(
        intervention_id=row.intervention_id,
        project_id=row.project_id,
        origin="risk" if row.origin == "risk" else "advice",
        specialty=row.specialty,
        reasons=list(row.reasons),
        fte=row.fte,
        start=row.starts,
        end=row.ends,
        expert_id=row.expert_id,
        staffing=row.staffing,
        state=row.state,
        requested_by=row.requested_by,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
        request_id=row.request_id,
        end_reason=row.end_reason,
        proposed_at=row.proposed_at,
        decided_at=row.decided_at,
        ended_at=row.ended_at,
    )


def _expert(resource: Resource) -> ExpertOut:
    return ExpertOut(
        resource_id=resource.resource_id,
        name=resource.name,
        specialties=list(resource.specialties),
        capacity_fte=resource.capacity_fte,
    )


@router.get("/experts", tags=["interventions"], summary="The PMO's experts and their specialties")
async def list_experts(request: Request, _: Reader) -> list[ExpertOut]:
    async with runtime_of(request).sessions() as session:
        rows = await session.exec(
            select(Resource)
            .where(func.cardinality(col(Resource.specialties)) > 0)
            .order_by(col(Resource.resource_id))
        )
        return [_expert(resource) for resource in rows.all()]


@router.put(
    "/resources/{resource_id}/specialties",
    tags=["interventions"],
    summary="Make a resource a PMO expert with these specialties, or no longer (administrators)",
)
async def put_specialties(
    request: Request, resource_id: str, body: SpecialtiesIn, _: Admin
) -> ExpertOut:
    async with runtime_of(request).unit_of_work() as uow:
        await hold_interventions_lock(uow)
        resource = await uow.session.get(Resource, resource_id, with_for_update=True)
        if resource is None:
            raise HTTPException(404, f"No resource {resource_id!r} in the pool.")
        resource.specialties = specialties_of(body.specialties)
        uow.session.add(resource)
        await uow.session.flush()
        await restaff(uow)  # proposals waiting for such an expert may now have one
        out = _expert(resource)
        await uow.commit()
    return out


@router.get("/interventions", tags=["interventions"], summary="Interventions, newest first")
async def list_interventions(
    request: Request,
    _: Reader,
    project_id: Annotated[str | None, Query(description="Only this project's")] = None,
    state: Annotated[InterventionState | None, Query(description="Only in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[InterventionOut]:
    query = select(InterventionRow).order_by(
        col(InterventionRow.proposed_at).desc(), col(InterventionRow.intervention_id)
    )
    if project_id is not None:
        query = query.where(col(InterventionRow.project_id) == project_id)
    if state is not None:
        query = query.where(col(InterventionRow.state) == state)
    async with runtime_of(request).sessions() as session:
        return [_out(row) for row in (await session.exec(query.limit(limit))).all()]


@router.get("/interventions/{intervention_id}", tags=["interventions"], summary="One intervention")
async def get_intervention(request: Request, intervention_id: str, _: Reader) -> InterventionOut:
    async with runtime_of(request).sessions() as session:
        row = await session.get(InterventionRow, intervention_id)
        if row is None:
            raise HTTPException(404, f"No intervention {intervention_id!r}.")
        return _out(row)


@router.post(
    "/projects/{project_id}/advice",
    status_code=status.HTTP_201_CREATED,
    tags=["interventions"],
    summary="Ask a PMO expert's advice on a project (its manager, or an administrator)",
)
async def ask_advice(
    request: Request, project_id: Id, body: AdviceIn, caller: ProjectManager
) -> InterventionOut:
    today = datetime.now(UTC).date()
    if body.until < today:
        raise HTTPException(422, f"until {body.until} is in the past (today is {today}).")
    if body.until > today + timedelta(days=MAX_ADVICE_DAYS):
        raise HTTPException(
            422, f"until {body.until} is more than {MAX_ADVICE_DAYS} days away; ask again later."
        )
    async with runtime_of(request).unit_of_work() as uow:
        standing = await uow.session.get(ProjectStandingRow, project_id)
        if standing is None or standing.lifecycle is None:
            raise HTTPException(404, f"No registered project {project_id!r}.")
        if not caller.may_manage(standing.manager):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"{caller.subject} does not manage {project_id} (its manager is "
                f"{standing.manager or 'not named'}); only its manager or an administrator may "
                "ask advice for it.",
            )
        held = {
            specialty
            for specialties in (await uow.session.exec(select(Resource.specialties))).all()
            for specialty in specialties
        }
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
        out = _out(row)
        await uow.commit()
    return out


async def _decide(
    request: Request, intervention_id: str, decision: str, **kwargs: str
) -> InterventionOut:
    async with runtime_of(request).unit_of_work() as uow:
        try:
            if decision == "accept":
                row = await accept(uow, intervention_id, **kwargs)
            else:
                row = await decline(uow, intervention_id, **kwargs)
        except UnknownIntervention:
            raise HTTPException(404, f"No intervention {intervention_id!r}.") from None
        except InterventionRefused as refused:
            raise HTTPException(status.HTTP_409_CONFLICT, str(refused)) from None
        out = _out(row)
        await uow.commit()
    return out


@router.post(
    "/interventions/{intervention_id}/accept",
    tags=["interventions"],
    summary="Accept a proposed intervention: its expert is allocated (administrators)",
)
async def accept_intervention(
    request: Request, intervention_id: str, caller: Admin, body: AcceptIn | None = None
) -> InterventionOut:
    return await _decide(
        request, intervention_id, "accept", by=caller.subject, note=body.note if body else ""
    )


@router.post(
    "/interventions/{intervention_id}/decline",
    tags=["interventions"],
    summary="Decline a proposed intervention, saying why (administrators)",
)
async def decline_intervention(
    request: Request, intervention_id: str, body: DeclineIn, caller: Admin
) -> InterventionOut:
    return await _decide(request, intervention_id, "decline", by=caller.subject, reason=body.reason)
