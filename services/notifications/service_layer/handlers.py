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
from services.notifications.service_layer.queue import queue_notice
from shared.events import EventData
from shared.events.contracts import (
    AllocationChanged,
    PortfolioReprioritized,
    ProjectAtRisk,
    ProjectLifecycleChanged,
    ProjectRecovered,
    ProjectRegistered,
    ResourceAllocated,
    ResourceConflictResolved,
)
from shared.messaging.consumer import Deferred, EventMeta
from shared.messaging.unit_of_work import UnitOfWork


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
) -> None:
    context = event_context(event, meta, project=project)
    await queue_notice(
        uow.session,
        Notice(
            meta.type.removeprefix("pmo."),
            severity,
            (project.project_id,),
            (project.business_unit,),
        ),
        event_id=meta.id,
        event_type=meta.type,
        project_id=project.project_id,
        context_for=lambda _: context,
    )


async def on_project_registered(event: ProjectRegistered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Learn the project's name, unit and manager; let events waiting for it through."""
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
        event_id=meta.id,
        event_type=meta.type,
        context_for=lambda _: context,
    )


async def on_project_at_risk(event: ProjectAtRisk, meta: EventMeta, uow: UnitOfWork) -> None:
    """Record the at-risk episode (its start drives escalation) and queue the alert."""
    project = await _known_project(uow, event.project_id, meta)
    if project.at_risk_since is None:
        # A new episode: amber turning red later is the same episode, escalated once.
        project.at_risk_since = meta.time or datetime.now(UTC)
        project.escalated_at = None
    project.health = event.severity
    project.metrics = {**project.metrics, **event.metrics}
    project.reasons = [reason.model_dump(mode="json") for reason in event.reasons]
    project.updated_at = datetime.now(UTC)
    uow.session.add(project)
    await _queue_project_notice(uow, event, meta, project, severity=event.severity)


async def on_project_recovered(event: ProjectRecovered, meta: EventMeta, uow: UnitOfWork) -> None:
    """End the at-risk episode: a later slip is a new episode, escalated anew."""
    project = await _known_project(uow, event.project_id, meta)
    project.health = "green"
    project.at_risk_since = None
    project.escalated_at = None
    project.reasons = []
    project.metrics = {**project.metrics, **event.metrics}
    project.updated_at = datetime.now(UTC)
    uow.session.add(project)
    await _queue_project_notice(uow, event, meta, project)


async def _record_request(
    uow: UnitOfWork,
    *,
    request_id: str,
    project_id: str,
    fte_requested: float,
    fte_granted: float,
    skill: str | None,
) -> None:
    statement = insert(ResourceRequestView).values(
        request_id=request_id,
        project_id=project_id,
        skill=skill,
        fte_requested=fte_requested,
        fte_granted=fte_granted,
    )
    await uow.session.exec(
        statement.on_conflict_do_update(
            index_elements=["request_id"],
            set_={
                "fte_requested": statement.excluded.fte_requested,
                "fte_granted": statement.excluded.fte_granted,
                "skill": statement.excluded.skill,
            },
        )
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
        event_id=meta.id,
        event_type=meta.type,
        context_for=lambda _: context,
    )


async def on_allocation_changed(event: AllocationChanged, meta: EventMeta, uow: UnitOfWork) -> None:
    project = await _known_project(uow, event.project_id, meta)
    request = await uow.session.get(ResourceRequestView, event.request_id)
    if request is not None:
        request.fte_granted = event.after.fte_granted
        uow.session.add(request)
    await _queue_project_notice(uow, event, meta, project)
