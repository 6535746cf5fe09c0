"""What allocation does with each event: record it, then ask for the affected weeks to be re-solved.

The solving itself happens in the re-resolution worker (resolution.py), once per batch of
changes; every handler here only changes state and records the weeks that change affects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from opentelemetry.context import Context
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import col, select

from services.allocation.adapters.repository import REQUEST_FIELDS
from services.allocation.adapters.tables import (
    PortfolioVersionRow,
    ProjectStandingRow,
    ResourceRequestRow,
)
from services.allocation.domain.priority import HOLDS_NOTHING, STAGE_WORDS
from services.allocation.domain.requests import working_weeks
from services.allocation.service_layer.resolution import (
    request_resolution,
    request_resolutions,
    weeks_of_project,
)
from shared.events.contracts import (
    PortfolioReprioritized,
    ProjectLifecycleChanged,
    ProjectRegistered,
    ResourceRequested,
)
from shared.messaging.consumer import Delivery, EventMeta, Rejected
from shared.messaging.unit_of_work import UnitOfWork
from shared.unnest import insert_rows


async def on_resource_requested(
    deliveries: Sequence[Delivery[ResourceRequested]], uow: UnitOfWork
) -> None:
    """Record each request over the ISO weeks it covers; its decision follows by re-resolution.

    Per batch (the busiest topic): the requests already known under the batch's request ids are
    read in one query, the new requests and their pending re-resolutions (one each, under the
    request's own trace) written with one statement each, and the worker woken once. The
    re-resolution solves only the components of the people and weeks the new requests share
    with others, not every request of their weeks. A request
    id seen before (in the database or earlier in the batch) with another event is `Rejected`,
    as a duplicate when the content is the same; its own event again changes nothing.
    """
    table = ResourceRequestRow.__table__  # type: ignore[attr-defined]
    ids = sorted({delivery.event.request_id for delivery in deliveries})
    found = await uow.session.exec(
        select(*(table.c[name] for name in ("request_id", "event_id", *REQUEST_FIELDS))).where(
            table.c.request_id == sa.func.any(sa.bindparam("ids", ids, type_=ARRAY(sa.Text)))
        )
    )
    known: dict[str, dict[str, Any]] = {row.request_id: dict(row._mapping) for row in found}
    rows: list[dict[str, Any]] = []
    changes: list[tuple[str, Iterable[str] | None, Context | None]] = []
    for delivery in deliveries:
        event, meta = delivery.event, delivery.meta
        earlier = known.get(event.request_id)
        if earlier is not None:
            if earlier["event_id"] == meta.id:
                continue
            same = all(earlier[name] == getattr(event, name) for name in REQUEST_FIELDS)
            if same:
                raise Rejected(
                    f"duplicate request {event.request_id!r}: already received in event "
                    f"{earlier['event_id']!r} with the same content; it has one effect"
                )
            raise Rejected(
                f"request id {event.request_id!r} already names another request (from event "
                f"{earlier['event_id']!r}); a changed request needs a new request id"
            )
        # Its weeks are those holding a working day; a weekends-only request has none and is
        # denied with that reason (its decision is still published, like every request's).
        weeks = working_weeks(event.start, event.end)
        row = {name: getattr(event, name) for name in REQUEST_FIELDS}
        row |= {"request_id": event.request_id, "weeks": weeks, "event_id": meta.id}
        known[event.request_id] = row
        rows.append(row)
        # Its decision is its component's re-solve (see request_resolutions): no weeks named.
        changes.append(
            (f"new request {event.request_id} from {event.project_id}", (), delivery.cause)
        )
    await insert_rows(await uow.session.connection(), table, rows)
    await request_resolutions(uow.session, changes, new_requests=True)


async def _standing(uow: UnitOfWork, project_id: str) -> ProjectStandingRow:
    row = await uow.session.get(ProjectStandingRow, project_id)
    if row is None:
        row = ProjectStandingRow(project_id=project_id)
    return row


async def on_project_registered(event: ProjectRegistered, meta: EventMeta, uow: UnitOfWork) -> None:
    """Learn the project's name, manager, key-project flag and first stage.

    The stage is the registration's only while no `project-lifecycle-changed` has set it: the
    two topics may be handled in either order (a directive pausing a project just registered,
    say), and the lifecycle event is the newer word on the stage.
    """
    row = await _standing(uow, event.project_id)
    row.name, row.manager, row.key_project = event.name, event.manager, event.key_project
    if row.lifecycle is None:
        row.lifecycle = event.lifecycle
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
            select(PortfolioVersionRow).order_by(col(PortfolioVersionRow.strategy_version).desc())
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
    version = await session.get(PortfolioVersionRow, event.strategy_version)
    if version is None:
        version = PortfolioVersionRow(
            strategy_version=event.strategy_version, ranked=len(ranked), event_id=meta.id
        )
    else:  # the registry re-ranked under the same strategy (e.g. a project joined)
        version.ranked, version.event_id = len(ranked), meta.id
    session.add(version)
    await request_resolution(
        session, f"portfolio reprioritized under strategy v{event.strategy_version}", None
    )
