"""What notifications does with each event: keep its view of the portfolio, queue the notices.

Each handler runs in the consumer's transaction: the read model and the deliveries are written
with the inbox row, so a redelivered event changes and queues nothing twice. Nothing is sent
here: the delivery worker sends, so a slow receiver never holds the consumer.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from services.notifications.adapters.tables import ProjectView, ResourceRequestView
from services.notifications.domain.subscriptions import Notice
from services.notifications.service_layer.managers import keep_manager_subscription
from services.notifications.service_layer.queue import queue_notice
from shared.events import EventData
from shared.events.contracts import (
    AllocationChanged,
    GateReviewed,
    InterventionEvent,
    LessonsSuggested,
    PortfolioReprioritized,
    ProjectAtRisk,
    ProjectHealthAssessed,
    ProjectLifecycleChanged,
    ProjectRecovered,
    ProjectRegistered,
    ResourceAllocated,
    ResourceConflictResolved,
)
from shared.messaging.consumer import Deferred, EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.projections import keep_newest, supersedes


def project_summary(project: ProjectView) -> dict[str, Any]:
    """What a message may say about a project."""
    return {
        "project_id": project.project_id,
        "name": project.name,
        "business_unit": project.business_unit,
        "manager": project.manager,
        "lifecycle": project.lifecycle,
        "rank": project.rank,
        "health": project.health,
    }


def event_context(
    event: EventData,
    meta: EventMeta,
    *,
    project: ProjectView | None = None,
    projects: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The message context of an event notice: the event as received and what we know of it."""
    return {
        "event": {
            "id": meta.id,
            "type": meta.type,
            "source": meta.source,
            "time": meta.time.isoformat() if meta.time else None,
            "data": event.model_dump(mode="json", by_alias=True),
        },
        "project_id": getattr(event, "project_id", None),
        "project": project_summary(project) if project else None,
        "projects": projects or {},
    }


async def _known_project(uow: UnitOfWork, project_id: str, meta: EventMeta) -> ProjectView:
    """The project, or park the event until the registry's project-registered arrives.

    Events of different topics may overtake each other; without the project notifications can
    neither name it nor tell which business unit's subscribers want it.
    """
    project = await uow.session.get(ProjectView, project_id, with_for_update=True)
    if project is None:
        raise Deferred(
            waits_for=project_id,
            reason=f"{meta.type} for project {project_id!r} before its project-registered",
        )
    return project


async def _names(uow: UnitOfWork, project_ids: set[str]) -> dict[str, ProjectView]:
    if not project_ids:
        return {}
    found = await uow.session.exec(
        select(ProjectView).where(col(ProjectView.project_id).in_(sorted(project_ids)))
    )
    return {project.project_id: project for project in found.all()}


async def _queue_project_notice(
    uow: UnitOfWork,
    event: EventData,
    meta: EventMeta,
    project: ProjectView,
    *,
    severity: str = "info",
    projects: dict[str, str] | None = None,
) -> None:
    context = event_context(event, meta, project=project, projects=projects)
    await queue_notice(
        uow.session,
        Notice(
            meta.type.removeprefix("pmo."),
            severity,
            (project.project_id,),
            (project.business_unit,),
        ),
        settings=uow.settings,
        event_id=meta.id,
        event_type=meta.type,
        project_id=project.project_id,
        context_for=lambda _: context,
    )


