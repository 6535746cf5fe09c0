"""How monitoring reads, locks and changes its rows: the repositories' contracts (what a fake
in the tests also keeps), their SQL implementations on a session, and the batch statements of
the status-report handler (one statement per batch, on plain rows: kept as functions, see
`on_status_changed`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from pydantic_core import to_json
from sqlalchemy import select as sa_select
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.monitoring.adapters.tables import (
    BaselineRow,
    HealthAssessmentRow,
    MonitoredProjectRow,
    ResourcePositionRow,
    ThresholdOverrideRow,
)
from services.monitoring.domain.health import ResourcePosition
from shared.projections import keep_newest


async def project_for_update(session: AsyncSession, project_id: str) -> MonitoredProjectRow | None:
    """The project, locked until the transaction ends: its assessments happen one at a time,
    whether a report, an allocation or the staleness clock brings them."""
    return await session.get(MonitoredProjectRow, project_id, with_for_update=True)


@dataclass(slots=True)
class ProjectRow:
    """A `monitored_project` row as plain values (the columns of `MonitoredProjectRow` but
    `updated_at`), for the batch path: setting its attributes costs nothing, where each set on
    an ORM row goes through SQLModel's and SQLAlchemy's instrumentation; `write_projects`
    writes the changed ones back in one statement."""

    project_id: str
    name: str
    business_unit: str | None
    manager: str | None
    currency: str | None
    budget_at_completion: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None
    baseline_event_id: str | None
    baseline_version: int
    rebaselined_at: datetime | None
    monitoring_state: str
    lifecycle: str | None
    latest_as_of: date | None
    latest_percent_complete: float | None
    latest_actual_cost: float | None
    reported_health: str | None
    milestones: list[dict[str, Any]] | None
    status_expected_since: date
    stale_since: datetime | None
    health: str
    health_since: datetime | None
    at_risk_since: datetime | None
    reasons: list[dict[str, Any]]
    index_levels: dict[str, str]
    metrics: dict[str, float | None]
    forecast_finish: date | None
    assessed_at: datetime | None
    assessed_as_of: date | None


_IDS = postgresql.ARRAY(sa.Text)
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_PROJECTS = MonitoredProjectRow.__table__  # type: ignore[attr-defined]
_ROW_COLUMNS = [_PROJECTS.c[field.name] for field in fields(ProjectRow)]
ASSESSED_COLUMNS = (
    "latest_as_of",
    "latest_percent_complete",
    "latest_actual_cost",
    "reported_health",
    "milestones",
    "status_expected_since",
    "stale_since",
    "health",
    "health_since",
    "at_risk_since",
    "reasons",
    "index_levels",
    "metrics",
    "forecast_finish",
    "assessed_at",
    "assessed_as_of",
)
"""The columns a status report and its assessment may change: what `write_projects` writes."""


def _recordset(columns: Sequence[Any]) -> str:
    """`jsonb_to_recordset` of a JSON array of objects holding `columns`, by name, with their
    SQL types, numbered in the array's order (`n`): a batch's rows as one parameter."""
    typed = ", ".join(
        f"{column.name} {column.type.compile(dialect=_DIALECT)}" for column in columns
    )
    names = ", ".join(column.name for column in columns)
    return (
        f"ROWS FROM (jsonb_to_recordset(CAST(:rows AS jsonb)) AS ({typed})) "
        f"WITH ORDINALITY AS r({names}, n)"
    )


# One statement whatever the number of projects, its rows as one JSON parameter: encoding them
# is one `to_json` call, where an executemany binds and encodes each row's 17 values apart.
# `updated_at` as the ORM's onupdate sets it. A report without milestones on a project that
# never had any leaves JSON null there, as the ORM's JSONB type writes None (the recordset
# reads JSON null as SQL NULL).
_WRITE_PROJECTS = text(
    "UPDATE monitoring.monitored_project AS p SET "
    + ", ".join(
        f"{name} = COALESCE(r.{name}, 'null'::jsonb)"
        if name == "milestones"
        else f"{name} = r.{name}"
        for name in ASSESSED_COLUMNS
    )
    + ", updated_at = now() FROM "
    + _recordset([_PROJECTS.c.project_id, *(_PROJECTS.c[name] for name in ASSESSED_COLUMNS)])
    + " WHERE p.project_id = r.project_id"
)


async def projects_for_update(
    session: AsyncSession, project_ids: Collection[str]
) -> dict[str, ProjectRow]:
    """The projects among `project_ids` that monitoring holds, by id, as plain rows, locked
    until the transaction ends (one query; locked in id order, as every batch does, so two
    never deadlock). What the session holds unflushed is flushed first, so the rows are current.
    """
    if not project_ids:
        return {}
    await session.flush()
    query = (
        sa_select(*_ROW_COLUMNS)
        # `= ANY(array)`, not `IN (...)`: one statement text whatever the batch's size, so it
        # is prepared once, where each new count of ids cost a round trip to prepare it anew.
        .where(_PROJECTS.c.project_id == sa.any_(sa.literal(sorted(project_ids), _IDS)))
        .order_by(_PROJECTS.c.project_id)
        .with_for_update()
    )
    connection = await session.connection()
    rows = (await connection.execute(query)).mappings().all()
    return {row["project_id"]: ProjectRow(**row) for row in rows}


async def write_projects(session: AsyncSession, projects: Collection[ProjectRow]) -> None:
    """Write the `ASSESSED_COLUMNS` of `projects` (locked by `projects_for_update`) in one
    statement; ORM copies of them the session holds are expired, to be read anew."""
    if not projects:
        return
    connection = await session.connection()
    rows = [
        {
            "project_id": project.project_id,
            **{name: getattr(project, name) for name in ASSESSED_COLUMNS},
        }
        for project in projects
    ]
    await connection.execute(_WRITE_PROJECTS, {"rows": to_json(rows).decode()})
    written = {project.project_id for project in projects}
    for held in list(session.identity_map.values()):
        if isinstance(held, MonitoredProjectRow) and held.project_id in written:
            session.expire(held)


async def claim_stale_projects(
    session: AsyncSession, *, expected_before: date, limit: int
) -> list[MonitoredProjectRow]:
    """Active projects not yet flagged stale whose last report is older than `expected_before`.

    `FOR UPDATE SKIP LOCKED`: rows another replica's clock (or a handler) holds are skipped,
    not waited for, so each stale project is claimed by one transaction; once that commits,
    `stale_since` is set and the condition, re-checked on the new row version, excludes it.
    """
    query = (
        select(MonitoredProjectRow)
        .where(
            MonitoredProjectRow.monitoring_state == "active",
            col(MonitoredProjectRow.stale_since).is_(None),
            MonitoredProjectRow.status_expected_since < expected_before,
        )
        .order_by(col(MonitoredProjectRow.project_id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.exec(query)).all())


async def resource_positions_of(
    session: AsyncSession, project_ids: Collection[str]
) -> dict[str, list[ResourcePosition]]:
    """`resource_positions` of several projects in one query (a project with none is absent)."""
    if not project_ids:
        return {}
    query = (
        select(ResourcePositionRow)
        .where(
            col(ResourcePositionRow.project_id) == sa.any_(sa.literal(sorted(project_ids), _IDS))
        )
        .order_by(col(ResourcePositionRow.request_id))
    )
    positions: dict[str, list[ResourcePosition]] = {}
    for row in (await session.exec(query)).all():
        positions.setdefault(row.project_id, []).append(position_of(row))
    return positions


def position_of(row: ResourcePositionRow) -> ResourcePosition:
    """What the health rules read of a kept allocation decision."""
    return ResourcePosition(
        request_id=row.request_id,
        skill=row.skill,
        fte_requested=row.fte_requested,
        fte_granted=row.fte_granted,
    )


_ASSESSMENTS = HealthAssessmentRow.__table__  # type: ignore[attr-defined]
ASSESSMENT_COLUMNS = (
    "project_id",
    "assessed_at",
    "trigger",
    "event_id",
    "as_of",
    "applied",
    "health",
    "reasons",
    "metrics",
    "forecast_finish",
    "alert",
)
"""A `health_assessment` row's values as the rules give them (`id` is the table's own)."""
_ADD_ASSESSMENTS = text(
    f"INSERT INTO monitoring.health_assessment ({', '.join(ASSESSMENT_COLUMNS)}) "
    f"SELECT {', '.join(f'r.{name}' for name in ASSESSMENT_COLUMNS)} FROM "
    + _recordset([_ASSESSMENTS.c[name] for name in ASSESSMENT_COLUMNS])
    + " ORDER BY r.n"
)


async def add_assessments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append `health_assessment` rows (their `ASSESSMENT_COLUMNS`' values) in one statement
    whose one parameter is the rows as a JSON array: the database runs one statement, not one
    per row, and the ids follow the rows' order."""
    if not rows:
        return
    connection = await session.connection()
    # pydantic_core's encoder, once for the batch: dates and times as ISO 8601, which the
    # recordset reads back as the columns' types; several times faster than json.dumps.
    await connection.execute(_ADD_ASSESSMENTS, {"rows": to_json(rows).decode()})


