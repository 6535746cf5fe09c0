"""Strategy changes: accepted by version, directives applied, the portfolio re-ranked, announced.

Rules (see `domain/portfolio.py` for scoring, ranking and recommended actions):
- A strategy version is applied only if it is newer than the current one. An older or equal
  version arriving later (out of order, or resent under a new event id) is kept in the strategy
  history as `ignored` and changes nothing else.
- Applying one: its pause/terminate directives move projects (each move announced by
  `project-lifecycle-changed`), then every ranked project is scored and ranked, each project's
  rank, score and action are kept (history rows for the ones that changed), and ONE
  `portfolio-reprioritized` is published. `previous_rank` is the rank at the previous
  reprioritization.
- Strategy changes are serialized across replicas (a transaction-scoped advisory lock), so two
  versions handled at once cannot interleave their rankings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from services.registry.adapters.repository import (
    ProjectRepository,
    SqlProjectRepository,
    SqlStrategyRepository,
    StrategyRepository,
)
from services.registry.adapters.repository import strategy_of as strategy_of
from services.registry.adapters.tables import ProjectRow, StrategyRow
from services.registry.domain.portfolio import (
    DirectiveEffect,
    PortfolioProject,
    Ranking,
    Reprioritization,
    rank_portfolio,
    reprioritize,
)
from services.registry.domain.stage_models import StageModels, UnknownMethodology
from services.registry.service_layer import projects as project_changes
from services.registry.service_layer.configuration import RegistryConfiguration
from services.registry.service_layer.unit_of_work import RegistryUnitOfWork, registry_work
from shared.events.contracts import PortfolioReprioritized, RankedProject, StrategyChanged
from shared.messaging.unit_of_work import UnitOfWork


async def current_strategy(session: AsyncSession) -> StrategyChanged | None:
    """The applied strategy with the highest version, as its event said it."""
    return await SqlStrategyRepository(session).current()


def portfolio_project(project: ProjectRow, models: StageModels) -> PortfolioProject | None:
    """The project as ranking sees it; None if its methodology has no stage model any more."""
    try:
        model = models.resolve(project.methodology)
    except UnknownMethodology:
        return None
    return PortfolioProject(
        project_id=project.project_id,
        business_unit=project.business_unit,
        lifecycle=project_changes.stage_of(project),
        stage_model=model,
        key_project=project.key_project,
        planned_finish_date=project.planned_finish_date,
        contributions={
            str(item["objective_id"]): float(item["contribution"]) for item in project.objectives
        },
        percent_complete=project.percent_complete,
        previous_rank=project.rank,
        program_id=project.program_id,
    )


def portfolio_of(rows: Sequence[ProjectRow], models: StageModels) -> list[PortfolioProject]:
    return [entry for row in rows if (entry := portfolio_project(row, models)) is not None]


def effect_json(effect: DirectiveEffect) -> dict[str, Any]:
    return asdict(effect)


@dataclass(frozen=True)
class WhatIf:
    """What a draft strategy would do, computed on the portfolio as it is now."""

    current_version: int | None
    would_apply: bool
    note: str
    plan: Reprioritization


Reads = AsyncSession | RegistryUnitOfWork
"""Where a read of the portfolio comes from: a route's session, or a unit of work."""


def _reads(source: Reads) -> tuple[ProjectRepository, StrategyRepository]:
    if isinstance(source, AsyncSession):
        return SqlProjectRepository(source), SqlStrategyRepository(source)
    return source.projects, source.strategies


async def live_ranking(
    source: Reads, configuration: RegistryConfiguration
) -> tuple[StrategyChanged | None, list[Ranking]]:
    """The portfolio ranked now under the current strategy (it follows every project change)."""
    projects, strategies = _reads(source)
    strategy = await strategies.current()
    entries = portfolio_of(await projects.all(), configuration.stage_models)
    return strategy, rank_portfolio(entries, strategy, configuration.policy)


async def what_if(
    source: Reads, draft: StrategyChanged, configuration: RegistryConfiguration
) -> WhatIf:
    """The effects and ranking `draft` would produce; reads only, changes nothing."""
    projects, strategies = _reads(source)
    current = await strategies.current()
    plan = reprioritize(
        portfolio_of(await projects.all(), configuration.stage_models), draft, configuration.policy
    )
    stale = current is not None and draft.strategy_version <= current.strategy_version
    note = (
        f"version {draft.strategy_version} is not newer than the current version "
        f"{current.strategy_version}: sent as an event, it would be ignored"
        if stale and current is not None
        else "sent as an event, this strategy would be applied"
    )
    return WhatIf(current.strategy_version if current else None, not stale, note, plan)


