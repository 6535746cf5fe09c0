"""What notifications does with each event: keep its view of the portfolio, queue the notices.

Each handler runs in the consumer's transaction: the read model and the deliveries are written
with the inbox row, so a redelivered event changes and queues nothing twice. Nothing is sent
here: the delivery worker sends, so a slow receiver never holds the consumer.

The alert path's topics (`project-health-assessed`, one per project per batch of status reports, and
`project-at-risk` / `project-recovered`) are handled per batch (`per_batch`): the batch's
projects are read in one query, the newest assessments written in one statement and the notices
queued with one insert, with the same effects as one event at a time in the order they came.
So is `resource-allocated` (one per request allocation decides: a backlog of requests is as big
a backlog of these, in the consumer group and batches that also carry `project-health-assessed`):
the batch's newest decision per request is kept in one statement.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from opentelemetry.context import Context
from pydantic_core import to_json
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select

from services.notifications.adapters.tables import SCHEMA, ProjectRow, ResourceRequestRow
from services.notifications.domain.subscriptions import Notice
from services.notifications.service_layer.delivery import lease_at_once
from services.notifications.service_layer.managers import keep_manager_subscription
from services.notifications.service_layer.queue import (
    Queued,
    queue_deliveries,
    queue_notice,
    queue_notices,
)
from shared.allocation_outcomes import RequestOutcome, request_outcomes
from shared.events import EventData
from shared.events.cloudevents import TYPE_PREFIX
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
from shared.messaging.consumer import Deferred, Delivery, EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.projections import keep_newest, supersedes

E = TypeVar("E", ProjectAtRisk, ProjectRecovered)


def project_summary(project: ProjectRow) -> dict[str, Any]:
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
    project: ProjectRow | None = None,
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


async def _known_project(uow: UnitOfWork, project_id: str, meta: EventMeta) -> ProjectRow:
    """The project, or park the event until the registry's project-registered arrives.

    Events of different topics may overtake each other; without the project notifications can
    neither name it nor tell which business unit's subscribers want it.
    """
    project = await uow.session.get(ProjectRow, project_id, with_for_update=True)
    if project is None:
        raise Deferred(
            waits_for=project_id,
            reason=f"{meta.type} for project {project_id!r} before its project-registered",
        )
    return project


async def _names(uow: UnitOfWork, project_ids: set[str]) -> dict[str, ProjectRow]:
    if not project_ids:
        return {}
    found = await uow.session.exec(
        select(ProjectRow).where(col(ProjectRow.project_id).in_(sorted(project_ids)))
    )
    return {project.project_id: project for project in found.all()}


def _project_notice(
    event: EventData,
    meta: EventMeta,
    project: ProjectRow,
    *,
    severity: str = "info",
    cause: Context | None = None,
    projects: dict[str, str] | None = None,
) -> Queued:
    """The notice of an event about one project, to queue for the subscriptions that want it
    (`projects`: names of other projects the message mentions, by id)."""
    context = event_context(event, meta, project=project, projects=projects)
    return Queued(
        Notice(
            meta.type.removeprefix(TYPE_PREFIX),
            severity,
            (project.project_id,),
            (project.business_unit,),
        ),
        event_id=meta.id,
        event_type=meta.type,
        context_for=lambda _: context,
        project_id=project.project_id,
        cause=cause,
    )


async def _queue_project_notice(
    uow: UnitOfWork,
    event: EventData,
    meta: EventMeta,
    project: ProjectRow,
    *,
    severity: str = "info",
    projects: dict[str, str] | None = None,
) -> None:
    await queue_notices(
        uow.session,
        [_project_notice(event, meta, project, severity=severity, projects=projects)],
        settings=uow.settings,
    )


async def _known_projects(
    uow: UnitOfWork, deliveries: Sequence[Delivery[Any]], *, lock: bool = True
) -> dict[str, ProjectRow]:
    """The batch's projects in one query (locked unless `lock` is off: for handlers that only
    read them), or park: as `_known_project` for each event.

    A project not known yet raises `Deferred` for the first event that names it: the consumer
    then handles the batch one event at a time, parking exactly the events that must wait.
    """
    wanted = sorted({delivery.event.project_id for delivery in deliveries})
    query = (
        select(ProjectRow)
        .where(col(ProjectRow.project_id).in_(wanted))
        .order_by(col(ProjectRow.project_id))
    )
    found = await uow.session.exec(query.with_for_update() if lock else query)
    projects = {project.project_id: project for project in found.all()}
    for delivery in deliveries:
        if delivery.event.project_id not in projects:
            raise Deferred(
                waits_for=delivery.event.project_id,
                reason=(
                    f"{delivery.meta.type} for project {delivery.event.project_id!r} "
                    "before its project-registered"
                ),
            )
    return projects


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
    statement = insert(ProjectRow).values(values)
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


_KEEP_ASSESSMENTS = sa.text(
    f"UPDATE {SCHEMA}.project AS kept SET health = a.health, "
    "reasons = CAST(a.reasons AS jsonb), metrics = CAST(a.metrics AS jsonb), "
    "at_risk_since = a.at_risk_since, escalated_at = a.escalated_at, "
    "health_assessed_at = a.health_assessed_at, health_as_of = a.health_as_of, "
    "forecast_finish = a.forecast_finish, updated_at = now() "
    "FROM unnest(CAST(:project_id AS text[]), CAST(:health AS text[]), "
    "CAST(:reasons AS text[]), CAST(:metrics AS text[]), "
    "CAST(:at_risk_since AS timestamptz[]), CAST(:escalated_at AS timestamptz[]), "
    "CAST(:health_assessed_at AS timestamptz[]), CAST(:health_as_of AS date[]), "
    "CAST(:forecast_finish AS date[])) AS a(project_id, health, reasons, metrics, "
    "at_risk_since, escalated_at, health_assessed_at, health_as_of, forecast_finish) "
    "WHERE kept.project_id = a.project_id "
    "AND (kept.health_assessed_at IS NULL OR kept.health_assessed_at <= a.health_assessed_at)"
)
"""Projects' newest assessments in one statement of arrays (one row per project; the JSON
columns travel as text): its text is the same whatever the number of projects, so it is
compiled and prepared once, where a VALUES list of a batch's 200 projects was compiled anew,
1,800 bound values, for every run of the handler."""


async def on_project_health_assessed(
    deliveries: Sequence[Delivery[ProjectHealthAssessed]], uow: UnitOfWork
) -> None:
    """Keep monitoring's newest assessment per project: what the digest and escalations say.

    The newest by `assessed_at` stands (an older one arriving late changes nothing). The
    at-risk episode is monitoring's: a new `at_risk_since` is a new episode, escalated anew
    (`escalated_at` cleared). The batch's projects are read (and locked) in one query, each
    project's assessments folded in the order they came, as one at a time would, and the
    projects that changed written in one `UPDATE ... FROM unnest(...)`, guarded by the same
    rule in SQL. A project not registered yet parks its event (see `_known_projects`).
    """
    projects = await _known_projects(uow, deliveries)
    newest: dict[str, dict[str, Any]] = {}
    for delivery in deliveries:
        event = delivery.event
        project = projects[event.project_id]
        kept = newest.get(event.project_id) or {
            "project_id": project.project_id,
            "health_assessed_at": project.health_assessed_at,
            "at_risk_since": project.at_risk_since,
            "escalated_at": project.escalated_at,
        }
        if not supersedes(event.assessed_at, kept["health_assessed_at"]):
            continue
        newest[event.project_id] = {
            "project_id": event.project_id,
            "health": event.health,
            "reasons": [reason.model_dump(mode="json") for reason in event.reasons],
            "metrics": dict(event.metrics),
            "at_risk_since": event.at_risk_since,
            "escalated_at": (
                None if event.at_risk_since != kept["at_risk_since"] else kept["escalated_at"]
            ),
            "health_assessed_at": event.assessed_at,
            "health_as_of": event.as_of,
            "forecast_finish": event.forecast_finish,
        }
    if not newest:
        return
    rows = [newest[project_id] for project_id in sorted(newest)]
    connection = await uow.session.connection()
    await connection.execute(
        _KEEP_ASSESSMENTS.bindparams(
            **{
                name: [row[name] for row in rows]
                for name in (
                    "project_id",
                    "health",
                    "at_risk_since",
                    "escalated_at",
                    "health_assessed_at",
                    "health_as_of",
                    "forecast_finish",
                )
            },
            reasons=[to_json(row["reasons"]).decode() for row in rows],
            metrics=[to_json(row["metrics"]).decode() for row in rows],
        )
    )
    # The rows changed behind the session's back: what it holds of them is read again when
    # next queried (every handler queries its project; none reads a held one without).
    for project_id in newest:
        uow.session.expire(projects[project_id])


async def on_project_at_risk(
    deliveries: Sequence[Delivery[ProjectAtRisk]], uow: UnitOfWork
) -> None:
    """Queue the alerts, one per event (the project's health itself comes from
    project-health-assessed): the projects read in one query, the deliveries in one insert."""
    await _queue_project_notices(uow, deliveries, severity=lambda event: event.severity)


async def on_project_recovered(
    deliveries: Sequence[Delivery[ProjectRecovered]], uow: UnitOfWork
) -> None:
    """Queue the recovery notices (the episode ends with the green project-health-assessed)."""
    await _queue_project_notices(uow, deliveries, severity=lambda _: "info")


async def _queue_project_notices(
    uow: UnitOfWork,
    deliveries: Sequence[Delivery[E]],
    *,
    severity: Callable[[E], str],
) -> None:
    """One notice per event about one project, in the order they came, each in its trace;
    the deliveries leased at once to this process's delivery worker (`lease_at_once`), which
    sends them when this transaction commits.

    The projects are only read (what the message says of them), so not locked: a row lock
    would make the alert wait for whatever else holds the row (the clock escalating it, an
    API change), for nothing. "Known, or park" still cannot race the project's registration:
    the consumer holds the batch's project keys (`_lock_keys`) until it commits.
    """
    projects = await _known_projects(uow, deliveries, lock=False)
    queued = await queue_deliveries(
        uow.session,
        [
            _project_notice(
                delivery.event,
                delivery.meta,
                projects[delivery.event.project_id],
                severity=severity(delivery.event),
                cause=delivery.cause,
            )
            for delivery in deliveries
        ],
        settings=uow.settings,
    )
    await lease_at_once(uow, queued)


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


_KEEP_DECISIONS = sa.text(
    f"INSERT INTO {SCHEMA}.resource_request AS kept "
    "(request_id, project_id, skill, fte_requested, fte_granted, decided_at) "
    "SELECT * FROM unnest(CAST(:request_id AS text[]), CAST(:project_id AS text[]), "
    "CAST(:skill AS text[]), CAST(:fte_requested AS float8[]), "
    "CAST(:fte_granted AS float8[]), CAST(:decided_at AS timestamptz[])) "
    "ON CONFLICT (request_id) DO UPDATE SET project_id = excluded.project_id, "
    "skill = excluded.skill, fte_requested = excluded.fte_requested, "
    "fte_granted = excluded.fte_granted, decided_at = excluded.decided_at "
    "WHERE kept.decided_at IS NULL OR kept.decided_at <= excluded.decided_at"
)
"""`keep_newest` of many requests' decisions in one statement of arrays (one row per request)."""


