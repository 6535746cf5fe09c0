"""Monitoring's HTTP API: each project's health and its history, the at-risk list, the rules.

Same rules as the registry: any PMO role reads; only a PMO administrator changes the rules.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import func
from sqlmodel import col, select

from services.monitoring.adapters.repository import SqlThresholdRepository
from services.monitoring.adapters.tables import (
    BaselineRow,
    HealthAssessmentRow,
    MonitoredProjectRow,
)
from services.monitoring.domain.health import HealthThresholds
from services.monitoring.service_layer.configuration import (
    RulesInForce,
    drop_thresholds,
    rules_in_force,
    set_thresholds,
)
from services.monitoring.service_layer.unit_of_work import monitoring_work
from shared.dependencies import (
    Admin,
    LargePageSize,
    PageSize,
    Reader,
    SessionDep,
    SettingsDep,
    UnitOfWorkDep,
    row_or_404,
)
from shared.events.contracts import Health, Metrics, Severity

router = APIRouter(tags=["health"])


class HealthReasonOut(BaseModel):
    code: str
    """`schedule`, `cost`, `milestone_overdue`, `stale_status`, `reported_red`,
    `reported_amber` or `resource_shortfall`."""
    severity: Severity
    message: str
    numbers: Metrics


class ProjectHealthOut(BaseModel):
    """A project's current health, why, and the earned-value figures of its latest report."""

    project_id: str
    name: str
    business_unit: str | None
    monitoring: Literal["active", "on_hold", "closed"]
    """`closed`: completed or terminated, no longer watched (the health is the last one)."""
    lifecycle: str | None
    health: Health
    health_since: datetime | None
    at_risk_since: datetime | None
    reasons: list[HealthReasonOut]
    metrics: Metrics
    """PV, EV, AC, SV, CV, SPI, CPI, EAC, ETC, VAC, TCPI, ES, AT, SPI(t), SV(t)...; null where
    undefined (e.g. CPI before any cost)."""
    as_of: date | None
    """The as-of date of the latest report (the figures are from it)."""
    planned_finish: date
    forecast_finish: date | None
    """When the project finishes at its schedule performance so far (SPI(t))."""
    stale_since: datetime | None
    assessed_at: datetime | None
    """When it was assessed: the order of its project-health-assessed events."""
    budget_at_completion: float
    """BAC of the baseline in force."""
    baseline_version: int
    """1: the original baseline (project-started); higher: re-baselined."""
    rebaselined_at: datetime | None
    """When the baseline in force was approved, if the project was re-baselined."""
    reported_health: Health | None = None
    """What the latest status report itself claimed, to compare with the computed `health`."""


class HealthPageOut(BaseModel):
    """One page of the portfolio's latest assessments, by project id."""

    items: list[ProjectHealthOut]
    total: int
    """How many projects match the filters, over all pages."""
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class BaselineEntryOut(BaseModel):
    """One approved baseline of a project."""

    model_config = ConfigDict(from_attributes=True)

    version: int
    budget_at_completion: float
    start_date: date
    planned_finish_date: date
    planned_value_curve: list[dict[str, Any]] | None
    approved_by: str | None
    reason: str | None
    approved_at: datetime | None
    event_id: str | None


class HealthHistoryEntryOut(BaseModel):
    """One assessment in a project's series."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    assessed_at: datetime
    trigger: str
    event_id: str | None
    as_of: date | None
    applied: bool
    """False: an older report (or one after closing), kept for the record only."""
    health: Health
    reasons: list[HealthReasonOut]
    metrics: Metrics
    forecast_finish: date | None
    alert: Literal["project-at-risk", "project-recovered"] | None


class ThresholdConfigurationOut(BaseModel):
    """The health rules in force and where they come from."""

    thresholds: HealthThresholds
    source: Literal["settings", "override"]
    """`settings`: the `PMO_MONITORING_*` defaults; `override`: set through this API."""
    updated_by: str | None = None
    updated_at: datetime | None = None


def _project_health(project: MonitoredProjectRow) -> ProjectHealthOut:
    return ProjectHealthOut.model_validate(
        {
            "project_id": project.project_id,
            "name": project.name,
            "business_unit": project.business_unit,
            "monitoring": project.monitoring_state,
            "lifecycle": project.lifecycle,
            "health": project.health,
            "health_since": project.health_since,
            "at_risk_since": project.at_risk_since,
            "reasons": project.reasons,
            "metrics": project.metrics,
            "as_of": project.latest_as_of,
            "planned_finish": project.planned_finish_date,
            "forecast_finish": project.forecast_finish,
            "stale_since": project.stale_since,
            "assessed_at": project.assessed_at,
            "budget_at_completion": project.budget_at_completion,
            "baseline_version": project.baseline_version,
            "rebaselined_at": project.rebaselined_at,
            "reported_health": project.reported_health,
        }
    )


def _configuration(rules: RulesInForce) -> ThresholdConfigurationOut:
    if rules.override is None:
        return ThresholdConfigurationOut(thresholds=rules.thresholds, source="settings")
    return ThresholdConfigurationOut(
        thresholds=rules.thresholds,
        source="override",
        updated_by=rules.override.updated_by,
        updated_at=rules.override.updated_at,
    )


def _no_baseline(project_id: str) -> str:
    """The 404's detail for a project monitoring has no baseline of."""
    return f"Monitoring has no baseline for project {project_id!r}."


@router.get("/projects/{project_id}/health", summary="A project's current health and metrics")
async def project_health(session: SessionDep, project_id: str, _: Reader) -> ProjectHealthOut:
    project = await row_or_404(
        session,
        MonitoredProjectRow,
        project_id,
        _no_baseline(project_id),
    )
    return _project_health(project)