HISTORY_CHUNK = 100
"""`health_assessment` rows per statement of an `AssessmentWriter` (a batch of 500 reports
sends 5): the history is the batch's largest write, and each chunk's statement runs in
PostgreSQL while the handler assesses the next chunk's reports."""


class AssessmentWriter:
    """Appends `health_assessment` rows (their `ASSESSMENT_COLUMNS`' values) in the order
    given, `chunk` rows per statement, each chunk's statement sent as soon as it is full and
    left running in the database while the caller computes the next rows.

    The connection runs one statement at a time: a chunk is sent only once the one before it
    is done, and `close` (the rest, then wait) must be awaited before anything else uses the
    session; `abandon` waits for the statement in flight when the caller fails, so that the
    transaction can be rolled back. The ids follow the order of `add`.
    """

    def __init__(self, session: AsyncSession, *, chunk: int = HISTORY_CHUNK) -> None:
        self.session = session
        self.chunk = chunk
        self._rows: list[dict[str, Any]] = []
        self._in_flight: asyncio.Task[None] | None = None

    async def add(self, row: dict[str, Any]) -> None:
        """Append one row; sends the chunk if it is full."""
        self._rows.append(row)
        if len(self._rows) >= self.chunk:
            await self._send()

    async def close(self) -> None:
        """Send the rows not sent yet and wait until every statement is done (raises its error)."""
        if self._rows:
            await self._send()
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight

    async def abandon(self) -> None:
        """Wait for the statement in flight, if any, ignoring its outcome: the caller failed
        and its transaction is about to be rolled back (which needs the connection free)."""
        self._rows = []
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            with contextlib.suppress(BaseException):
                await in_flight

    async def _send(self) -> None:
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            await in_flight
        rows, self._rows = self._rows, []
        self._in_flight = asyncio.create_task(add_assessments(self.session, rows))
        # One turn of the loop: the task sends its statement (its text is prepared once per
        # connection) and waits for the answer while the caller goes on computing.
        await asyncio.sleep(0)


