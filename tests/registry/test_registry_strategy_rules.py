"""Strategy rules on the fake unit of work: ranking, actions, directives, versions (no broker,
no database). The same portfolio as `test_registry_strategy.py` (its docstring has the table);
the event path, the outbox and the SQL of a strategy change are proven there."""

from __future__ import annotations

from typing import Any

import pytest

from services.registry.service_layer.configuration import configuration_from
from services.registry.service_layer.strategy import apply_strategy, what_if
from shared.events.contracts import (
    PortfolioReprioritized,
    ProjectLifecycleChanged,
    StrategyChanged,
)
from tests.fakes.registry import FakeRegistryUnitOfWork, registered_project
from tests.registry.test_registry_strategy import PORTFOLIO, STRATEGY_V1, STRATEGY_V2

pytestmark = pytest.mark.fast


def portfolio() -> FakeRegistryUnitOfWork:
    """The module's portfolio: GOLF completed, KILO proposed (through the API), others active."""
    projects = [
        registered_project(name, lifecycle="completed" if name == "GOLF" else "active", **fields)
        for name, fields in PORTFOLIO.items()
    ]
    projects.append(registered_project("KILO", lifecycle="proposed", business_unit="Digital"))
    return FakeRegistryUnitOfWork(projects)


async def change(uow: FakeRegistryUnitOfWork, data: dict[str, Any], cause: str) -> str:
    """Apply a strategy version as the handler does; returns the outcome kept."""
    strategy = StrategyChanged.model_validate(data)
    received = await apply_strategy(
        uow, strategy, cause=cause, configuration=configuration_from(uow.settings)
    )
    return received.outcome


def table(event: PortfolioReprioritized) -> list[tuple[Any, ...]]:
    return [(p.project_id, p.rank, p.score, p.previous_rank, p.action) for p in event.projects]


async def test_a_strategy_ranks_recommends_and_applies_its_directives() -> None:
    uow = portfolio()
    assert await change(uow, STRATEGY_V1, "v1") == "applied"

    [reprioritized] = uow.published(PortfolioReprioritized)
    assert reprioritized.strategy_version == 1
    assert table(reprioritized) == [
        ("FOXTROT", 1, 0.18, None, "accelerate"),  # the accelerate directive puts it first
        ("ALPHA", 2, 0.75, None, "accelerate"),  # top 20% (ceil(9 x 0.2) = 2) and >= 0.6
        ("BRAVO", 3, 0.4, None, "continue"),  # ties CHARLIE: the key project first
        ("CHARLIE", 4, 0.4, None, "continue"),
        ("HOTEL", 5, 0.3, None, "continue"),  # ties INDIA on score and finish: by id
        ("INDIA", 6, 0.3, None, "continue"),
        ("DELTA", 7, 0.15, None, "pause"),  # paused by the Logistics directive
        ("ECHO", 8, 0.05, None, "terminate"),  # below 0.1
        ("JULIET", 9, 0.18, None, "pause"),  # deprioritized: after every other project
    ]
    whys = {p.project_id: p.why for p in reprioritized.projects}
    assert whys["FOXTROT"] == (
        "rank 1 of 9, score 0.18: strategy v1 accelerates it: Regulator deadline"
    )
    assert whys["ECHO"] == (
        "rank 8 of 9, score 0.05: below the terminate threshold 0.1, it serves the strategy too "
        "little to keep funding"
    )
    assert (
        whys["DELTA"] == "rank 7 of 9, score 0.15: strategy v1 pauses it: Warehouse consolidation"
    )

    moves = [
        (e.project_id, e.from_stage, e.to_stage) for e in uow.published(ProjectLifecycleChanged)
    ]
    assert sorted(moves) == [
        ("DELTA", "active", "on_hold"),
        ("ECHO", "active", "on_hold"),
        ("KILO", "proposed", "terminated"),
    ]
    [received] = uow.strategies.received
    effects = [(e["directive"], e["project_id"], e["effect"]) for e in received.directive_effects]
    assert effects == [
        (1, "DELTA", "moved"),
        (1, "ECHO", "moved"),
        (2, "FOXTROT", "ranked_ahead"),
        (3, "GOLF", "impossible"),
        (4, "JULIET", "ranked_behind"),
        (5, "KILO", "moved"),
    ]
    assert received.directive_effects[3]["note"] == (
        "completed is final in the standard stage model: a completed project never changes stage"
    )

    # The ranking is kept per project, and in each project's history with its cause.
    alpha = uow.projects.projects["ALPHA"]
    assert (alpha.rank, alpha.score, alpha.recommended_action) == (2, 0.75, "accelerate")
    delta = uow.projects.history_of("DELTA")
    assert [(h.change, h.cause) for h in delta] == [("lifecycle", "v1"), ("reprioritized", "v1")]
    assert delta[0].note == (
        "strategy v1 directive 1: pause business_unit Logistics: Warehouse consolidation"
    )
    assert [h.change for h in uow.projects.history_of("GOLF")] == ["directive"]