async def apply_strategy(
    uow: UnitOfWork | RegistryUnitOfWork,
    strategy: StrategyChanged,
    *,
    cause: str,
    configuration: RegistryConfiguration,
) -> StrategyRow:
    """Accept a strategy version (or keep it as ignored); see the module docstring.

    Returns the strategy history's row of it (outcome `applied` or `ignored`, with a note).
    """
    work = registry_work(uow)
    await work.strategies.lock()
    received = StrategyRow(
        strategy_version=strategy.strategy_version,
        effective_date=strategy.effective_date,
        objectives=[o.model_dump(mode="json") for o in strategy.objectives],
        directives=[d.model_dump(mode="json") for d in strategy.directives],
        cause=cause,
        outcome="applied",
    )
    current = await work.strategies.current()
    if current is not None and strategy.strategy_version <= current.strategy_version:
        received.outcome = "ignored"
        received.note = (
            f"version {strategy.strategy_version} arrived after version "
            f"{current.strategy_version} was applied: an older or equal version changes nothing"
        )
        work.strategies.add(received)
        return received

    rows = {row.project_id: row for row in await work.projects.all(lock=True)}
    plan = reprioritize(
        portfolio_of(list(rows.values()), configuration.stage_models),
        strategy,
        configuration.policy,
    )
    version = strategy.strategy_version
    for effect in plan.effects:
        await _apply_effect(
            work, effect, rows, version=version, cause=cause, configuration=configuration
        )

    ranking = {entry.project_id: entry for entry in plan.ranking}
    for project_id, row in rows.items():
        _keep_rank(work, row, ranking.get(project_id), version=version, cause=cause)

    await work.publish(
        PortfolioReprioritized(
            strategy_version=version,
            projects=[
                RankedProject(
                    project_id=entry.project_id,
                    score=entry.score,
                    rank=entry.rank,
                    previous_rank=entry.previous_rank,
                    action=entry.action,
                    why=entry.why,
                )
                for entry in plan.ranking
            ],
        )
    )
    received.directive_effects = [effect_json(effect) for effect in plan.effects]
    received.note = (
        f"{len(plan.ranking)} projects ranked; "
        f"{sum(effect.effect == 'moved' for effect in plan.effects)} moved by directives"
    )
    work.strategies.add(received)
    return received


async def _apply_effect(
    uow: RegistryUnitOfWork,
    effect: DirectiveEffect,
    rows: dict[str, ProjectRow],
    *,
    version: int,
    cause: str,
    configuration: RegistryConfiguration,
) -> None:
    row = rows.get(effect.project_id) if effect.project_id is not None else None
    if row is None:
        return
    what = f"strategy v{version} directive {effect.directive}: {effect.action} {effect.target}"
    if effect.effect == "moved" and effect.to_stage is not None:
        # The plan already checked the gate on the same state; `move` checks it again anyway.
        await project_changes.move(
            uow,
            row,
            configuration.stage_models.resolve(row.methodology),
            effect.to_stage,
            cause=cause,
            reason=f"{what}: {effect.reason}",
        )
        return
    project_changes.record(
        uow,
        row.project_id,
        "directive",
        cause=cause,
        before={"lifecycle": row.lifecycle},
        after={"lifecycle": row.lifecycle, "effect": effect.effect},
        note=f"{what}: {effect.reason} ({effect.note})",
    )


def _keep_rank(
    uow: RegistryUnitOfWork, row: ProjectRow, entry: Ranking | None, *, version: int, cause: str
) -> None:
    before = {"rank": row.rank, "score": row.score, "action": row.recommended_action}
    if entry is None:
        after: dict[str, Any] = {"rank": None, "score": None, "action": None}
        row.why = None
    else:
        after = {"rank": entry.rank, "score": entry.score, "action": entry.action}
        row.why = entry.why
    row.rank, row.score, row.recommended_action = after["rank"], after["score"], after["action"]
    row.ranked_version = version if entry is not None else row.ranked_version
    if before != after:
        project_changes.record(
            uow,
            row.project_id,
            "reprioritized",
            cause=cause,
            before=before,
            after=after,
            note=f"strategy v{version}: {entry.why}"
            if entry
            else f"strategy v{version}: not ranked",
        )
