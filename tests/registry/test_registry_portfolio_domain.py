"""Scoring, ranking, recommended actions and directives, as pure functions."""

from __future__ import annotations

import itertools
import random
from dataclasses import replace
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.registry.domain.portfolio import (
    PortfolioProject,
    PrioritizationPolicy,
    rank_portfolio,
    reprioritize,
    strategic_score,
)
from services.registry.domain.stage_models import parse_stage_models
from services.registry.service_layer.configuration import SHIPPED_STAGE_MODELS
from shared.events.contracts import StrategyChanged

pytestmark = pytest.mark.fast

MODELS = parse_stage_models(SHIPPED_STAGE_MODELS.read_text(), "shipped")
STANDARD = MODELS.resolve(None)
POLICY = PrioritizationPolicy()


def project(project_id: str, **changes: Any) -> PortfolioProject:
    fields: dict[str, Any] = {
        "project_id": project_id,
        "business_unit": "Digital",
        "lifecycle": "active",
        "stage_model": STANDARD,
        "key_project": False,
        "planned_finish_date": date(2026, 12, 31),
        "contributions": {},
        **changes,
    }
    return PortfolioProject(**fields)


def strategy(
    weights: dict[str, float], directives: list[dict[str, Any]] | None = None, version: int = 1
) -> StrategyChanged:
    return StrategyChanged.model_validate(
        {
            "strategy_version": version,
            "effective_date": "2026-07-01",
            "objectives": [
                {"objective_id": key, "name": key.title(), "weight": weight}
                for key, weight in weights.items()
            ],
            "directives": directives or [],
        }
    )


GROWTH_COST = strategy({"growth": 3, "cost": 1})


def test_the_score_is_the_normalised_weighted_sum_plus_the_key_bonus() -> None:
    alpha = project("ALPHA", contributions={"growth": 0.8, "cost": 0.4, "unknown": 1.0})
    # (0.8 x 3 + 0.4 x 1) / 4 = 0.7; an objective the strategy does not name counts nothing.
    assert strategic_score(alpha, GROWTH_COST, POLICY) == 0.7
    key = replace(alpha, key_project=True)
    assert strategic_score(key, GROWTH_COST, POLICY) == 0.8
    assert strategic_score(key, GROWTH_COST, PrioritizationPolicy(key_project_bonus=0.25)) == 0.95
    # Scaling every weight changes nothing: the weights are normalised.
    assert strategic_score(alpha, strategy({"growth": 30, "cost": 10}), POLICY) == 0.7
    assert strategic_score(alpha, None, POLICY) == 0.0


def ids(ranking: list[Any]) -> list[str]:
    return [entry.project_id for entry in ranking]


def test_ties_go_to_the_key_project_then_the_earlier_finish_then_the_id() -> None:
    same = {"growth": 0.5}
    projects = [
        project("P-D", contributions=same, planned_finish_date=date(2026, 6, 30)),
        project("P-C", contributions=same, planned_finish_date=date(2026, 6, 30)),
        project("P-B", contributions=same, planned_finish_date=date(2026, 3, 31)),
        # Scores 0.375 + 0.1 against 0.475: a key project's bonus is part of its score.
        project("P-A", contributions={"growth": 0.5, "cost": 0.4}),
        project("P-K", contributions={"growth": 0.5}, key_project=True),
    ]
    ranking = rank_portfolio(projects, GROWTH_COST, POLICY)
    scores = {entry.project_id: entry.score for entry in ranking}
    assert scores["P-A"] == scores["P-K"] == 0.475
    assert ids(ranking) == ["P-K", "P-A", "P-B", "P-C", "P-D"]
    assert [entry.rank for entry in ranking] == [1, 2, 3, 4, 5]


def test_only_approved_active_and_on_hold_projects_are_ranked() -> None:
    projects = [
        project(f"P-{stage}", lifecycle=stage, contributions={"growth": 1})
        for stage in ("proposed", "approved", "active", "on_hold", "completed", "terminated")
    ]
    assert sorted(ids(rank_portfolio(projects, GROWTH_COST, POLICY))) == [
        "P-active",
        "P-approved",
        "P-on_hold",
    ]


def ten_projects() -> list[PortfolioProject]:
    # Growth contributions 1.0, 0.9, ..., 0.1: scores 0.75, 0.675, ..., 0.075 under GROWTH_COST.
    return [
        project(f"P-{n:02d}", contributions={"growth": round(1 - n / 10, 1)}) for n in range(10)
    ]