async def on_project_registered(event: ProjectRegistered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Learn the project's name, unit and manager; keep the manager's e-mail subscription
    (created, or moved to a new manager); let events waiting for it through."""
    values = {
        "project_id": event.project_id,
        "name": event.name,
        "business_unit": event.business_unit,
        "manager": event.manager,
        "lifecycle": event.lifecycle,
    }
    statement = insert(ProjectView).values(values)
    await uow.session.exec(
        statement.on_conflict_do_update(
            index_elements=["project_id"],
            set_={
                "name": statement.excluded.name,
                "business_unit": statement.excluded.business_unit,
                "manager": statement.excluded.manager,
                "updated_at": datetime.now(UTC),
            },
        )
    )
    await keep_manager_subscription(
        uow.session,
        uow.settings,
        project_id=event.project_id,
        name=event.name,
        manager=str(event.manager),
    )
    uow.release(event.project_id)


async def on_project_lifecycle_changed(
    event: ProjectLifecycleChanged, meta: EventMeta, uow: UnitOfWork
) -> None:
    project = await _known_project(uow, event.project_id, meta)
    project.lifecycle = event.to_stage
    project.updated_at = datetime.now(UTC)
    uow.session.add(project)
    await _queue_project_notice(uow, event, meta, project)


async def on_portfolio_reprioritized(
    event: PortfolioReprioritized, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Take the new ranks; tell the subscribers whose projects are in the ranking."""
    ranked_ids = {ranked.project_id for ranked in event.projects}
    known = await _names(uow, ranked_ids)
    if missing := sorted(ranked_ids - set(known)):
        # The registry ranks only projects it registered: their registrations are on the way.
        raise Deferred(
            waits_for=missing[0],
            reason=f"ranking names project {missing[0]!r} before its project-registered",
        )
    for ranked in event.projects:
        project = known.get(ranked.project_id)
        if project is not None:
            project.rank = ranked.rank
            project.score = ranked.score
            project.updated_at = datetime.now(UTC)
            uow.session.add(project)
    names = {pid: project.name for pid, project in known.items()}
    context = event_context(event, meta, projects=names)
    await queue_notice(
        uow.session,
        Notice(
            "portfolio-reprioritized",
            "info",
            tuple(ranked.project_id for ranked in event.projects),
            tuple(sorted({project.business_unit for project in known.values()})),
        ),
        settings=uow.settings,
        event_id=meta.id,
        event_type=meta.type,
        context_for=lambda _: context,
    )


async def on_project_health_assessed(
    event: ProjectHealthAssessed, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Keep monitoring's newest assessment: what the digest and the escalations say.

    The newest by `assessed_at` stands (an older one arriving late changes nothing). The
    at-risk episode is monitoring's: a new `at_risk_since` is a new episode, escalated anew.
    """
    project = await _known_project(uow, event.project_id, meta)
    if not supersedes(event.assessed_at, project.health_assessed_at):
        return
    if event.at_risk_since != project.at_risk_since:
        project.escalated_at = None
    project.at_risk_since = event.at_risk_since
    project.health = event.health
    project.reasons = [reason.model_dump(mode="json") for reason in event.reasons]
    project.metrics = dict(event.metrics)
    project.health_assessed_at = event.assessed_at
    project.health_as_of = event.as_of
    project.forecast_finish = event.forecast_finish
    project.updated_at = datetime.now(UTC)
    uow.session.add(project)


async def on_project_at_risk(event: ProjectAtRisk, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the alert (the project's health itself comes from project-health-assessed)."""
    project = await _known_project(uow, event.project_id, meta)
    await _queue_project_notice(uow, event, meta, project, severity=event.severity)


async def on_project_recovered(event: ProjectRecovered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the recovery notice (the episode ends with the green project-health-assessed)."""
    project = await _known_project(uow, event.project_id, meta)
    await _queue_project_notice(uow, event, meta, project)


async def on_lessons_suggested(event: LessonsSuggested, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the suggested lessons for the new project's manager: the subscriptions to
    `lessons-suggested` for the project or its business unit.

    The message names each lesson's closed project as notifications knows it (its id when that
    project's registration never reached us: a lesson must not wait for it).
    """
    project = await _known_project(uow, event.project_id, meta)
    sources = await _names(uow, {lesson.project_id for lesson in event.lessons})
    await _queue_project_notice(
        uow, event, meta, project, projects={pid: source.name for pid, source in sources.items()}
    )


async def on_gate_reviewed(event: GateReviewed, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the gate review (passed or failed, reviewer, evidence) for the project manager and
    the PMO: the subscriptions to `gate-reviewed` for the project or its business unit."""
    project = await _known_project(uow, event.project_id, meta)
    await _queue_project_notice(uow, event, meta, project)


async def _record_request(
    uow: UnitOfWork,
    *,
    request_id: str,
    project_id: str,
    fte_requested: float,
    fte_granted: float,
    skill: str | None,
    decided_at: datetime,
) -> None:
    """Keep the newest decision per request, whichever topic brings it first."""
    await keep_newest(
        uow.session,
        ResourceRequestView.__table__,  # type: ignore[attr-defined]
        key={"request_id": request_id},
        values={
            "project_id": project_id,
            "skill": skill,
            "fte_requested": fte_requested,
            "fte_granted": fte_granted,
            "decided_at": decided_at,
        },
        order_column="decided_at",
    )


async def on_resource_allocated(event: ResourceAllocated, meta: EventMeta, uow: UnitOfWork) -> None:
    """Keep what each request got, for the digest's resource shortfall (no notice of its own)."""
    await _record_request(
        uow,
        request_id=event.request_id,
        project_id=event.project_id,
        fte_requested=event.fte_requested,
        fte_granted=event.fte_granted,
        skill=event.skill,
        decided_at=meta.time or datetime.now(UTC),
    )


async def on_resource_conflict_resolved(
    event: ResourceConflictResolved, meta: EventMeta, uow: UnitOfWork
) -> None:
    for decision in [*event.winners, *event.losers]:
        await _record_request(
            uow,
            request_id=decision.request_id,
            project_id=decision.project_id,
            fte_requested=decision.fte_requested,
            fte_granted=decision.fte_granted,
            skill=event.skill,
            decided_at=meta.time or datetime.now(UTC),
        )
    involved = {decision.project_id for decision in [*event.winners, *event.losers]}
    known = await _names(uow, involved)
    context = event_context(
        event, meta, projects={pid: project.name for pid, project in known.items()}
    )
    await queue_notice(
        uow.session,
        Notice(
            "resource-conflict-resolved",
            "info",
            tuple(sorted(involved)),
            tuple(sorted({project.business_unit for project in known.values()})),
        ),
        settings=uow.settings,
        event_id=meta.id,
        event_type=meta.type,
        context_for=lambda _: context,
    )


async def on_allocation_changed(event: AllocationChanged, meta: EventMeta, uow: UnitOfWork) -> None:
    project = await _known_project(uow, event.project_id, meta)
    # Only a request already decided is updated (without what was requested, a grant says
    # nothing about a shortfall), and only by a newer decision.
    await keep_newest(
        uow.session,
        ResourceRequestView.__table__,  # type: ignore[attr-defined]
        key={"request_id": event.request_id},
        values={
            "fte_granted": event.after.fte_granted,
            "decided_at": meta.time or datetime.now(UTC),
        },
        order_column="decided_at",
        insert_missing=False,
    )
    await _queue_project_notice(uow, event, meta, project)


async def on_intervention(event: InterventionEvent, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the notice of a PMO intervention (proposed, accepted, declined, ended) for the PMO
    and the project's manager: the subscriptions to its type for the project or its unit."""
    project = await _known_project(uow, event.project_id, meta)
    await _queue_project_notice(uow, event, meta, project)
