"""The strategy-ranked portfolio: scores, ranks, recommended actions and directive effects.

Scoring. A project's strategic score is the weighted sum of its contributions to the strategy's
objectives, the weights normalised to sum to 1 (so a score lies in 0..1 whatever scale the
strategy tool uses, and thresholds keep their meaning across versions), plus `key_project_bonus`
for a key project. Objectives the strategy does not name count for nothing. Scores are rounded to
6 decimals so that equal inputs compare equal whatever the float arithmetic.

Ranking. Only projects in a ranked stage of their stage model take part (by default approved,
active, on hold). Order: projects the current strategy accelerates first, then the others, then
the ones it deprioritizes; within each group by score (highest first), then key projects first,
then the earlier planned finish, then project id, so a ranking never depends on arrival order.

Recommended action, first rule that applies (n = number ranked; thresholds are settings;
"directive" means one of the current strategy's):
1. an `accelerate` directive names it: accelerate;
2. score below `terminate_below_score`, unless a key project: terminate;
3. a `pause` or `deprioritize` directive names it: pause;
4. rank in the bottom `pause_bottom_share` (rank > n - floor(n x share)), unless a key
   project: pause;
5. rank in the top `accelerate_top_share` (rank <= ceil(n x share)) and score at least
   `accelerate_min_score`: accelerate;
6. otherwise: continue (for a project on hold: resume).
Without any strategy yet every ranked project continues: there is nothing to weigh it against.

Directives, applied in the order listed, each to the projects it targets (a project id, every
not-closed project of a business unit or of a program, or every not-closed project contributing
to an objective): `pause` moves to on_hold and `terminate` to terminated, where the project's
stage model allows it; `accelerate` and `deprioritize` change no stage: they place the project in
the ranking as above for as long as this strategy is current (the last such directive naming a
project wins).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

from services.registry.domain.stage_models import ImpossibleTransition, StageModel
from shared.events.contracts import (
    Directive,
    DirectiveAction,
    RecommendedAction,
    Stage,
    StrategyChanged,
)

Tier = Literal["accelerated", "normal", "deprioritized"]
_TIER_ORDER: dict[Tier, int] = {"accelerated": 0, "normal": 1, "deprioritized": 2}
EffectKind = Literal["moved", "unchanged", "impossible", "ranked_ahead", "ranked_behind"]
_TARGET_STAGE: dict[DirectiveAction, Stage] = {"pause": "on_hold", "terminate": "terminated"}


@dataclass(frozen=True)
class PrioritizationPolicy:
    """The tunable numbers of scoring and recommendations (settings `PMO_REGISTRY_*`)."""

    key_project_bonus: float = 0.1
    accelerate_top_share: float = 0.2
    accelerate_min_score: float = 0.6
    pause_bottom_share: float = 0.2
    terminate_below_score: float = 0.1


@dataclass(frozen=True)
class PortfolioProject:
    """A project as scoring, ranking and directives see it."""

    project_id: str
    business_unit: str
    lifecycle: Stage
    stage_model: StageModel
    key_project: bool
    planned_finish_date: date
    contributions: Mapping[str, float]
    """objective_id -> contribution 0..1."""
    percent_complete: float | None = None
    previous_rank: int | None = None
    """Its rank at the last reprioritization, if it was ranked then."""
    program_id: str | None = None
    """The program it belongs to, if any."""

    @property
    def ranked(self) -> bool:
        return self.stage_model.is_ranked(self.lifecycle)

    @property
    def closed(self) -> bool:
        return not self.stage_model.has_stage(self.lifecycle) or self.stage_model.is_final(
            self.lifecycle
        )


@dataclass(frozen=True)
class Ranking:
    """One project's place in the ranked portfolio, and what the PMO should do with it."""

    project_id: str
    score: float
    rank: int
    previous_rank: int | None
    action: RecommendedAction
    why: str
    tier: Tier


@dataclass(frozen=True)
class DirectiveEffect:
    """What one directive did (or would do) to one project."""

    directive: int
    """Position of the directive in the strategy's list, from 1."""
    action: DirectiveAction
    target: str
    """What the directive aimed at, e.g. `business_unit Logistics`."""
    project_id: str | None
    effect: EffectKind
    from_stage: Stage | None
    to_stage: Stage | None
    reason: str
    """The directive's own reason."""
    note: str
    """What happened, in words."""


