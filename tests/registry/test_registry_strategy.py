"""Strategy changes against the real broker and database: the event path, the inbox, the SQL.

The rules themselves (ranking, actions, directive effects, the next version's previous ranks,
older versions ignored) are tested on the fake unit of work in `test_registry_strategy_rules.py`.

The portfolio (weights growth 6, cost 3, risk 1, so normalised 0.6 / 0.3 / 0.1; key bonus 0.1):

| project | unit      | contributions             | v1 score             | finish     |
|---------|-----------|---------------------------|----------------------|------------|
| ALPHA   | Digital   | growth 1, cost 0.5        | 0.75                 | 2026-12-31 |
| BRAVO   | Finance   | growth 0.5 (key project)  | 0.30 + 0.10 = 0.40   | 2026-12-31 |
| CHARLIE | Finance   | cost 1, risk 1            | 0.40                 | 2026-09-30 |
| DELTA   | Logistics | cost 0.5                  | 0.15                 | 2026-12-31 |
| ECHO    | Logistics | risk 0.5                  | 0.05                 | 2026-12-31 |
| FOXTROT | Digital   | growth 0.3                | 0.18                 | 2026-12-31 |
| HOTEL   | Digital   | growth 0.5                | 0.30                 | 2026-06-30 |
| INDIA   | Digital   | growth 0.5                | 0.30                 | 2026-06-30 |
| JULIET  | Marketing | growth 0.2, cost 0.2      | 0.18                 | 2026-12-31 |
| GOLF    | Digital   | growth 1 (completed)      | not ranked           |            |
| KILO    | Digital   | proposed through the API  | not ranked           |            |
"""

from __future__ import annotations

from typing import Any

import httpx
import sqlalchemy as sa

from shared.messaging.tables import outbox
from shared.settings import Settings
from tests.harness import Enterprise, RunningService, eventually
from tests.registry.conftest import charter, project_when, published, status

OBJECTIVES_V1 = [
    {"objective_id": "growth", "name": "Grow digital revenue", "weight": 6},
    {"objective_id": "cost", "name": "Cut operating cost", "weight": 3},
    {"objective_id": "risk", "name": "Reduce regulatory risk", "weight": 1},
]


def contributions(**values: float) -> list[dict[str, Any]]:
    return [{"objective_id": key, "contribution": value} for key, value in values.items()]


PORTFOLIO: dict[str, dict[str, Any]] = {
    "ALPHA": {"business_unit": "Digital", "objectives": contributions(growth=1, cost=0.5)},
    "BRAVO": {
        "business_unit": "Finance",
        "objectives": contributions(growth=0.5),
        "key_project": True,
    },
    "CHARLIE": {
        "business_unit": "Finance",
        "objectives": contributions(cost=1, risk=1),
        "planned_finish_date": "2026-09-30",
    },
    "DELTA": {"business_unit": "Logistics", "objectives": contributions(cost=0.5)},
    "ECHO": {"business_unit": "Logistics", "objectives": contributions(risk=0.5)},
    "FOXTROT": {"business_unit": "Digital", "objectives": contributions(growth=0.3)},
    "HOTEL": {
        "business_unit": "Digital",
        "objectives": contributions(growth=0.5),
        "planned_finish_date": "2026-06-30",
    },
    "INDIA": {
        "business_unit": "Digital",
        "objectives": contributions(growth=0.5),
        "planned_finish_date": "2026-06-30",
    },
    "JULIET": {"business_unit": "Marketing", "objectives": contributions(growth=0.2, cost=0.2)},
    "GOLF": {"business_unit": "Digital", "objectives": contributions(growth=1)},
}

STRATEGY_V1: dict[str, Any] = {
    "strategy_version": 1,
    "effective_date": "2026-07-01",
    "objectives": OBJECTIVES_V1,
    "directives": [
        {"action": "pause", "business_unit": "Logistics", "reason": "Warehouse consolidation"},
        {"action": "accelerate", "project_id": "FOXTROT", "reason": "Regulator deadline"},
        {"action": "terminate", "project_id": "GOLF", "reason": "Superseded"},
        {"action": "deprioritize", "project_id": "JULIET", "reason": "Brand refresh can wait"},
        {"action": "terminate", "project_id": "KILO", "reason": "No sponsor"},
    ],
}

# v2: growth and cost weigh the same, risk is dropped, no directives.
STRATEGY_V2: dict[str, Any] = {
    "strategy_version": 2,
    "effective_date": "2026-10-01",
    "objectives": [
        {"objective_id": "growth", "name": "Grow digital revenue", "weight": 1},
        {"objective_id": "cost", "name": "Cut operating cost", "weight": 1},
    ],
}


async def set_up_portfolio(api: httpx.AsyncClient, enterprise: Enterprise) -> None:
    for name, fields in PORTFOLIO.items():
        await enterprise.send("project-started", charter(name, **fields))
    await enterprise.send(
        "status-changed", status("GOLF", lifecycle="completed", percent_complete=100)
    )
    proposal = await api.post("/projects", json=charter("KILO", business_unit="Digital"))
    assert proposal.status_code == 201, proposal.text
    await project_when(api, "GOLF", "GOLF completed", lifecycle="completed")
    for name in PORTFOLIO:
        await project_when(api, name, f"{name} registered")


