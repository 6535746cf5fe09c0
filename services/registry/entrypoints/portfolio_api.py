"""The strategy and the ranked portfolio over HTTP: objectives, strategies, ranking, what-if."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict

from fastapi import APIRouter, HTTPException, status
from sqlmodel import col, select

from services.registry.adapters.tables import ProjectRow, StrategyRow
from services.registry.domain.portfolio import Ranking
from services.registry.entrypoints.dependencies import ConfigurationDep, StageModelsDep
from services.registry.entrypoints.schemas import (
    DirectiveEffectOut,
    PortfolioOut,
    RankedProjectOut,
    StageModelOut,
    StrategyOut,
    StrategyReceivedOut,
    WhatIfOut,
)
from services.registry.service_layer.strategy import live_ranking, strategy_of, what_if
from shared.dependencies import PageSize, Reader, SessionDep
from shared.events.contracts import StrategyChanged

router = APIRouter(tags=["portfolio"])


def ranked_views(
    ranking: Iterable[Ranking], projects: Mapping[str, ProjectRow], lifecycles: Mapping[str, str]
) -> list[RankedProjectOut]:
    return [
        RankedProjectOut(
            project_id=entry.project_id,
            name=projects[entry.project_id].name,
            business_unit=projects[entry.project_id].business_unit,
            lifecycle=lifecycles[entry.project_id],
            key_project=projects[entry.project_id].key_project,
            score=entry.score,
            rank=entry.rank,
            previous_rank=entry.previous_rank,
            action=entry.action,
            why=entry.why,
        )
        for entry in ranking
    ]


@router.get("/objectives", summary="The current strategy: its objectives, weights and directives")
async def current_objectives(session: SessionDep, _: Reader) -> StrategyOut:
    row = (
        await session.exec(
            select(StrategyRow)
            .where(StrategyRow.outcome == "applied")
            .order_by(col(StrategyRow.strategy_version).desc())
            .limit(1)
        )
    ).first()
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No strategy has been received yet.")
    strategy = strategy_of(row)
    return StrategyOut(
        strategy_version=strategy.strategy_version,
        effective_date=strategy.effective_date,
        objectives=list(strategy.objectives),
        directives=list(strategy.directives),
        received_at=row.received_at,
        cause=row.cause,
        directive_effects=[DirectiveEffectOut(**effect) for effect in row.directive_effects],
    )


@router.get(
    "/strategies",
    summary="Every strategy version received, newest first: applied, or ignored as out of date",
)
async def strategies(
    session: SessionDep,
    _: Reader,
    limit: PageSize = 50,
) -> list[StrategyReceivedOut]:
    rows = (
        await session.exec(select(StrategyRow).order_by(col(StrategyRow.id).desc()).limit(limit))
    ).all()
    return [StrategyReceivedOut.model_validate(row, from_attributes=True) for row in rows]


@router.get(
    "/portfolio",
    summary="The portfolio ranked now under the current strategy, with recommended actions",
)
async def portfolio(
    configuration: ConfigurationDep, session: SessionDep, _: Reader
) -> PortfolioOut:
    strategy, ranking = await live_ranking(session, configuration)
    projects = {row.project_id: row for row in (await session.exec(select(ProjectRow))).all()}
    return PortfolioOut(
        strategy_version=strategy.strategy_version if strategy else None,
        projects=ranked_views(
            ranking, projects, {pid: row.lifecycle for pid, row in projects.items()}
        ),
    )


@router.post(
    "/portfolio/what-if",
    summary="The ranking, actions and directive effects a draft strategy would produce; "
    "changes nothing",
)
async def portfolio_what_if(
    configuration: ConfigurationDep, session: SessionDep, draft: StrategyChanged, _: Reader
) -> WhatIfOut:
    # A plain session, closed without a commit: nothing here can change the portfolio.
    outcome = await what_if(session, draft, configuration)
    projects = {row.project_id: row for row in (await session.exec(select(ProjectRow))).all()}
    return WhatIfOut(
        draft_version=draft.strategy_version,
        current_version=outcome.current_version,
        would_apply=outcome.would_apply,
        note=outcome.note,
        ranking=ranked_views(
            outcome.plan.ranking,
            projects,
            {entry.project_id: entry.lifecycle for entry in outcome.plan.projects},
        ),
        directive_effects=[DirectiveEffectOut(**asdict(effect)) for effect in outcome.plan.effects],
    )


@router.get("/stage-models", summary="The stage model of each methodology, as configured")
async def stage_models(models: StageModelsDep, _: Reader) -> list[StageModelOut]:
    return [
        StageModelOut(
            name=model.name,
            default=model.name == models.default,
            description=model.description,
            initial=model.initial,
            started=model.started,
            stages={stage: spec.model_dump() for stage, spec in model.stages.items()},
            transitions=[
                {"from": origin, "to": to, "gate": gate.model_dump(exclude_defaults=True)}
                for (origin, to), gate in model.transitions.items()
            ],
        )
        for model in (models.models[name] for name in models.names)
    ]