class ProjectRepository(Protocol):
    """The monitored projects: baseline in force, latest facts, health and hysteresis state."""

    async def get(self, project_id: str, *, lock: bool = False) -> MonitoredProjectRow | None:
        """The project, if monitoring holds it; `lock`: held until the unit of work ends (its
        assessments happen one at a time, whether a report, an allocation or the clock
        brings them)."""
        ...

    def add(self, project: MonitoredProjectRow) -> None:
        """Keep a newly started project in this unit of work."""
        ...

    async def claim_stale(self, *, expected_before: date, limit: int) -> list[MonitoredProjectRow]:
        """Up to `limit` active projects, by id, not yet flagged stale, expected to report
        before `expected_before`, locked; those another unit of work holds are skipped."""
        ...


class BaselineRepository(Protocol):
    """Every baseline a project had (version 1 from project-started, then re-baselines)."""

    def add(self, baseline: BaselineRow) -> None:
        """Keep the first baseline of a newly started project."""
        ...

    async def keep(self, baseline: BaselineRow) -> None:
        """Keep a re-baseline; one already kept (same project and version) stands."""
        ...


class AssessmentRepository(Protocol):
    """The health history: one row per assessment, applied or kept for the record."""

    def add(self, record: dict[str, Any]) -> HealthAssessmentRow:
        """Append one assessment (a `health_assessment` row's values); returns the row."""
        ...