@router.get(
    "/health",
    summary="The latest assessment of every monitored project, filtered, a page at a time",
)
async def portfolio_health(
    session: SessionDep,
    _: Reader,
    project_id: Annotated[
        list[str] | None, Query(description="Only these projects (repeat the parameter)")
    ] = None,
    health: Annotated[list[Health] | None, Query(description="Only these levels")] = None,
    business_unit: Annotated[str | None, Query(description="Case-insensitive")] = None,
    monitoring: Annotated[
        Literal["active", "on_hold", "closed"] | None,
        Query(description="Only projects watched (active), on hold, or closed"),
    ] = None,
    limit: PageSize = 100,
    cursor: Annotated[
        str | None, Query(description="The `next_cursor` of the previous page")
    ] = None,
) -> HealthPageOut:
    """What `GET /projects/{id}/health` says, for many projects in one call (the dashboard's
    overview reads the whole portfolio this way), ordered by project id."""
    filters: list[Any] = []
    if project_id:
        filters.append(col(MonitoredProjectRow.project_id).in_(project_id))
    if health:
        filters.append(col(MonitoredProjectRow.health).in_(health))
    if business_unit:
        unit = business_unit.strip().lower()
        filters.append(func.lower(col(MonitoredProjectRow.business_unit)) == unit)
    if monitoring:
        filters.append(col(MonitoredProjectRow.monitoring_state) == monitoring)
    query = (
        select(MonitoredProjectRow).where(*filters).order_by(col(MonitoredProjectRow.project_id))
    )
    if cursor:
        query = query.where(col(MonitoredProjectRow.project_id) > cursor)
    total = (
        await session.exec(select(func.count()).select_from(MonitoredProjectRow).where(*filters))
    ).one()
    rows = list((await session.exec(query.limit(limit + 1))).all())
    page = rows[:limit]
    return HealthPageOut(
        items=[_project_health(project) for project in page],
        total=total,
        next_cursor=page[-1].project_id if len(rows) > limit else None,
    )


@router.get(
    "/projects/{project_id}/baselines",
    summary="Every approved baseline of a project, oldest first (the highest is in force)",
)
async def project_baselines(
    session: SessionDep, project_id: str, _: Reader
) -> list[BaselineEntryOut]:
    rows = (
        await session.exec(
            select(BaselineRow)
            .where(BaselineRow.project_id == project_id)
            .order_by(col(BaselineRow.version))
        )
    ).all()
    if not rows:
        raise HTTPException(404, _no_baseline(project_id))
    return [BaselineEntryOut.model_validate(row) for row in rows]


@router.get(
    "/projects/{project_id}/health/history",
    summary="Every assessment of a project, oldest first (a series for trend charts)",
)
async def project_health_history(
    session: SessionDep,
    project_id: str,
    _: Reader,
    limit: LargePageSize = 100,
    after: Annotated[int | None, Query(description="Page: assessments after this id")] = None,
) -> list[HealthHistoryEntryOut]:
    query = (
        select(HealthAssessmentRow)
        .where(HealthAssessmentRow.project_id == project_id)
        .order_by(col(HealthAssessmentRow.id))
        .limit(limit)
    )
    if after is not None:
        query = query.where(col(HealthAssessmentRow.id) > after)
    await row_or_404(
        session,
        MonitoredProjectRow,
        project_id,
        _no_baseline(project_id),
    )
    rows = (await session.exec(query)).all()
    return [_history_entry(row) for row in rows]


def _history_entry(row: HealthAssessmentRow) -> HealthHistoryEntryOut:
    return HealthHistoryEntryOut.model_validate(row, from_attributes=True)


@router.get("/at-risk", summary="The portfolio's monitored projects that are not green")
async def at_risk(
    session: SessionDep,
    _: Reader,
    severity: Severity | None = None,
    business_unit: str | None = None,
    limit: PageSize = 100,
    after: Annotated[str | None, Query(description="Page: project ids after this one")] = None,
) -> list[ProjectHealthOut]:
    query = (
        select(MonitoredProjectRow)
        .where(
            MonitoredProjectRow.monitoring_state != "closed",
            col(MonitoredProjectRow.health).in_([severity] if severity else ["amber", "red"]),
        )
        .order_by(col(MonitoredProjectRow.project_id))
        .limit(limit)
    )
    if business_unit:
        query = query.where(MonitoredProjectRow.business_unit == business_unit)
    if after:
        query = query.where(col(MonitoredProjectRow.project_id) > after)
    return [_project_health(project) for project in (await session.exec(query)).all()]


@router.get("/thresholds", summary="The health rules in force")
async def get_thresholds(
    session: SessionDep, settings: SettingsDep, _: Reader
) -> ThresholdConfigurationOut:
    return _configuration(await rules_in_force(SqlThresholdRepository(session), settings))


@router.put(
    "/thresholds",
    summary="Set the health rules (PMO administrators); they apply from the next assessment",
)
async def put_thresholds(
    uow: UnitOfWorkDep,
    settings: SettingsDep,
    thresholds: HealthThresholds,
    principal: Admin,
) -> ThresholdConfigurationOut:
    work = monitoring_work(uow)
    await set_thresholds(work, thresholds, by=principal.subject, at=datetime.now(UTC))
    await uow.commit()
    return _configuration(await rules_in_force(work.thresholds, settings))


@router.delete(
    "/thresholds",
    summary="Drop the administrators' rules: the settings' defaults apply again",
    status_code=status.HTTP_204_NO_CONTENT,
)
async def delete_thresholds(uow: UnitOfWorkDep, _: Admin) -> Response:
    await drop_thresholds(monitoring_work(uow))
    await uow.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