@dataclass(frozen=True)
class Reprioritization:
    """A strategy applied to the portfolio: directive effects first, then the new ranking."""

    effects: list[DirectiveEffect]
    ranking: list[Ranking]
    projects: list[PortfolioProject]
    """The projects after the directives' lifecycle changes."""


def strategic_score(
    project: PortfolioProject, strategy: StrategyChanged | None, policy: PrioritizationPolicy
) -> float:
    """Weighted sum of contributions (weights normalised to 1), plus the key-project bonus."""
    bonus = policy.key_project_bonus if project.key_project else 0.0
    if strategy is None:
        return round(bonus, 6)
    weights = {objective.objective_id: objective.weight for objective in strategy.objectives}
    total = sum(weights.values())
    weighted = sum(
        contribution * weights.get(objective_id, 0.0)
        for objective_id, contribution in project.contributions.items()
    )
    return round(weighted / total + bonus, 6)


def describe_target(directive: Directive) -> str:
    if directive.project_id is not None:
        return f"project {directive.project_id}"
    if directive.business_unit is not None:
        return f"business_unit {directive.business_unit}"
    if directive.program_id is not None:
        return f"program {directive.program_id}"
    return f"objective {directive.objective_id}"


def targets(directive: Directive, project: PortfolioProject) -> bool:
    """Whether `directive` aims at `project`.

    A project id names exactly that project; a business unit, a program or an objective names
    its projects that are not closed (a strategy does not re-decide finished work).
    """
    if directive.project_id is not None:
        return project.project_id == directive.project_id
    if project.closed:
        return False
    if directive.business_unit is not None:
        return project.business_unit.casefold() == directive.business_unit.casefold()
    if directive.program_id is not None:
        return project.program_id == directive.program_id
    return project.contributions.get(directive.objective_id or "", 0.0) > 0


@dataclass(frozen=True)
class Placement:
    """What the current strategy's directives say about one ranked project."""

    tier: Tier = "normal"
    tier_reason: str = ""
    """The reason of the accelerate or deprioritize directive that placed it."""
    paused_by: str | None = None
    """The reason of a pause directive naming it."""


def placements(
    projects: Iterable[PortfolioProject], strategy: StrategyChanged | None
) -> dict[str, Placement]:
    """Per project, its directives' say; the last accelerate/deprioritize naming it wins."""
    placed: dict[str, Placement] = {}
    if strategy is None:
        return placed
    projects = list(projects)
    for directive in strategy.directives:
        for project in projects:
            if not targets(directive, project):
                continue
            current = placed.get(project.project_id, Placement())
            if directive.action == "accelerate":
                current = replace(current, tier="accelerated", tier_reason=directive.reason)
            elif directive.action == "deprioritize":
                current = replace(current, tier="deprioritized", tier_reason=directive.reason)
            elif directive.action == "pause":
                current = replace(current, paused_by=directive.reason)
            else:
                continue
            placed[project.project_id] = current
    return placed


def rank_portfolio(
    projects: Iterable[PortfolioProject],
    strategy: StrategyChanged | None,
    policy: PrioritizationPolicy,
) -> list[Ranking]:
    """The ranked projects, best first, each with its recommended action and why."""
    projects = list(projects)
    ranked = [project for project in projects if project.ranked]
    placed = placements(ranked, strategy)
    scores = {project.project_id: strategic_score(project, strategy, policy) for project in ranked}

    def order(project: PortfolioProject) -> tuple[int, float, bool, date, str]:
        return (
            _TIER_ORDER[placed.get(project.project_id, Placement()).tier],
            -scores[project.project_id],
            not project.key_project,
            project.planned_finish_date,
            project.project_id,
        )

    ordered = sorted(ranked, key=order)
    total = len(ordered)
    result: list[Ranking] = []
    for position, project in enumerate(ordered, start=1):
        placement = placed.get(project.project_id, Placement())
        action, why = recommend(
            project,
            rank=position,
            total=total,
            score=scores[project.project_id],
            placement=placement,
            strategy=strategy,
            policy=policy,
        )
        result.append(
            Ranking(
                project_id=project.project_id,
                score=scores[project.project_id],
                rank=position,
                previous_rank=project.previous_rank,
                action=action,
                why=why,
                tier=placement.tier,
            )
        )
    return result


