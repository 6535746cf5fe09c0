"""Reading the allocation's tables into the domain's picture of the portfolio, and the
repositories through which re-resolution stores its decisions (their contracts, which a fake in
the tests also keeps, and their SQL implementations on a session)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Protocol

from sqlalchemy import Text, bindparam, delete, func, literal_column, text, tuple_
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.allocation.adapters.tables import (
    AssignmentRow,
    CapacityChangeRow,
    ConflictRow,
    InterventionRow,
    PortfolioVersionRow,
    ProjectStandingRow,
    ResourceRequestRow,
    ResourceRow,
)
from services.allocation.domain.decisions import OpenRequest, PoolMember, plan_request
from services.allocation.domain.pool import CapacityChange, ChangeKind
from services.allocation.domain.priority import ProjectStanding
from services.allocation.domain.requests import iso_week
from services.allocation.domain.resolution import AllocationState
from services.allocation.domain.solver import Slot

REQUEST_FIELDS = (
    "project_id",
    "skill",
    "fte",
    "hours",
    "start",
    "end",
    "priority",
    "named_resource",
)
"""A request's content as its event gave it: what tells a resent request from a changed one."""

_PLANNED_COLUMNS = ("request_id", *REQUEST_FIELDS, "decided_at")
"""What planning reads of a stored request (`open_request`)."""


def open_request(
    row: Any, current_week: str, arrival: int, hours_per_fte_week: float
) -> OpenRequest:
    """A stored request (a `ResourceRequestRow`, or a row of its `_PLANNED_COLUMNS`) as planned
    from `current_week` on."""
    # The weeks are derived from the dates again rather than read from `row.weeks`, so rows
    # stored before demand was counted on working days are planned by the same rule.
    return plan_request(
        request_id=row.request_id,
        project_id=row.project_id,
        skill=row.skill,
        fte=row.fte,
        hours=row.hours,
        start=row.start,
        end=row.end,
        current_week=current_week,
        hours_per_fte_week=hours_per_fte_week,
        named_resource=row.named_resource,
        priority=row.priority,
        arrival=arrival,
        decided=row.decided_at is not None,
    )


@lru_cache(maxsize=100_000)
def _planned(
    values: tuple[Any, ...], current_week: str, arrival: int, hours_per_fte_week: float
) -> OpenRequest:
    """`open_request` of a stored request's `_PLANNED_COLUMNS` (`decided_at` as a bool)."""
    row = SimpleNamespace(**dict(zip(_PLANNED_COLUMNS, values, strict=True)))
    row.decided_at = row.decided_at or None
    return open_request(row, current_week, arrival, hours_per_fte_week)


def standing_of(row: ProjectStandingRow, portfolio_size: int | None) -> ProjectStanding:
    return ProjectStanding(
        project_id=row.project_id,
        name=row.name,
        lifecycle=row.lifecycle,
        key_project=row.key_project,
        rank=row.rank,
        score=row.score,
        portfolio_size=portfolio_size,
        strategy_version=row.strategy_version,
    )


async def portfolio_size(session: AsyncSession) -> int | None:
    latest = (
        await session.exec(
            select(PortfolioVersionRow).order_by(col(PortfolioVersionRow.strategy_version).desc())
        )
    ).first()
    return latest.ranked if latest else None


def change_kind(stored: str) -> ChangeKind:
    """A stored kind (the table allows only these two)."""
    return "absence" if stored == "absence" else "contract"


async def pool_members(session: AsyncSession) -> dict[str, PoolMember]:
    """Every resource with its usual capacity and dated capacity changes."""
    changes: dict[str, list[CapacityChange]] = defaultdict(list)
    for change in (await session.exec(select(CapacityChangeRow))).all():
        changes[change.resource_id].append(
            CapacityChange(
                starts=change.starts,
                ends=change.ends,
                capacity_fte=change.capacity_fte,
                reason=change.reason,
                kind=change_kind(change.kind),
            )
        )
    return {
        resource.resource_id: PoolMember(
            resource_id=resource.resource_id,
            name=resource.name,
            skills=tuple(resource.skills),
            capacity_fte=resource.capacity_fte,
            changes=tuple(changes[resource.resource_id]),
        )
        for resource in (await session.exec(select(ResourceRow))).all()
    }


@dataclass
class PlannedBook:
    """The requests one re-resolution worker planned, kept between its runs by their content.

    A run after a backlog reads every request; planning them again (or even reading all their
    columns) each run made each run's cost grow with the book, not with its new requests. Each
    run reads every request's id, content (its `REQUEST_FIELDS` as PostgreSQL's text of them,
    exact) and whether it is decided; a request whose content is the one planned keeps its plan
    (marked decided or not as it now is), any other is read in full and planned. Holds one
    database's requests: one per worker, never shared between databases.
    """

    current_week: str | None = None
    hours_per_fte_week: float | None = None
    rows: dict[str, tuple[str, OpenRequest]] = field(default_factory=dict)
    """Request id -> (the content it was planned from, its plan)."""