async def _record_requests(
    uow: UnitOfWork,
    decided: Sequence[tuple[ResourceAllocated | ResourceConflictResolved, EventMeta]],
) -> None:
    """Keep the newest decision per request, whichever topic brings it first, for the events in
    the order they came: as `keep_newest` one decision at a time, in one statement.

    Each request's decisions are folded first by the same rule (`supersedes`: the newest by
    decision time, of equal times the last to come), and the one left is written under that
    rule's guard against the row kept: the same row as writing each in turn. By request id, so
    that replicas lock rows in one order.
    """
    newest: dict[str, tuple[RequestOutcome, datetime]] = {}
    for event, meta in decided:
        decided_at = meta.time or datetime.now(UTC)
        for outcome in request_outcomes(event):
            kept = newest.get(outcome.request_id)
            if kept is None or supersedes(decided_at, kept[1]):
                newest[outcome.request_id] = (outcome, decided_at)
    if not newest:
        return
    rows = [newest[request_id] for request_id in sorted(newest)]
    connection = await uow.session.connection()
    await connection.execute(
        _KEEP_DECISIONS.bindparams(
            request_id=[outcome.request_id for outcome, _ in rows],
            project_id=[outcome.project_id for outcome, _ in rows],
            skill=[outcome.skill for outcome, _ in rows],
            fte_requested=[outcome.fte_requested for outcome, _ in rows],
            fte_granted=[outcome.fte_granted for outcome, _ in rows],
            decided_at=[decided_at for _, decided_at in rows],
        )
    )


async def on_resource_allocated(
    deliveries: Sequence[Delivery[ResourceAllocated]], uow: UnitOfWork
) -> None:
    """Keep what each request got, for the digest's resource shortfall (no notice of its own):
    the batch's decisions in one statement (allocation publishes one per request decided, so
    a backlog of requests is as big a backlog of these)."""
    await _record_requests(uow, [(delivery.event, delivery.meta) for delivery in deliveries])


async def on_resource_conflict_resolved(
    event: ResourceConflictResolved, meta: EventMeta, uow: UnitOfWork
) -> None:
    await _record_requests(uow, [(event, meta)])
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
        ResourceRequestRow.__table__,  # type: ignore[attr-defined]
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
