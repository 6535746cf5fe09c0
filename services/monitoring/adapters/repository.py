"""How monitoring reads and locks its rows: the queries handlers, clock and API share."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import date
from typing import Any

from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.monitoring.adapters.tables import (
    HealthAssessmentRecord,
    MonitoredProject,
    ResourcePositionRecord,
    ThresholdOverride,
)
from services.monitoring.domain.health import ResourcePosition


async def project_for_update(session: AsyncSession, project_id: str) -> MonitoredProject | None:
    """The project, locked until the transaction ends: its assessments happen one at a time,
    whether a report, an allocation or the staleness clock brings them."""
    return await session.get(MonitoredProject, project_id, with_for_update=True)


async def projects_for_update(
    session: AsyncSession, project_ids: Collection[str]
) -> dict[str, MonitoredProject]:
    """The projects among `project_ids` that monitoring holds, by id, locked until the
    transaction ends (one query; locked in id order, as every batch does, so two never deadlock).
    """
    if not project_ids:
        return {}
    query = (
        select(MonitoredProject)
        .where(col(MonitoredProject.project_id).in_(sorted(project_ids)))
        .order_by(col(MonitoredProject.project_id))
        .with_for_update()
    )
    return {project.project_id: project for project in (await session.exec(query)).all()}


async def claim_stale_projects(
    session: AsyncSession, *, expected_before: date, limit: int
) -> list[MonitoredProject]:
    """Active projects not yet flagged stale whose last report is older than `expected_before`.

    `FOR UPDATE SKIP LOCKED`: rows another replica's clock (or a handler) holds are skipped,
    not waited for, so each stale project is claimed by one transaction; once that commits,
    `stale_since` is set and the condition, re-checked on the new row version, excludes it.
    """
    query = (
        select(MonitoredProject)
        .where(
            MonitoredProject.monitoring_state == "active",
            col(MonitoredProject.stale_since).is_(None),
            MonitoredProject.status_expected_since < expected_before,
        )
        .order_by(col(MonitoredProject.project_id))
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list((await session.exec(query)).all())


async def resource_positions(session: AsyncSession, project_id: str) -> list[ResourcePosition]:
    query = (
        select(ResourcePositionRecord)
        .where(ResourcePositionRecord.project_id == project_id)
        .order_by(col(ResourcePositionRecord.request_id))
    )
    return [
        ResourcePosition(
            request_id=row.request_id,
            skill=row.skill,
            fte_requested=row.fte_requested,
            fte_granted=row.fte_granted,
        )
        for row in (await session.exec(query)).all()
    ]


async def resource_positions_of(
    session: AsyncSession, project_ids: Collection[str]
) -> dict[str, list[ResourcePosition]]:
    """`resource_positions` of several projects in one query (a project with none is absent)."""
    if not project_ids:
        return {}
    query = (
        select(ResourcePositionRecord)
        .where(col(ResourcePositionRecord.project_id).in_(sorted(project_ids)))
        .order_by(col(ResourcePositionRecord.request_id))
    )
    positions: dict[str, list[ResourcePosition]] = {}
    for row in (await session.exec(query)).all():
        positions.setdefault(row.project_id, []).append(
            ResourcePosition(
                request_id=row.request_id,
                skill=row.skill,
                fte_requested=row.fte_requested,
                fte_granted=row.fte_granted,
            )
        )
    return positions


async def add_assessments(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Append `health_assessment` rows (their column values) in one statement."""
    if rows:
        connection = await session.connection()
        await connection.execute(
            insert(HealthAssessmentRecord.__table__),  # type: ignore[attr-defined]
            list(rows),
        )


async def threshold_override(session: AsyncSession) -> ThresholdOverride | None:
    return await session.get(ThresholdOverride, 1)