_CONTENT = "row({})::text".format(", ".join(f'"{name}"' for name in REQUEST_FIELDS))
"""A stored request's content as one text (`REQUEST_FIELDS` in order; NULL told from empty)."""

_CONTENTS = f"""
SELECT coalesce(array_agg(request_id ORDER BY received_at, request_id), '{{}}'),
       coalesce(array_agg({_CONTENT} ORDER BY received_at, request_id), '{{}}'),
       coalesce(array_agg(decided_at IS NOT NULL ORDER BY received_at, request_id), '{{}}')
FROM allocation.resource_request
"""
"""Every request's id, content and whether it is decided, in arrival order (as `load_state`
numbers arrivals)."""


async def _planned_requests(
    session: AsyncSession, current_week: str, hours_per_fte_week: float, book: PlannedBook | None
) -> list[OpenRequest]:
    """Every stored request as planned from `current_week` on, in arrival order; with a
    `book`, only the requests whose content it has not planned are read in full."""
    table = ResourceRequestRow.__table__  # type: ignore[attr-defined]
    order = (table.c.received_at, table.c.request_id)
    planned_columns: list[Any] = [table.c[name] for name in _PLANNED_COLUMNS]
    if book is None:
        # Plain rows of the columns planning reads, not ORM objects (tens of thousands after
        # a backlog; ORM objects and their weeks arrays were most of the time here).
        rows = (await session.exec(select(*planned_columns).order_by(*order))).all()
        # The same row plans the same way in the same week: planned once per process.
        return [
            _planned((*row[:-1], row[-1] is not None), current_week, arrival, hours_per_fte_week)
            for arrival, row in enumerate(rows)
        ]
    if (book.current_week, book.hours_per_fte_week) != (current_week, hours_per_fte_week):
        book.rows.clear()  # a new week (or rule) plans every request anew
        book.current_week, book.hours_per_fte_week = current_week, hours_per_fte_week
    # Arrays in one row, not a row per request: tens of thousands of result rows cost more to
    # take apart than their values cost to compare.
    ids, contents, decided = (await session.exec(text(_CONTENTS))).one()  # type: ignore[call-overload]
    known = book.rows
    order_of: dict[str, tuple[int, bool]] = {}
    missing: list[str] = []
    for arrival, (request_id, content, is_decided) in enumerate(
        zip(ids, contents, decided, strict=True)
    ):
        order_of[request_id] = (arrival, is_decided)
        cached = known.get(request_id)
        if cached is None or cached[0] != content:
            missing.append(request_id)
    fresh: dict[str, tuple[str, OpenRequest]] = {}
    if missing:
        # Read with its content again: a request written since the first read is planned from
        # what this read saw (and read again by the next run if it differs from that).
        rows = await session.exec(
            select(*planned_columns, literal_column(_CONTENT)).where(  # type: ignore[call-overload]
                table.c.request_id == func.any(bindparam("ids", missing, type_=ARRAY(Text)))
            )
        )
        for *values, decided_at, content in rows.all():
            request_id = values[0]
            request = _planned(
                (*values, decided_at is not None),
                current_week,
                order_of[request_id][0],
                hours_per_fte_week,
            )
            fresh[request_id] = (content, request)
    requests: list[OpenRequest] = []
    kept: dict[str, tuple[str, OpenRequest]] = {}
    for request_id, (arrival, is_decided) in order_of.items():
        entry = fresh.get(request_id) or known.get(request_id)
        if entry is None:
            continue  # gone between the two reads
        content, request = entry
        if request.arrival != arrival or request.decided != is_decided:
            # Decided since (the worker's own runs), or a request received earlier committed
            # later: the same plan otherwise.
            request = replace(request, arrival=arrival, decided=is_decided)
            entry = (content, request)
        kept[request_id] = entry
        requests.append(request)
    book.rows = kept
    return requests


async def load_state(
    session: AsyncSession,
    *,
    today: date,
    hours_per_fte_week: float,
    book: PlannedBook | None = None,
) -> AllocationState:
    """The portfolio from the current ISO week on; finished, decided requests are left out.

    `book`: the re-resolution worker's plans of its last runs (see `PlannedBook`), which this
    read brings up to date; the same state as without it."""
    current_week = iso_week(today)
    requests = {
        request.request_id: request
        for request in await _planned_requests(session, current_week, hours_per_fte_week, book)
        if request.planned or not request.decided
    }
    size = await portfolio_size(session)
    standings = {
        row.project_id: standing_of(row, size)
        for row in (await session.exec(select(ProjectStandingRow))).all()
    }
    allocations: dict[Slot, float] = {
        (row.request_id, row.resource_id, row.week): row.fte
        for row in (
            await session.exec(select(AssignmentRow).where(col(AssignmentRow.week) >= current_week))
        ).all()
    }
    return AllocationState(
        current_week=current_week,
        people=await pool_members(session),
        requests=requests,
        standings=standings,
        allocations=allocations,
    )


