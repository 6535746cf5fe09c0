"""PMO interventions from proposal to end: proposed on risk or on request, decided, released.

Every change here runs in the caller's unit of work under one advisory lock (so replicas and
API calls never staff the same expert twice at once), writes the intervention row, publishes its
event through the outbox, and re-staffs the proposals still waiting: who is proposed for them is
the solver's answer over the portfolio as it stands (domain/interventions.staff).
An accepted intervention becomes a resource request naming its expert, so the expert is
allocated by the ordinary re-resolution; its end sets that request's FTE to 0 from then on and
has it decided again, which releases the expert (the weeks already worked stay as they were).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from sqlmodel import col, select

from services.allocation.adapters.repository import ACCEPTED, DECLINED, ENDED, OPEN, PROPOSED
from services.allocation.adapters.tables import (
    InterventionRow,
    ProjectHealthRow,
    ResourceRequestRow,
)
from services.allocation.domain.interventions import (
    Proposal,
    needs_intervention,
    specialty_key,
    staff,
    wanted_specialty,
)
from services.allocation.domain.priority import HOLDS_NOTHING
from services.allocation.domain.requests import working_weeks
from services.allocation.service_layer.resolution import request_resolution
from services.allocation.service_layer.unit_of_work import AllocationUnitOfWork, allocation_work
from shared.clock import run_every
from shared.events.contracts import (
    InterventionAccepted,
    InterventionDeclined,
    InterventionEnded,
    InterventionProposed,
    ProjectHealthAssessed,
)
from shared.messaging.consumer import EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.projections import supersedes

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

RECOVERED = "project recovered (health back to green)"


class InterventionRefused(Exception):
    """A decision that cannot be taken as asked; the message says why in one sentence."""


class UnknownIntervention(LookupError):
    """No intervention has this id."""


async def hold_interventions_lock(uow: UnitOfWork | AllocationUnitOfWork) -> None:
    """Serialise every intervention change until the transaction ends (all replicas)."""
    await allocation_work(uow).interventions.lock()


def _event_fields(row: InterventionRow) -> dict[str, Any]:
    return {
        "project_id": row.project_id,
        "intervention_id": row.intervention_id,
        "origin": row.origin,
        "specialty": row.specialty,
        "expert_id": row.expert_id,
        "fte": row.fte,
        "start": row.starts,
        "end": row.ends,
    }


def proposed_event(row: InterventionRow) -> InterventionProposed:
    return InterventionProposed(
        **_event_fields(row),
        reasons=list(row.reasons),
        staffing=row.staffing,
        requested_by=row.requested_by,
        proposed_at=row.proposed_at or datetime.now(UTC),
    )


async def restaff(
    uow: UnitOfWork | AllocationUnitOfWork, *, announce: frozenset[str] = frozenset()
) -> None:
    """Decide who is proposed for every open proposal, all at once; publish what changed.

    A proposal in `announce` (just made) is published whatever its staffing; another is
    published again only when its expert changed (a more important project took them, or one
    became free).
    """
    work = allocation_work(uow)
    waiting = await work.interventions.proposed()
    if not waiting:
        return
    settings = work.settings
    state = await work.portfolio.state(
        today=datetime.now(UTC).date(),
        hours_per_fte_week=settings.allocation_hours_per_fte_week,
    )
    experts = await work.portfolio.experts()
    proposals = [
        Proposal(row.intervention_id, row.project_id, row.specialty, row.fte, row.starts, row.ends)
        for row in waiting
    ]
    staffed = await asyncio.to_thread(
        staff,
        state,
        proposals,
        experts,
        hours_per_fte_week=settings.allocation_hours_per_fte_week,
        move_penalty=settings.allocation_move_penalty,
        time_limit=settings.allocation_solver_time_limit_s,
    )
    for row in waiting:
        staffing = staffed[row.intervention_id]
        why = staffing.why
        if not any(specialty_key(row.specialty) in held for held in experts.values()):
            why = f"No PMO expert has the specialty {row.specialty!r}; add one to the pool."
        changed = staffing.expert_id != row.expert_id
        row.expert_id, row.staffing = staffing.expert_id, why
        if changed or row.intervention_id in announce:
            await work.interventions.save(row)
            await work.publish(proposed_event(row))


@dataclass(frozen=True)
class Ask:
    """What an intervention asks for: a specialty, FTE per week, over a period."""

    project_id: str
    origin: str
    specialty: str
    fte: float
    start: date
    end: date
    reasons: tuple[str, ...] = ()
    episode: datetime | None = None
    requested_by: str | None = None


async def propose(uow: UnitOfWork | AllocationUnitOfWork, ask: Ask) -> InterventionRow | None:
    """Record a proposal and staff it (with the others waiting); None if one is already open.

    A project has at most one open risk intervention (a unique index, so replicas proposing at
    once record one); advice may be asked for as often as the manager needs.
    """
    work = allocation_work(uow)
    await work.interventions.lock()
    intervention_id = f"INT-{uuid.uuid4().hex[:12]}"
    proposal = InterventionRow(
        intervention_id=intervention_id,
        project_id=ask.project_id,
        origin=ask.origin,
        specialty=ask.specialty,
        reasons=list(ask.reasons),
        episode=ask.episode,
        fte=ask.fte,
        starts=ask.start,
        ends=ask.end,
        state=PROPOSED,
        requested_by=ask.requested_by,
    )
    if not await work.interventions.add_proposal(proposal):
        return None
    await restaff(work, announce=frozenset({intervention_id}))
    row = await work.interventions.get(intervention_id)
    log.info(
        "intervention %s proposed for %s (%s, %s): %s",
        intervention_id,
        ask.project_id,
        ask.origin,
        ask.specialty,
        row.expert_id if row else None,
        extra={"service": "allocation"},
    )
    return row


async def propose_if_needed(
    uow: UnitOfWork | AllocationUnitOfWork, health: ProjectHealthRow, now: datetime
) -> bool:
    """Propose an expert for a key project whose health calls for one (see needs_intervention),
    once per at-risk episode. Returns whether a proposal was made."""
    work = allocation_work(uow)
    settings = work.settings
    await work.interventions.lock()
    standing = await work.portfolio.standing(health.project_id)
    if standing is None or not needs_intervention(
        health=health.health,
        key_project=standing.key_project,
        holds_people=standing.lifecycle not in HOLDS_NOTHING,
        at_risk_since=health.at_risk_since,
        now=now,
        amber_after=settings.allocation_intervention_amber_after,
    ):
        return False
    if await work.interventions.risk_answered(health.project_id, health.at_risk_since):
        return False
    experts = await work.portfolio.experts()
    specialty = wanted_specialty(
        health.reason_codes, [s for held in experts.values() for s in held]
    )
    today = now.date()
    lasted = "" if health.health == "red" else " for longer than the PMO tolerates"
    proposal = await propose(
        work,
        Ask(
            project_id=health.project_id,
            origin="risk",
            specialty=specialty,
            fte=settings.allocation_intervention_fte,
            start=today,
            end=today + timedelta(weeks=settings.allocation_intervention_weeks, days=-1),
            reasons=(f"key project {health.health}{lasted}", *health.reasons),
            episode=health.at_risk_since,
        ),
    )
    return proposal is not None


async def on_project_health_assessed(
    event: ProjectHealthAssessed, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Keep the project's newest health; a red key project gets an expert proposed, a project
    back to green ends its risk interventions (releasing their experts).

    Amber is only recorded here: the intervention clock proposes once it has lasted too long.
    """
    row = await uow.session.get(ProjectHealthRow, event.project_id, with_for_update=True)
    if row is not None and not supersedes(event.assessed_at, row.assessed_at):
        return
    if row is None:
        row = ProjectHealthRow(
            project_id=event.project_id, health=event.health, assessed_at=event.assessed_at
        )
    row.health, row.assessed_at = event.health, event.assessed_at
    row.reason_codes = [reason.code for reason in event.reasons]
    row.reasons = [reason.message for reason in event.reasons]
    row.at_risk_since = event.at_risk_since
    uow.session.add(row)
    await uow.session.flush()
    if event.health == "red":
        await propose_if_needed(uow, row, datetime.now(UTC))
    elif event.health == "green":
        await end_risk_interventions(uow, event.project_id, RECOVERED)