async def test_the_next_version_ranks_anew_after_the_previous_ranks() -> None:
    uow = portfolio()
    await change(uow, STRATEGY_V1, "v1")
    assert await change(uow, STRATEGY_V2, "v2") == "applied"

    second = uow.published(PortfolioReprioritized)[-1]
    assert table(second) == [
        ("ALPHA", 1, 0.75, 2, "accelerate"),
        ("CHARLIE", 2, 0.5, 4, "continue"),
        ("BRAVO", 3, 0.35, 3, "continue"),
        ("HOTEL", 4, 0.25, 5, "continue"),
        ("INDIA", 5, 0.25, 6, "continue"),
        ("DELTA", 6, 0.25, 7, "continue"),  # on hold, and no directive pauses it any more
        ("JULIET", 7, 0.2, 9, "continue"),
        ("FOXTROT", 8, 0.15, 1, "continue"),
        ("ECHO", 9, 0.0, 8, "terminate"),
    ]
    delta = next(p for p in second.projects if p.project_id == "DELTA")
    assert delta.why.endswith("(it is on hold: resume it)")


async def test_an_older_or_equal_version_is_kept_as_ignored_and_changes_nothing() -> None:
    uow = FakeRegistryUnitOfWork(
        [registered_project(name, **PORTFOLIO[name]) for name in ("ALPHA", "BRAVO", "DELTA")]
    )
    await change(uow, STRATEGY_V2, "v2")
    ranks = {p.project_id: (p.rank, p.score, p.lifecycle) for p in await uow.projects.all()}
    events, history = len(uow.events), len(uow.projects.history)

    assert await change(uow, STRATEGY_V1, "late") == "ignored"  # older, arrives late
    assert await change(uow, STRATEGY_V2, "again") == "ignored"  # same version again

    late, again = uow.strategies.received[1:]
    assert late.note == (
        "version 1 arrived after version 2 was applied: an older or equal version changes nothing"
    )
    assert again.outcome == "ignored"
    assert {p.project_id: (p.rank, p.score, p.lifecycle) for p in await uow.projects.all()} == ranks
    assert (len(uow.events), len(uow.projects.history)) == (events, history)
    assert uow.strategies.locks == 3  # every version waits for the one before it


async def test_what_if_shows_a_drafts_effects_and_ranking_and_changes_nothing() -> None:
    uow = portfolio()
    await change(uow, STRATEGY_V2, "v2")
    before = (len(uow.events), len(uow.projects.history), len(uow.strategies.received))
    lifecycles = {p.project_id: p.lifecycle for p in await uow.projects.all()}
    draft = StrategyChanged.model_validate(
        {
            **STRATEGY_V1,
            "strategy_version": 3,
            "directives": [
                {"action": "pause", "business_unit": "Digital", "reason": "Cash preservation"}
            ],
        }
    )
    configuration = configuration_from(uow.settings)

    outcome = await what_if(uow, draft, configuration)

    assert (outcome.current_version, outcome.would_apply) == (2, True)
    assert [(e.project_id, e.effect, e.from_stage, e.to_stage) for e in outcome.plan.effects] == [
        ("ALPHA", "moved", "active", "on_hold"),
        ("FOXTROT", "moved", "active", "on_hold"),
        ("HOTEL", "moved", "active", "on_hold"),
        ("INDIA", "moved", "active", "on_hold"),
        ("KILO", "impossible", "proposed", None),
    ]
    ranking = {entry.project_id: entry for entry in outcome.plan.ranking}
    assert ranking["ALPHA"].action == "pause"
    lifecycles_after = {entry.project_id: entry.lifecycle for entry in outcome.plan.projects}
    assert lifecycles_after["ALPHA"] == "on_hold"  # as the draft's directive would leave it
    assert ranking["ALPHA"].previous_rank == 1
    assert [entry.project_id for entry in outcome.plan.ranking][:3] == ["ALPHA", "BRAVO", "CHARLIE"]

    stale = await what_if(uow, draft.model_copy(update={"strategy_version": 2}), configuration)
    assert not stale.would_apply
    assert stale.note == (
        "version 2 is not newer than the current version 2: sent as an event, it would be ignored"
    )
    assert (len(uow.events), len(uow.projects.history), len(uow.strategies.received)) == before
    assert {p.project_id: p.lifecycle for p in await uow.projects.all()} == lifecycles