PROPOSED, ACCEPTED, DECLINED, ENDED = "proposed", "accepted", "declined", "ended"
"""An intervention's states; the first two are open."""
OPEN = (PROPOSED, ACCEPTED)
# Any fixed number: it names allocation's interventions lock among the advisory locks.
INTERVENTIONS_LOCK = zlib.crc32(b"pmo-allocation-interventions")

RESOLVED, CLOSED = "resolved", "closed"
"""A conflict's states: its published resolution stands, or no longer does."""

Decided = tuple[str | None, float | None, str | None]
"""A request's stored decision: (status, FTE granted, reason); all None while undecided."""


@dataclass(frozen=True)
class Decision:
    """A request's new decision; `decided_at` is set on its first one only."""

    request_id: str
    status: str
    fte_granted: float
    reason: str
    decided_at: datetime | None = None


class RequestRepository(Protocol):
    """The resource requests' decisions."""

    async def decisions(self, request_ids: Collection[str]) -> dict[str, Decided]:
        """The stored decision of each of these requests (those that exist)."""
        ...

    async def decide(self, decisions: Sequence[Decision]) -> None:
        """Store each request's new decision."""
        ...


class AssignmentRepository(Protocol):
    """The allocations in force: FTE of a person for a request in a week (a `Slot`)."""

    async def replace(self, gone: Sequence[Slot], fresh: Mapping[Slot, float]) -> None:
        """Remove the `gone` slots; set (insert or change) the FTE of the `fresh` ones."""
        ...


class ConflictRepository(Protocol):
    """The conflicts resolved and published, standing (`resolved`) or `closed`."""

    async def standing_or(self, conflict_ids: Collection[str]) -> list[ConflictRow]:
        """The standing conflicts, and any (standing or closed) with one of these ids."""
        ...

    def add(self, row: ConflictRow) -> None:
        """Keep a new or changed conflict in this unit of work."""
        ...


# Rows per INSERT: PostgreSQL takes at most 32,767 bound parameters in one statement.
_INSERT_CHUNK = 5000


class SqlRequestRepository:
    """`RequestRepository` in allocation's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def decisions(self, request_ids: Collection[str]) -> dict[str, Decided]:
        # One array parameter, not an IN list of thousands (a backlog's run decides thousands).
        query = select(
            ResourceRequestRow.request_id,
            ResourceRequestRow.status,
            ResourceRequestRow.fte_granted,
            ResourceRequestRow.reason,
        ).where(
            col(ResourceRequestRow.request_id)
            == func.any(bindparam("ids", list(request_ids), type_=ARRAY(Text)))
        )
        return {row[0]: (row[1], row[2], row[3]) for row in (await self.session.exec(query)).all()}

    async def decide(self, decisions: Sequence[Decision]) -> None:
        # One UPDATE ... FROM unnest(arrays) for them all, not one statement per request: the
        # run after a backlog decides thousands (a first decision also sets `decided_at`).
        if not decisions:
            return
        connection = await self.session.connection()
        await connection.execute(
            text(_DECIDE),
            {
                "ids": [d.request_id for d in decisions],
                "statuses": [d.status for d in decisions],
                "granted": [d.fte_granted for d in decisions],
                "reasons": [d.reason for d in decisions],
                "decided": [d.decided_at for d in decisions],
            },
        )


_DECIDE = """
UPDATE allocation.resource_request AS r
SET status = u.status, fte_granted = u.granted, reason = u.reason,
    decided_at = coalesce(u.decided, r.decided_at)
FROM unnest(CAST(:ids AS text[]), CAST(:statuses AS text[]), CAST(:granted AS float8[]),
            CAST(:reasons AS text[]), CAST(:decided AS timestamptz[]))
     AS u(request_id, status, granted, reason, decided)