def actions(ranking: list[Any]) -> list[tuple[str, str]]:
    return [(entry.project_id, entry.action) for entry in ranking]


def test_actions_follow_rank_shares_and_score_thresholds() -> None:
    ranking = rank_portfolio(ten_projects(), GROWTH_COST, POLICY)
    assert actions(ranking) == [
        ("P-00", "accelerate"),  # top 20% (ranks 1-2) with a score of at least 0.6
        ("P-01", "accelerate"),
        ("P-02", "continue"),
        ("P-03", "continue"),
        ("P-04", "continue"),
        ("P-05", "continue"),
        ("P-06", "continue"),
        ("P-07", "continue"),
        ("P-08", "pause"),  # bottom 20% (ranks 9-10)
        ("P-09", "terminate"),  # 0.075 is below 0.1: terminate comes before pause
    ]
    assert ranking[8].why == ("rank 9 of 10, score 0.15: in the bottom 20% of the ranked portfolio")
    assert ranking[1].why == (
        "rank 2 of 10, score 0.675: in the top 20% with a score of at least 0.6"
    )


def test_the_thresholds_are_settings() -> None:
    bold = PrioritizationPolicy(
        accelerate_top_share=0.5,
        accelerate_min_score=0.3,
        pause_bottom_share=0.0,
        terminate_below_score=0.0,
    )
    ranking = rank_portfolio(ten_projects(), GROWTH_COST, bold)
    assert [action for _, action in actions(ranking)] == ["accelerate"] * 5 + ["continue"] * 5


def test_key_projects_are_never_recommended_to_pause_or_terminate_by_the_rule() -> None:
    projects = [*ten_projects()[:9], project("P-KEY", key_project=True)]
    last = rank_portfolio(projects, GROWTH_COST, PrioritizationPolicy(key_project_bonus=0))[-1]
    assert (last.project_id, last.score, last.action) == ("P-KEY", 0.0, "continue")


def test_without_a_strategy_every_ranked_project_continues() -> None:
    ranking = rank_portfolio(ten_projects(), None, POLICY)
    assert {entry.action for entry in ranking} == {"continue"}
    assert ranking[0].why.startswith("no strategy has been received yet")


def test_directives_move_place_and_explain() -> None:
    projects = [
        project("P-A", contributions={"growth": 1}),
        project("P-B", contributions={"growth": 0.9}, business_unit="Logistics"),
        project("P-C", contributions={"cost": 0.8}, business_unit="Logistics"),
        project("P-D", contributions={"growth": 0.2}),
        project("P-E", contributions={"cost": 1}, lifecycle="completed"),
        project("P-F", contributions={"growth": 0.5}, lifecycle="proposed"),
        project("P-G", contributions={"cost": 0.5}, lifecycle="on_hold"),
    ]
    plan = reprioritize(
        projects,
        strategy(
            {"growth": 3, "cost": 1},
            [
                {"action": "pause", "business_unit": "logistics", "reason": "Consolidation"},
                {"action": "terminate", "project_id": "P-B", "reason": "Duplicate of P-A"},
                {"action": "accelerate", "project_id": "P-D", "reason": "Regulator"},
                {"action": "deprioritize", "objective_id": "cost", "reason": "Cost is done"},
                {"action": "terminate", "project_id": "P-E", "reason": "Tidy up"},
                {"action": "pause", "project_id": "P-F", "reason": "Not yet"},
                {"action": "pause", "project_id": "P-G", "reason": "Still"},
                {"action": "pause", "project_id": "P-NONE", "reason": "Typo"},
            ],
        ),
        POLICY,
    )
    assert [(e.directive, e.project_id, e.effect, e.to_stage) for e in plan.effects] == [
        (1, "P-B", "moved", "on_hold"),  # the business unit matches whatever its case
        (1, "P-C", "moved", "on_hold"),
        (2, "P-B", "moved", "terminated"),  # directives apply in order: on hold, then ended
        (3, "P-D", "ranked_ahead", None),
        (4, "P-C", "ranked_behind", None),  # contributes to cost and is not closed
        (4, "P-G", "ranked_behind", None),
        (5, "P-E", "impossible", None),
        (6, "P-F", "impossible", None),
        (7, "P-G", "unchanged", None),
        (8, None, "unchanged", None),
    ]
    notes = {(e.directive, e.project_id): e.note for e in plan.effects}
    assert notes[(6, "P-F")] == (
        "proposed -> on_hold is not a transition of the standard stage model; "
        "from proposed a project may go to: approved, terminated"
    )
    assert notes[(7, "P-G")] == "already on_hold"
    assert notes[(8, None)] == "no project P-NONE is registered"
    lifecycles = {p.project_id: p.lifecycle for p in plan.projects}
    assert (lifecycles["P-B"], lifecycles["P-C"]) == ("terminated", "on_hold")
    assert actions(plan.ranking) == [
        ("P-D", "accelerate"),  # accelerated: first, whatever its score
        ("P-A", "continue"),  # 0.75, but the top 20% of 4 is rank 1 only (ceil(0.8) = 1)
        ("P-C", "pause"),  # deprioritized (cost): after the others
        ("P-G", "pause"),
    ]


