"""What allocation does with each event: record it, then ask for the affected weeks to be re-solved.

The solving itself happens in the re-resolution worker (resolution.py), once per batch of
changes; every handler here only changes state and records the weeks that change affects.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import col, select

from services.allocation.adapters.tables import (
    PortfolioVersion,
    ProjectStandingRow,
    ResourceRequest,
)
from services.allocation.domain.priority import HOLDS_NOTHING, STAGE_WORDS
from services.allocation.domain.requests import weeks_between, working_weeks
from services.allocation.service_layer.resolution import request_resolution, weeks_of_project
from shared.events.contracts import (
    PortfolioReprioritized,
    ProjectLifecycleChanged,
    ProjectRegistered,
    ResourceRequested,
)
from shared.messaging.consumer import EventMeta, Rejected
from shared.messaging.unit_of_work import UnitOfWork

_REQUEST_FIELDS = (
    "project_id",
    "skill",
    "fte",
    "hours",
    "start",
    "end",
    "priority",
    "named_resource",
)


async def on_resource_requested(event: ResourceRequested, meta: EventMeta, uow: UnitOfWork) -> None:
    """Record the request over the ISO weeks it covers; its decision follows by re-resolution."""
    known = await uow.session.get(ResourceRequest, event.request_id)
    if known is not None:
        if known.event_id == meta.id:
            return
        same = all(getattr(known, name) == getattr(event, name) for name in _REQUEST_FIELDS)
        if same:
            raise Rejected(
                f"duplicate request {event.request_id!r}: already received in event "
                f"{known.event_id!r} with the same content; it has one effect"
            )
        raise Rejected(
            f"request id {event.request_id!r} already names another request (from event "
            f"{known.event_id!r}); a changed request needs a new request id"
        )
    # Its weeks are those holding a working day; a weekends-only request has none and is
    # denied with that reason (its decision is still published, like every request's).
    weeks = working_weeks(event.start, event.end)
    uow.session.add(
        ResourceRequest(
            request_id=event.request_id,
            project_id=event.project_id,
            skill=event.skill,
            fte=event.fte,
            hours=event.hours,
            start=event.start,
            end=event.end,
            weeks=weeks,
            priority=event.priority,
            named_resource=event.named_resource,
            event_id=meta.id,
        )
    )
    await request_resolution(
        uow.session,
        f"new request {event.request_id} from {event.project_id}",
        weeks or weeks_between(event.start, event.end),
    )


async def _standing(uow: UnitOfWork, project_id: str) -> ProjectStandingRow:
    row = await uow.session.get(ProjectStandingRow, project_id)
    if row is None:
        row = ProjectStandingRow(project_id=project_id)
    return row


async def on_project_registered(event: ProjectRegistered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Learn the project's name, manager, key-project flag and stage."""
    row = await _standing(uow, event.project_id)
    row.name, row.manager = event.name, event.manager
    row.key_project, row.lifecycle = event.key_project, event.lifecycle
    uow.session.add(row)
    key = ", key project" if event.key_project else ""
    await request_resolution(
        uow.session,
        f"{event.project_id} registered ({STAGE_WORDS[event.lifecycle]}{key})",
        await weeks_of_project(uow.session, event.project_id),
    )


async def on_project_lifecycle_changed(
    event: ProjectLifecycleChanged, meta: EventMeta, uow: UnitOfWork
) -> None:
    """A new stage: on hold, completed or terminated projects release their people at once."""
    row = await _standing(uow, event.project_id)
    row.lifecycle = event.to_stage
    uow.session.add(row)
    moved = (
        f"{event.project_id} moved from {STAGE_WORDS[event.from_stage]} to "
        f"{STAGE_WORDS[event.to_stage]} ({event.cause})"
    )
    if event.to_stage in HOLDS_NOTHING:
        moved += ": its people are released"
    await request_resolution(
        uow.session, moved, await weeks_of_project(uow.session, event.project_id)
    )


async def on_portfolio_reprioritized(
    event: PortfolioReprioritized, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Apply the registry's ranking; it is the whole portfolio under its strategy version."""
    session = uow.session
    latest = (
        await session.exec(
            select(PortfolioVersion).order_by(col(PortfolioVersion.strategy_version).desc())
        )
    ).first()
    if latest is not None and event.strategy_version < latest.strategy_version:
        raise Rejected(
            f"stale ranking: strategy v{event.strategy_version} is older than the applied "
            f"v{latest.strategy_version}"
        )
    ranked = {project.project_id: project for project in event.projects}
    # Projects the new ranking leaves out have no rank under it.
    await session.exec(
        update(ProjectStandingRow)
        .where(col(ProjectStandingRow.project_id).not_in(list(ranked)))
        .values(rank=None, score=None, why=None, strategy_version=None)
    )
    for project in event.projects:
        row = await _standing(uow, project.project_id)
        row.rank, row.score, row.why = project.rank, project.score, project.why
        row.strategy_version = event.strategy_version
        session.add(row)
    version = await session.get(PortfolioVersion, event.strategy_version)
    if version is None:
        version = PortfolioVersion(
            strategy_version=event.strategy_version, ranked=len(ranked), event_id=meta.id
        )
    else:  # the registry re-ranked under the same strategy (e.g. a project joined)
        version.ranked, version.event_id = len(ranked), meta.id
    session.add(version)
    await request_resolution(
        session, f"portfolio reprioritized under strategy v{event.strategy_version}", None
    )