WHERE r.request_id = u.request_id
"""


class SqlAssignmentRepository:
    """`AssignmentRepository` in allocation's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def replace(self, gone: Sequence[Slot], fresh: Mapping[Slot, float]) -> None:
        if gone:
            await self.session.exec(
                delete(AssignmentRow).where(
                    tuple_(
                        col(AssignmentRow.request_id),
                        col(AssignmentRow.resource_id),
                        col(AssignmentRow.week),
                    ).in_(list(gone))
                )
            )
        rows = [
            {"request_id": r, "resource_id": p, "week": w, "fte": fte}
            for (r, p, w), fte in fresh.items()
        ]
        for start in range(0, len(rows), _INSERT_CHUNK):
            statement = insert(AssignmentRow).values(rows[start : start + _INSERT_CHUNK])
            await self.session.exec(
                statement.on_conflict_do_update(
                    index_elements=["request_id", "resource_id", "week"],
                    set_={"fte": statement.excluded.fte},
                )
            )


class SqlConflictRepository:
    """`ConflictRepository` in allocation's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def standing_or(self, conflict_ids: Collection[str]) -> list[ConflictRow]:
        query = select(ConflictRow).where(
            (col(ConflictRow.state) == RESOLVED)
            | col(ConflictRow.conflict_id).in_(list(conflict_ids))
        )
        return list((await self.session.exec(query)).all())

    def add(self, row: ConflictRow) -> None:
        self.session.add(row)


class PortfolioRepository(Protocol):
    """What allocation knows of the portfolio: its state, projects' standings, PMO experts."""

    async def state(self, *, today: date, hours_per_fte_week: float) -> AllocationState:
        """The portfolio from `today`'s ISO week on (`load_state`)."""
        ...

    async def standing(self, project_id: str) -> ProjectStandingRow | None: ...

    async def experts(self) -> dict[str, list[str]]:
        """The PMO's experts: resource id -> specialties (resources without any are not)."""
        ...


class InterventionRepository(Protocol):
    """PMO interventions, proposed to ended."""

    async def lock(self) -> None:
        """Serialise every intervention change until the unit of work ends (all replicas)."""
        ...

    async def add_proposal(self, row: InterventionRow) -> bool:
        """Keep a new proposal; False (nothing kept) if its project has an open risk
        intervention already (at most one, whichever replica proposes)."""
        ...

    async def get(self, intervention_id: str) -> InterventionRow | None: ...

    async def proposed(self) -> list[InterventionRow]:
        """The proposals waiting for a decision, oldest first."""
        ...

    async def save(self, row: InterventionRow) -> None:
        """Write a changed intervention now (its event follows)."""
        ...

    async def risk_answered(self, project_id: str, episode: datetime | None) -> bool:
        """Whether this at-risk episode already has a risk intervention (open, declined or
        ended)."""
        ...


class SqlPortfolioRepository:
    """`PortfolioRepository` in allocation's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def state(self, *, today: date, hours_per_fte_week: float) -> AllocationState:
        return await load_state(self.session, today=today, hours_per_fte_week=hours_per_fte_week)

    async def standing(self, project_id: str) -> ProjectStandingRow | None:
        return await self.session.get(ProjectStandingRow, project_id)

    async def experts(self) -> dict[str, list[str]]:
        rows = await self.session.exec(
            select(ResourceRow.resource_id, ResourceRow.specialties).where(
                func.cardinality(col(ResourceRow.specialties)) > 0
            )
        )
        return {resource_id: list(specialties) for resource_id, specialties in rows.all()}


class SqlInterventionRepository:
    """`InterventionRepository` in allocation's schema, in the session's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def lock(self) -> None:
        await self.session.exec(select(func.pg_advisory_xact_lock(INTERVENTIONS_LOCK)))

    async def add_proposal(self, row: InterventionRow) -> bool:
        # The unique index on a project's open risk intervention makes a second one a no-op.
        values = row.model_dump(exclude_none=True)
        inserted = (
            await self.session.exec(
                insert(InterventionRow)
                .values(**values)
                .on_conflict_do_nothing()
                .returning(col(InterventionRow.intervention_id))
            )
        ).first()
        return inserted is not None

    async def get(self, intervention_id: str) -> InterventionRow | None:
        return await self.session.get(InterventionRow, intervention_id)

    async def proposed(self) -> list[InterventionRow]:
        query = (
            select(InterventionRow)
            .where(col(InterventionRow.state) == PROPOSED)
            .order_by(col(InterventionRow.proposed_at), col(InterventionRow.intervention_id))
        )
        return list((await self.session.exec(query)).all())

    async def save(self, row: InterventionRow) -> None:
        self.session.add(row)
        await self.session.flush()

    async def risk_answered(self, project_id: str, episode: datetime | None) -> bool:
        found = await self.session.exec(
            select(InterventionRow.intervention_id).where(
                col(InterventionRow.project_id) == project_id,
                col(InterventionRow.origin) == "risk",
                (col(InterventionRow.state).in_(OPEN)) | (col(InterventionRow.episode) == episode),
            )
        )
        return found.first() is not None