def recommend(
    project: PortfolioProject,
    *,
    rank: int,
    total: int,
    score: float,
    placement: Placement,
    strategy: StrategyChanged | None,
    policy: PrioritizationPolicy,
) -> tuple[RecommendedAction, str]:
    """The recommended action for a ranked project, and why (the module docstring's rule)."""
    place = f"rank {rank} of {total}, score {score:g}"
    if strategy is None:
        return "continue", "no strategy has been received yet: nothing to weigh the project against"
    version = f"strategy v{strategy.strategy_version}"
    if placement.tier == "accelerated":
        return "accelerate", f"{place}: {version} accelerates it: {placement.tier_reason}"
    if score < policy.terminate_below_score and not project.key_project:
        return "terminate", (
            f"{place}: below the terminate threshold {policy.terminate_below_score:g}, "
            "it serves the strategy too little to keep funding"
        )
    if placement.paused_by is not None:
        return "pause", f"{place}: {version} pauses it: {placement.paused_by}"
    if placement.tier == "deprioritized":
        return "pause", f"{place}: {version} deprioritizes it: {placement.tier_reason}"
    bottom = math.floor(total * policy.pause_bottom_share)
    if bottom and rank > total - bottom and not project.key_project:
        return "pause", (
            f"{place}: in the bottom {policy.pause_bottom_share:.0%} of the ranked portfolio"
        )
    top = math.ceil(total * policy.accelerate_top_share)
    if rank <= top and score >= policy.accelerate_min_score:
        return "accelerate", (
            f"{place}: in the top {policy.accelerate_top_share:.0%} with a score of at least "
            f"{policy.accelerate_min_score:g}"
        )
    resume = " (it is on hold: resume it)" if project.lifecycle == "on_hold" else ""
    return "continue", f"{place}: between the pause and accelerate thresholds{resume}"


def apply_directives(
    projects: Sequence[PortfolioProject], strategy: StrategyChanged
) -> tuple[list[PortfolioProject], list[DirectiveEffect]]:
    """Each directive in turn, on the projects as the previous directives left them."""
    current = {project.project_id: project for project in projects}
    effects: list[DirectiveEffect] = []
    for number, directive in enumerate(strategy.directives, start=1):
        target = describe_target(directive)
        hit = [project for project in current.values() if targets(directive, project)]
        if not hit:
            effects.append(
                DirectiveEffect(
                    number,
                    directive.action,
                    target,
                    None,
                    "unchanged",
                    None,
                    None,
                    directive.reason,
                    f"no project {directive.project_id} is registered"
                    if directive.project_id is not None
                    else f"{target} has no project that is not closed",
                )
            )
            continue
        for project in sorted(hit, key=lambda p: p.project_id):
            effect = _effect_of(number, directive, target, project)
            effects.append(effect)
            if effect.effect == "moved" and effect.to_stage is not None:
                current[project.project_id] = replace(project, lifecycle=effect.to_stage)
    return [current[project.project_id] for project in projects], effects


def _effect_of(
    number: int, directive: Directive, target: str, project: PortfolioProject
) -> DirectiveEffect:
    def effect(kind: EffectKind, to_stage: Stage | None, note: str) -> DirectiveEffect:
        return DirectiveEffect(
            number,
            directive.action,
            target,
            project.project_id,
            kind,
            project.lifecycle,
            to_stage,
            directive.reason,
            note,
        )

    stage = project.lifecycle
    if directive.action in ("accelerate", "deprioritize"):
        if not project.ranked:
            return effect("impossible", None, f"{stage} projects are not ranked")
        if directive.action == "accelerate":
            return effect("ranked_ahead", None, "ranked ahead of projects without a directive")
        return effect("ranked_behind", None, "ranked after projects without a directive")
    wanted = _TARGET_STAGE[directive.action]
    if stage == wanted:
        return effect("unchanged", None, f"already {stage}")
    try:
        project.stage_model.check(
            stage, wanted, percent_complete=project.percent_complete, reason=directive.reason
        )
    except ImpossibleTransition as impossible:
        return effect("impossible", None, impossible.reason)
    return effect("moved", wanted, f"{stage} -> {wanted}")


def reprioritize(
    projects: Sequence[PortfolioProject],
    strategy: StrategyChanged,
    policy: PrioritizationPolicy,
) -> Reprioritization:
    """What accepting `strategy` does: its directives' effects, then the new ranking."""
    after, effects = apply_directives(projects, strategy)
    return Reprioritization(effects, rank_portfolio(after, strategy, policy), after)
