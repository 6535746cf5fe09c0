"""Gathering the portfolio status report: every project with where it stands, from the tables."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.tables import ProgramRow, ProjectRow, ResourceShortfallRow
from services.registry.domain.portfolio import rank_portfolio
from services.registry.domain.reports import PortfolioReport, ReportRow, ReportScope
from services.registry.service_layer.configuration import RegistryConfiguration
from services.registry.service_layer.strategy import current_strategy, portfolio_of


async def open_shortfalls(
    session: AsyncSession, project_ids: Collection[str] | None = None
) -> dict[str, float]:
    """FTE requested and not granted, per project, over its requests' latest outcomes."""
    ungranted = case(
        (col(ResourceShortfallRow.status) == "granted", 0.0),
        else_=func.greatest(
            col(ResourceShortfallRow.fte_requested) - col(ResourceShortfallRow.fte_granted), 0.0
        ),
    )
    query = select(ResourceShortfallRow.project_id, func.sum(ungranted)).group_by(
        col(ResourceShortfallRow.project_id)
    )
    if project_ids is not None:
        query = query.where(col(ResourceShortfallRow.project_id).in_(list(project_ids)))
    return {
        project_id: round(float(total or 0.0), 6)
        for project_id, total in (await session.exec(query)).all()
    }


def _figure(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


async def portfolio_report(
    session: AsyncSession, configuration: RegistryConfiguration, program: ProgramRow | None = None
) -> PortfolioReport:
    """Every project (or `program`'s projects), ranked within the whole portfolio."""
    projects = (await session.exec(select(ProjectRow))).all()
    strategy = await current_strategy(session)
    ranking = {
        entry.project_id: entry
        for entry in rank_portfolio(
            portfolio_of(projects, configuration.stage_models), strategy, configuration.policy
        )
    }
    shortfalls = await open_shortfalls(session)
    rows = []
    for project in projects:
        if program is not None and project.program_id != program.program_id:
            continue
        ranked = ranking.get(project.project_id)
        rows.append(
            ReportRow(
                project_id=project.project_id,
                name=project.name,
                business_unit=project.business_unit,
                manager=project.manager,
                methodology=project.methodology,
                lifecycle=project.lifecycle,
                rank=ranked.rank if ranked else None,
                score=ranked.score if ranked else None,
                action=ranked.action if ranked else None,
                health=project.health,
                health_reasons=tuple(project.health_reasons),
                health_assessed_on=project.health_status_as_of,
                spi_t=_figure(project.health_metrics, "spi_t"),
                cpi=_figure(project.health_metrics, "cpi"),
                eac=_figure(project.health_metrics, "eac"),
                forecast_finish=project.forecast_finish,
                percent_complete=project.percent_complete,
                status_as_of=project.status_as_of,
                planned_finish_date=project.planned_finish_date,
                open_shortfall_fte=shortfalls.get(project.project_id, 0.0),
                key_project=project.key_project,
                baseline_version=project.baseline_version,
                rebaselined_on=project.rebaselined_at.date() if project.rebaselined_at else None,
                program_id=project.program_id,
            )
        )
    return PortfolioReport(
        generated_at=datetime.now(UTC),
        strategy_version=strategy.strategy_version if strategy else None,
        rows=rows,
        scope=(
            ReportScope(program.program_id, program.name, program.end_date)
            if program is not None
            else None
        ),
    )