async def _release(uow: UnitOfWork, row: InterventionRow, reason: str) -> None:
    """Set the expert's request to 0 FTE from now on; the re-resolution frees the expert."""
    if row.request_id is None:
        return
    request = await uow.session.get(ResourceRequestRow, row.request_id, with_for_update=True)
    if request is None:
        return
    # Asking 0 FTE from now on frees the expert in every week still to plan; made undecided
    # again, the request gets a fresh resource-allocated (0 of 0 FTE) rather than an
    # allocation-changed to 0, so monitoring sees no shortfall where the PMO ended the work.
    request.fte, request.hours, request.decided_at = 0.0, None, None
    uow.session.add(request)
    await request_resolution(
        uow.session,
        f"intervention {row.intervention_id} of {row.project_id} ended: {reason}",
        request.weeks,
    )


async def end(uow: UnitOfWork, row: InterventionRow, reason: str, now: datetime) -> None:
    """End an open intervention (releasing its expert if accepted) and publish it."""
    was_accepted = row.state == ACCEPTED
    if was_accepted:
        await _release(uow, row, reason)
    row.state, row.end_reason, row.ended_at = ENDED, reason, now
    uow.session.add(row)
    await uow.publish(
        InterventionEnded(
            **_event_fields(row), reason=reason, was_accepted=was_accepted, ended_at=now
        )
    )