async def test_a_strategy_change_ranks_recommends_and_applies_its_directives(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await set_up_portfolio(api, enterprise)
    v1 = await enterprise.send("strategy-changed", STRATEGY_V1, key="1")

    [reprioritized] = await published(settings, "portfolio-reprioritized")
    assert reprioritized["strategy_version"] == 1
    # The ranking itself is the rule's (test_registry_strategy_rules.py): here, that it is sent.
    assert [(p["project_id"], p["rank"]) for p in reprioritized["projects"]][:2] == [
        ("FOXTROT", 1),
        ("ALPHA", 2),
    ]
    assert len(reprioritized["projects"]) == 9
    changed = await published(settings, "project-lifecycle-changed", at_least=4)
    assert sorted((e["project_id"], e["from"], e["to"]) for e in changed if e["cause"] == v1) == [
        ("DELTA", "active", "on_hold"),
        ("ECHO", "active", "on_hold"),
        ("KILO", "proposed", "terminated"),
    ]
    objectives = (await api.get("/objectives")).json()
    assert objectives["strategy_version"] == 1
    effects = [(e["project_id"], e["effect"]) for e in objectives["directive_effects"]]
    assert effects[2:4] == [("FOXTROT", "ranked_ahead"), ("GOLF", "impossible")]
    golf = objectives["directive_effects"][3]["note"]
    assert (
        golf
        == "completed is final in the standard stage model: a completed project never changes stage"
    )

    # The ranking is kept per project, and in each project's history with its cause.
    alpha = (await api.get("/projects/ALPHA")).json()
    assert (alpha["rank"], alpha["score"], alpha["recommended_action"]) == (2, 0.75, "accelerate")
    history = (await api.get("/projects/DELTA/history")).json()["items"]
    assert [(h["change"], h["cause"]) for h in history[-2:]] == [
        ("lifecycle", v1),
        ("reprioritized", v1),
    ]
    assert history[-2]["note"] == (
        "strategy v1 directive 1: pause business_unit Logistics: Warehouse consolidation"
    )
    golf_history = (await api.get("/projects/GOLF/history")).json()["items"]
    assert golf_history[-1]["change"] == "directive"

    portfolio = (await api.get("/portfolio")).json()
    assert portfolio["strategy_version"] == 1
    assert [(p["project_id"], p["rank"]) for p in portfolio["projects"]] == [
        (p["project_id"], p["rank"]) for p in reprioritized["projects"]
    ]


async def test_an_out_of_order_or_repeated_strategy_changes_nothing(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    for name in ("ALPHA", "BRAVO", "DELTA"):
        await enterprise.send("project-started", charter(name, **PORTFOLIO[name]))
    for name in ("ALPHA", "BRAVO", "DELTA"):
        await project_when(api, name, f"{name} registered")
    v2 = await enterprise.send("strategy-changed", STRATEGY_V2, key="2")
    await published(settings, "portfolio-reprioritized")
    before = await snapshot(api, registry)

    late = await enterprise.send("strategy-changed", STRATEGY_V1, key="1")  # older, arrives late
    again = await enterprise.send("strategy-changed", STRATEGY_V2, key="2")  # same version again
    await enterprise.send("strategy-changed", STRATEGY_V2, key="2", event_id=v2)  # redelivered

    async def kept() -> list[dict[str, Any]] | None:
        received = (await api.get("/strategies")).json()
        return received if len(received) == 3 else None

    received = await eventually(kept, timeout=30, what="the late and repeated versions kept")
    by_cause = {entry["cause"]: entry for entry in received}
    assert by_cause[v2]["outcome"] == "applied"
    assert by_cause[late]["outcome"] == "ignored"
    assert by_cause[late]["note"] == (
        "version 1 arrived after version 2 was applied: an older or equal version changes nothing"
    )
    assert by_cause[again]["outcome"] == "ignored"

    async def refused() -> list[dict[str, Any]]:
        return list((await api.get("/dead-letters")).json())

    dead = await eventually(refused, timeout=30, what="the redelivered v2 refused")
    assert [entry["event_id"] for entry in dead] == [v2]
    assert dead[0]["reason"].startswith("duplicate:")

    assert await snapshot(api, registry) == before
    assert len(await published(settings, "portfolio-reprioritized")) == 1


async def test_what_if_shows_a_draft_strategys_effects_and_changes_nothing(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await set_up_portfolio(api, enterprise)
    await enterprise.send("strategy-changed", STRATEGY_V2, key="2")
    await published(settings, "portfolio-reprioritized")
    before = await snapshot(api, registry)

    draft = {
        **STRATEGY_V1,
        "strategy_version": 3,
        "directives": [
            {"action": "pause", "business_unit": "Digital", "reason": "Cash preservation"},
        ],
    }
    answer = await api.post("/portfolio/what-if", json=draft)
    assert answer.status_code == 200, answer.text
    what_if = answer.json()
    assert (what_if["draft_version"], what_if["current_version"], what_if["would_apply"]) == (
        3,
        2,
        True,
    )
    # What the draft would do is the rule's (test_registry_strategy_rules.py): here, the route.
    assert len(what_if["directive_effects"]) == 5
    assert len(what_if["ranking"]) == 9
    stale = await api.post("/portfolio/what-if", json={**draft, "strategy_version": 2})
    assert stale.json()["would_apply"] is False

    assert await snapshot(api, registry) == before


async def snapshot(api: httpx.AsyncClient, registry: RunningService) -> dict[str, Any]:
    """Everything a strategy could change: projects, ranking, strategy, histories, outbox."""
    projects = (await api.get("/projects")).json()["items"]
    # Events written to the outbox, dead letters (which also go through it) aside.
    announced = sa.select(sa.func.count()).where(sa.not_(outbox.c.topic.endswith(".dlq")))
    async with registry.runtime.engine.connect() as connection:
        pending = (await connection.execute(announced)).scalar_one()
    return {
        "projects": projects,
        "portfolio": (await api.get("/portfolio")).json(),
        "objectives": (await api.get("/objectives")).json(),
        "histories": {
            p["project_id"]: (await api.get(f"/projects/{p['project_id']}/history")).json()
            for p in projects
        },
        "outbox": pending,
    }