class PositionRepository(Protocol):
    """Allocation decisions per request: what monitoring counts a resource shortfall from."""

    async def of(self, project_id: str) -> list[ResourcePosition]:
        """The project's positions, by request id."""
        ...

    async def get(self, request_id: str, *, lock: bool = False) -> ResourcePositionRow | None:
        """The request's position, if monitoring saw it decided; `lock`: until the work ends."""
        ...

    async def record(self, request_id: str, values: dict[str, Any]) -> None:
        """Keep `values` (the position's columns) unless the request has a position decided
        later (`decided_at`): the newest decision wins, whichever topic brings it first."""
        ...


class ThresholdRepository(Protocol):
    """The PMO administrators' override of the health thresholds (one, or none)."""

    async def override(self, *, lock: bool = False) -> ThresholdOverrideRow | None:
        """The override in force, if any."""
        ...

    async def put(self, thresholds: dict[str, Any], *, by: str, at: datetime) -> None:
        """Set the override (replacing any), as `by` set it at `at`."""
        ...

    async def drop(self) -> None:
        """Remove the override: the settings' thresholds apply again."""
        ...


class SqlProjectRepository:
    """`ProjectRepository` on a session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, project_id: str, *, lock: bool = False) -> MonitoredProjectRow | None:
        return await self.session.get(MonitoredProjectRow, project_id, with_for_update=lock)

    def add(self, project: MonitoredProjectRow) -> None:
        self.session.add(project)

    async def claim_stale(self, *, expected_before: date, limit: int) -> list[MonitoredProjectRow]:
        return await claim_stale_projects(
            self.session, expected_before=expected_before, limit=limit
        )


class SqlBaselineRepository:
    """`BaselineRepository` on a session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, baseline: BaselineRow) -> None:
        self.session.add(baseline)

    async def keep(self, baseline: BaselineRow) -> None:
        values = baseline.model_dump(exclude_none=True)  # received_at: the server's time
        await self.session.exec(insert(BaselineRow).values(**values).on_conflict_do_nothing())


class SqlAssessmentRepository:
    """`AssessmentRepository` on a session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, record: dict[str, Any]) -> HealthAssessmentRow:
        row = HealthAssessmentRow(**record)
        self.session.add(row)
        return row


class SqlPositionRepository:
    """`PositionRepository` on a session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def of(self, project_id: str) -> list[ResourcePosition]:
        query = (
            select(ResourcePositionRow)
            .where(ResourcePositionRow.project_id == project_id)
            .order_by(col(ResourcePositionRow.request_id))
        )
        return [position_of(row) for row in (await self.session.exec(query)).all()]

    async def get(self, request_id: str, *, lock: bool = False) -> ResourcePositionRow | None:
        return await self.session.get(ResourcePositionRow, request_id, with_for_update=lock)

    async def record(self, request_id: str, values: dict[str, Any]) -> None:
        # The shared keep-newest rule, by the allocation's decision time, in one statement.
        await keep_newest(
            self.session,
            ResourcePositionRow.__table__,  # type: ignore[attr-defined]
            key={"request_id": request_id},
            values=values,
            order_column="decided_at",
        )


class SqlThresholdRepository:
    """`ThresholdRepository` on a session (the override is the table's one row, id 1)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def override(self, *, lock: bool = False) -> ThresholdOverrideRow | None:
        return await self.session.get(ThresholdOverrideRow, 1, with_for_update=lock)

    async def put(self, thresholds: dict[str, Any], *, by: str, at: datetime) -> None:
        table = ThresholdOverrideRow.__table__  # type: ignore[attr-defined]
        values = {"id": 1, "thresholds": thresholds, "updated_by": by, "updated_at": at}
        upsert = insert(table).values(**values)
        upsert = upsert.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={name: upsert.excluded[name] for name in values if name != "id"},
        )
        await self.session.exec(upsert)

    async def drop(self) -> None:
        stored = await self.override(lock=True)
        if stored is not None:
            await self.session.delete(stored)