async def end_risk_interventions(uow: UnitOfWork, project_id: str, reason: str) -> int:
    """End a project's open risk interventions (its advice ones run to their end date)."""
    open_ones = select(InterventionRow.intervention_id).where(
        col(InterventionRow.project_id) == project_id,
        col(InterventionRow.origin) == "risk",
        col(InterventionRow.state).in_(OPEN),
    )
    if (await uow.session.exec(open_ones)).first() is None:
        return 0  # most green assessments: no global lock taken for them
    await hold_interventions_lock(uow)
    rows = (
        await uow.session.exec(
            select(InterventionRow)
            .where(
                col(InterventionRow.project_id) == project_id,
                col(InterventionRow.origin) == "risk",
                col(InterventionRow.state).in_(OPEN),
            )
            .with_for_update()
        )
    ).all()
    now = datetime.now(UTC)
    for row in rows:
        await end(uow, row, reason, now)
    if rows:
        await restaff(uow)
    return len(rows)


async def _open_row(uow: UnitOfWork, intervention_id: str) -> InterventionRow:
    row = await uow.session.get(InterventionRow, intervention_id, with_for_update=True)
    if row is None:
        raise UnknownIntervention(intervention_id)
    if row.state != PROPOSED:
        raise InterventionRefused(
            f"Intervention {intervention_id} is {row.state}, not proposed: only a proposal can "
            "be accepted or declined."
        )
    return row


