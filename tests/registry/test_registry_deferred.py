"""Events that overtake their project's registration are kept, and applied once it is there."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import sqlalchemy as sa

from shared.messaging.tables import parked_event
from shared.settings import Settings
from tests.harness import Enterprise, RunningService, eventually, structured_event
from tests.registry.conftest import allocated, assessed, charter, project_when, published, status


async def parked(registry: RunningService) -> int:
    async with registry.runtime.engine.connect() as connection:
        count = await connection.execute(sa.select(sa.func.count()).select_from(parked_event))
        return int(count.scalar_one())


async def test_reports_health_and_allocations_before_the_start_are_applied_after_it(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    hold = await enterprise.send(
        "status-changed", status("PRJ-LATE", lifecycle="on_hold", percent_complete=20)
    )
    risk = await enterprise.send("project-health-assessed", assessed("PRJ-LATE"))
    await enterprise.send(
        "resource-allocated", allocated("PRJ-LATE", "REQ-1", 1.0, 0.25, "partial")
    )
    await enterprise.send(
        "resource-conflict-resolved",
        {
            "conflict_id": "CONFLICT-1",
            "skill": "data-engineer",
            "weeks": ["2026-W30"],
            "winners": [],
            "losers": [
                {
                    "request_id": "REQ-2",
                    "project_id": "PRJ-LATE",
                    "fte_granted": 0,
                    "fte_requested": 0.5,
                    "why": "lower strategic score",
                }
            ],
            "rationale": "one data engineer, two projects",
        },
    )
    await eventually(lambda: _at_least(registry, 4), timeout=30, what="four events parked")
    assert (await api.get("/projects/PRJ-LATE")).status_code == 404

    started = await enterprise.send("project-started", charter("PRJ-LATE"))

    project = await project_when(
        api, "PRJ-LATE", "the parked events applied", lifecycle="on_hold", health="red"
    )
    assert project["percent_complete"] == 20
    assert project["health_reasons"] == ["schedule"]
    assert project["open_shortfall_fte"] == 1.25  # 0.75 of REQ-1 and all 0.5 of REQ-2
    assert await parked(registry) == 0
    changed = await published(settings, "project-lifecycle-changed")
    assert [(e["from"], e["to"], e["cause"]) for e in changed] == [("active", "on_hold", hold)]
    history = (await api.get("/projects/PRJ-LATE/history")).json()["items"]
    # Registered first; the kept events then in the order they came (across topics: any).
    assert history[0]["change"] == "registered"
    assert history[0]["cause"] == started
    assert sorted(h["change"] for h in history[1:]) == [
        "health",
        "lifecycle",
        "resource_shortfall",
        "resource_shortfall",
        "status",
    ]
    health = next(h for h in history if h["change"] == "health")
    assert (health["cause"], health["after"]) == (risk, {"health": "red", "reasons": ["schedule"]})
    shortfalls = [h["after"] for h in history if h["change"] == "resource_shortfall"]
    assert shortfalls[-1] == {"open_shortfall_fte": 1.25}


async def test_a_project_proposed_through_the_api_releases_the_events_kept_for_it(
    registry: RunningService, api: httpx.AsyncClient, enterprise: Enterprise
) -> None:
    await enterprise.send("status-changed", status("PRJ-API", percent_complete=35))
    await eventually(lambda: _at_least(registry, 1), timeout=30, what="the report parked")

    assert (await api.post("/projects", json=charter("PRJ-API"))).status_code == 201

    project = await project_when(
        api, "PRJ-API", "the report applied after the API registration", percent_complete=35
    )
    assert project["lifecycle"] == "proposed"
    assert await parked(registry) == 0


async def test_the_newest_assessment_wins_whatever_the_arrival_order(
    api: httpx.AsyncClient, enterprise: Enterprise, settings: Settings
) -> None:
    await enterprise.send("project-started", charter("PRJ-H"))
    await project_when(api, "PRJ-H", "PRJ-H registered", lifecycle="active")
    now = datetime.now(UTC)
    # Monitoring found the project amber, then green; the two arrive the other way round, and
    # the older one's envelope even claims a later time: the assessment's own time decides.
    green = assessed("PRJ-H", "green", at=now + timedelta(minutes=5), metrics={"spi_t": 1.0})
    amber = assessed("PRJ-H", "amber", at=now, metrics={"spi_t": 0.93})
    await enterprise.send("project-health-assessed", green)
    await project_when(api, "PRJ-H", "PRJ-H green", health="green")
    value, headers = structured_event("project-health-assessed", amber, source="/pmo/monitoring")
    envelope = json.loads(value)
    envelope["time"] = (now + timedelta(hours=1)).isoformat()
    await enterprise.send_raw(
        "project-health-assessed", json.dumps(envelope).encode(), headers=headers, key="PRJ-H"
    )

    async def handled() -> bool:
        metrics = (await api.get("/metrics")).text
        return (
            'pmo_events_consumed_total{outcome="processed",service="registry",'
            f'topic="{settings.topic_prefix}project-health-assessed"}} 2.0'
        ) in metrics

    await eventually(handled, timeout=30, what="the older assessment handled")

    project = (await api.get("/projects/PRJ-H")).json()
    assert (project["health"], project["health_metrics"]) == ("green", {"spi_t": 1.0})
    history = (await api.get("/projects/PRJ-H/history")).json()["items"]
    assert [h["after"] for h in history if h["change"] == "health"] == [
        {"health": "green", "reasons": []}
    ]


async def _at_least(registry: RunningService, count: int) -> bool:
    return await parked(registry) >= count