@st.composite
def portfolios(draw: st.DrawFn) -> list[PortfolioProject]:
    count = draw(st.integers(min_value=0, max_value=25))
    objectives = ["growth", "cost", "risk"]
    result = []
    for n in range(count):
        contributions = draw(
            st.dictionaries(
                st.sampled_from(objectives),
                st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]),
                max_size=3,
            )
        )
        result.append(
            project(
                f"P-{n:03d}",
                contributions=contributions,
                key_project=draw(st.booleans()),
                lifecycle=draw(st.sampled_from(["approved", "active", "on_hold", "completed"])),
                planned_finish_date=date(2026, draw(st.integers(1, 3)), 1),
                business_unit=draw(st.sampled_from(["Digital", "Finance"])),
            )
        )
    return result


weights = st.fixed_dictionaries(
    {
        "growth": st.sampled_from([0, 1, 2, 5]),
        "cost": st.sampled_from([1, 3]),
        "risk": st.sampled_from([0, 1]),
    }
)


@given(projects=portfolios(), weights=weights, seed=st.integers())
def test_the_ranking_is_a_deterministic_order_of_the_ranked_projects(
    projects: list[PortfolioProject], weights: dict[str, float], seed: int
) -> None:
    current = strategy(weights)
    ranking = rank_portfolio(projects, current, POLICY)
    shuffled = list(projects)
    random.Random(seed).shuffle(shuffled)
    assert rank_portfolio(shuffled, current, POLICY) == ranking  # arrival order never matters
    assert [entry.rank for entry in ranking] == list(range(1, len(ranking) + 1))
    assert sorted(ids(ranking)) == sorted(p.project_id for p in projects if p.ranked)
    assert all(a.score >= b.score for a, b in itertools.pairwise(ranking))
    for entry in ranking:
        assert 0 <= entry.score <= 1 + POLICY.key_project_bonus


@given(projects=portfolios(), weights=weights)
def test_every_neighbour_pair_is_ordered_by_score_then_key_then_finish_then_id(
    projects: list[PortfolioProject], weights: dict[str, float]
) -> None:
    by_id = {p.project_id: p for p in projects}

    def order(entry: Any) -> tuple[float, bool, date, str]:
        project = by_id[entry.project_id]
        return (
            -entry.score,
            not project.key_project,
            project.planned_finish_date,
            entry.project_id,
        )

    ranking = rank_portfolio(projects, strategy(weights), POLICY)
    for ahead, behind in itertools.pairwise(ranking):
        assert order(ahead) < order(behind)


@given(projects=portfolios(), weights=weights)
def test_actions_respect_the_rule_for_every_portfolio(
    projects: list[PortfolioProject], weights: dict[str, float]
) -> None:
    ranking = rank_portfolio(projects, strategy(weights), POLICY)
    by_id = {p.project_id: p for p in projects}
    for entry in ranking:
        key = by_id[entry.project_id].key_project
        if entry.action == "terminate":
            assert entry.score < POLICY.terminate_below_score
            assert not key
        if entry.action == "accelerate":
            assert entry.score >= POLICY.accelerate_min_score
        if entry.action == "pause":
            assert not key
        if entry.score < POLICY.terminate_below_score and not key:
            assert entry.action == "terminate"


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 1.0])
def test_the_bottom_share_pauses_floor_n_times_share_projects(share: float) -> None:
    policy = PrioritizationPolicy(pause_bottom_share=share, terminate_below_score=0)
    ranking = rank_portfolio(ten_projects(), GROWTH_COST, policy)
    paused = [entry.rank for entry in ranking if entry.action == "pause"]
    expected = int(10 * share)
    assert paused == list(range(11 - expected, 11))