async def accept(
    uow: UnitOfWork, intervention_id: str, *, by: str, note: str = ""
) -> InterventionRow:
    """Accept a proposal: its expert is requested for the project (the request names them), and
    the acceptance is published. Raises UnknownIntervention, or InterventionRefused when it is
    not a proposal or no expert is free for it now."""
    await hold_interventions_lock(uow)
    row = await _open_row(uow, intervention_id)
    await restaff(uow)  # the portfolio may have changed since it was proposed
    await uow.session.refresh(row)
    if row.expert_id is None:
        raise InterventionRefused(
            f"No PMO expert is free for intervention {intervention_id}: {row.staffing}"
        )
    now = datetime.now(UTC)
    start = max(row.starts, now.date())
    if row.ends < start:
        raise InterventionRefused(
            f"Intervention {intervention_id} ended on {row.ends}; it can no longer be accepted."
        )
    request_id = row.intervention_id
    weeks = working_weeks(start, row.ends)
    uow.session.add(
        ResourceRequestRow(
            request_id=request_id,
            project_id=row.project_id,
            skill=row.specialty,
            fte=row.fte,
            start=start,
            end=row.ends,
            weeks=weeks,
            priority="high",
            named_resource=row.expert_id,
            event_id=f"intervention:{row.intervention_id}",
        )
    )
    row.state, row.decided_by, row.decided_at = ACCEPTED, by, now
    row.decision_note, row.request_id, row.starts = note, request_id, start
    uow.session.add(row)
    await request_resolution(
        uow.session, f"intervention {intervention_id} accepted for {row.project_id}", weeks
    )
    await uow.publish(
        InterventionAccepted(
            **_event_fields(row), request_id=request_id, accepted_by=by, note=note, accepted_at=now
        )
    )
    await uow.session.flush()
    await restaff(uow)  # the expert now holds this one: the others may need someone else
    return row


async def decline(
    uow: UnitOfWork, intervention_id: str, *, by: str, reason: str
) -> InterventionRow:
    """Decline a proposal: nobody is allocated; the decline is published with its reason.
    Raises UnknownIntervention, or InterventionRefused when it is not a proposal."""
    await hold_interventions_lock(uow)
    row = await _open_row(uow, intervention_id)
    now = datetime.now(UTC)
    row.state, row.decided_by, row.decided_at, row.decision_note = DECLINED, by, now, reason
    uow.session.add(row)
    await uow.publish(
        InterventionDeclined(**_event_fields(row), declined_by=by, reason=reason, declined_at=now)
    )
    await uow.session.flush()
    await restaff(uow)
    return row


# --- the clock ------------------------------------------------------------------------------


class InterventionClockMetrics:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.rounds = Counter(
            "pmo_allocation_intervention_rounds",
            "Rounds of the intervention clock completed (failed ones included)",
            ["service"],
            registry=runtime.metrics.registry,
        ).labels(runtime.name)


async def intervention_round(runtime: ServiceRuntime, now: datetime) -> None:
    """One transaction: end interventions whose end date passed, propose experts for key
    projects at risk too long (or red without one), re-staff the proposals still waiting."""
    async with runtime.unit_of_work() as uow:
        await hold_interventions_lock(uow)
        session = uow.session
        today = now.date()
        lapsed = (
            await session.exec(
                select(InterventionRow)
                .where(col(InterventionRow.state).in_(OPEN), col(InterventionRow.ends) < today)
                .with_for_update()
            )
        ).all()
        for row in lapsed:
            await end(uow, row, f"end date {row.ends} passed", now)
        at_risk = (
            await session.exec(
                select(ProjectHealthRow).where(col(ProjectHealthRow.health).in_(("amber", "red")))
            )
        ).all()
        proposed = 0
        for health in at_risk:
            proposed += await propose_if_needed(uow, health, now)
        if not proposed:  # experts freed or added since: the proposals waiting may have one now
            await restaff(uow)
        await uow.commit()


async def _run(runtime: ServiceRuntime) -> None:
    metrics = InterventionClockMetrics(runtime)
    await run_every(
        runtime,
        runtime.settings.allocation_intervention_check_interval_s,
        lambda: intervention_round(runtime, datetime.now(UTC)),
        what="intervention clock",
        counted=metrics.rounds.inc,
    )


def intervention_clock(runtime: ServiceRuntime) -> Coroutine[Any, Any, None]:
    """The worker the runtime starts (as monitoring's staleness clock is started)."""
    return _run(runtime)
