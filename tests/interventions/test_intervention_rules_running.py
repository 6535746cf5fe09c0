"""Interventions in the running allocation service, from events (real broker and database): the
scarce expert goes to the more important project, amber too long is proposed by the clock, a
project manager asks advice on their own project only, a decline, an end date passing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from services.allocation.adapters.tables import ProjectHealthRow
from services.allocation.service_layer.interventions import intervention_round
from shared.settings import Settings
from tests.allocation.test_allocation_flow import ranking, registered
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, RunningService, detail_text, eventually, read_topic

pytestmark = pytest.mark.e2e

TODAY = date.today()
ROUNDS = "pmo_allocation_intervention_rounds_total"


def assessed(project_id: str, health: str, *, since_days: float, code: str) -> dict[str, Any]:
    """A project-health-assessed as monitoring publishes it."""
    now = datetime.now(UTC)
    return {
        "project_id": project_id,
        "health": health,
        "reasons": [{"code": code, "message": f"{code} below threshold", "severity": health}],
        "assessed_at": now.isoformat(),
        "at_risk_since": (now - timedelta(days=since_days)).isoformat(),
        "trigger": "status-changed",
    }


@dataclass
class Pmo:
    service: RunningService
    api: httpx.AsyncClient
    enterprise: Enterprise

    async def interventions(self, project_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"/interventions?project_id={project_id}")
        return list(response.json())

    async def proposal(self, project_id: str) -> dict[str, Any]:
        async def found() -> dict[str, Any] | None:
            rows = await self.interventions(project_id)
            return rows[0] if rows else None

        return await eventually(found, timeout=45, what=f"a proposal for {project_id}")

    async def expert(self, resource_id: str, specialty: str, capacity: float = 1.0) -> None:
        created = await self.api.post(
            "/resources",
            json={
                "resource_id": resource_id,
                "name": resource_id,
                "skills": ["project-management"],
                "capacity_fte": capacity,
            },
        )
        assert created.status_code == 201, created.text
        marked = await self.api.put(
            f"/resources/{resource_id}/specialties", json={"specialties": [specialty]}
        )
        assert marked.status_code == 200, marked.text

    async def portfolio(self, *ranked: str, managers: dict[str, str] | None = None) -> None:
        """The projects registered, active, key projects, ranked in this order."""
        for project_id in ranked:
            manager = (managers or {}).get(project_id, "pm@example.com")
            await self.enterprise.send(
                "project-registered", registered(project_id, manager=manager, key_project=True)
            )
        await self.enterprise.send("portfolio-reprioritized", ranking(1, *ranked), key="1")

        async def known() -> bool:
            projects = {p["project_id"]: p for p in (await self.api.get("/projects")).json()}
            return all(projects.get(p, {}).get("rank") is not None for p in ranked)

        await eventually(known, timeout=45, what="the portfolio known to allocation")


@pytest.fixture
async def pmo(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    admin_headers: dict[str, str],
) -> AsyncIterator[Pmo]:
    service = await start_service(
        "allocation",
        allocation_intervention_check_interval_s=0.2,
        allocation_intervention_amber_after="P7D",
        allocation_intervention_fte=1.0,
    )
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        yield Pmo(service, api, enterprise)


async def test_the_scarce_expert_goes_to_the_more_important_project_and_a_decline_frees_them(
    pmo: Pmo, settings: Settings
) -> None:
    await pmo.expert("exp-ana", "schedule-recovery")
    await pmo.portfolio("PRJ-TOP", "PRJ-LOW")
    # The less important project turns red first: Ana is proposed to it.
    await pmo.enterprise.send(
        "project-health-assessed", assessed("PRJ-LOW", "red", since_days=1, code="schedule")
    )
    low = await pmo.proposal("PRJ-LOW")
    assert low["expert_id"] == "exp-ana"
    # Then the more important one: Ana is proposed there, the other proposal waits.
    await pmo.enterprise.send(
        "project-health-assessed", assessed("PRJ-TOP", "red", since_days=1, code="schedule")
    )
    top = await pmo.proposal("PRJ-TOP")
    assert top["expert_id"] == "exp-ana"
    low = (await pmo.api.get(f"/interventions/{low['intervention_id']}")).json()
    assert low["expert_id"] is None
    assert "PRJ-TOP ranks 1 and PRJ-LOW ranks 2" in low["staffing"]
    refused = await pmo.api.post(f"/interventions/{low['intervention_id']}/accept")
    assert refused.status_code == 409
    assert detail_text(refused).startswith(
        f"No PMO expert is free for intervention {low['intervention_id']}"
    )
    # The proposal's new staffing was published again (consumers keep the newest).
    records = await read_topic(
        settings, f"{settings.topic_prefix}intervention-proposed", at_least=3
    )
    low_events = [
        json.loads(r.value)["data"]
        for r in records
        if json.loads(r.value)["data"]["intervention_id"] == low["intervention_id"]
    ]
    assert [event["expert_id"] for event in low_events] == ["exp-ana", None]

    # A project manager may not decide; an administrator declines, saying why.
    as_manager = await pmo.api.post(
        f"/interventions/{top['intervention_id']}/decline",
        json={"reason": "no"},
        headers=bearer("project_manager", "pm@example.com"),
    )
    assert as_manager.status_code == 403
    declined = await pmo.api.post(
        f"/interventions/{top['intervention_id']}/decline",
        json={"reason": "The sponsor brings in an interim manager"},
    )
    assert declined.status_code == 200, declined.text
    assert declined.json()["state"] == "declined"
    again = await pmo.api.post(f"/interventions/{top['intervention_id']}/accept")
    assert again.status_code == 409
    assert "is declined, not proposed" in detail_text(again)
    # Ana is free again: the waiting proposal has her now, and nobody was allocated.
    low = (await pmo.api.get(f"/interventions/{low['intervention_id']}")).json()
    assert low["expert_id"] == "exp-ana"
    assert (await pmo.api.get("/allocations?resource_id=exp-ana")).json() == []
    records = await read_topic(settings, f"{settings.topic_prefix}intervention-declined")
    assert [json.loads(r.value)["data"]["reason"] for r in records] == [
        "The sponsor brings in an interim manager"
    ]


def clock_rounds(service: RunningService) -> float:
    registry = service.runtime.metrics.registry
    return registry.get_sample_value(ROUNDS, {"service": "allocation"}) or 0.0


async def test_a_key_project_amber_longer_than_the_setting_gets_an_expert_from_the_clock(
    pmo: Pmo, settings: Settings
) -> None:
    await pmo.expert("exp-carl", "cost-control")
    await pmo.portfolio("PRJ-LONG", "PRJ-SHORT")
    # Amber for 10 days (the setting: 7) and for 2 days; the handler only records amber.
    await pmo.enterprise.send(
        "project-health-assessed", assessed("PRJ-LONG", "amber", since_days=10, code="cost")
    )
    await pmo.enterprise.send(
        "project-health-assessed", assessed("PRJ-SHORT", "amber", since_days=2, code="cost")
    )

    async def both_recorded() -> bool:
        async with pmo.service.runtime.sessions() as session:
            rows = (await session.exec(select(ProjectHealthRow))).all()
        return {row.project_id for row in rows} == {"PRJ-LONG", "PRJ-SHORT"}

    await eventually(both_recorded, timeout=45, what="both healths recorded")
    target = clock_rounds(pmo.service) + 2

    async def rounds_done() -> bool:
        return clock_rounds(pmo.service) >= target

    await eventually(rounds_done, timeout=30, what="two more clock rounds")
    long = await pmo.proposal("PRJ-LONG")
    assert long["specialty"] == "cost-control"
    assert long["expert_id"] == "exp-carl"
    assert long["reasons"][0] == "key project amber for longer than the PMO tolerates"
    assert await pmo.interventions("PRJ-SHORT") == []


async def test_a_manager_asks_advice_on_their_own_project_only_and_it_ends_with_its_date(
    pmo: Pmo, settings: Settings
) -> None:
    await pmo.expert("exp-dora", "agile-coaching")
    await pmo.portfolio(
        "PRJ-MINE",
        "PRJ-THEIRS",
        managers={"PRJ-MINE": "me@example.com", "PRJ-THEIRS": "you@example.com"},
    )
    until = TODAY + timedelta(days=13)
    ask = {
        "topic": "Agile Coaching",
        "fte": 0.2,
        "until": until.isoformat(),
        "note": "Scrum adoption",
    }
    mine = bearer("project_manager", "me@example.com")

    refused = await pmo.api.post("/projects/PRJ-THEIRS/advice", json=ask, headers=mine)
    assert refused.status_code == 403
    assert "does not manage PRJ-THEIRS" in detail_text(refused)
    viewer = await pmo.api.post("/projects/PRJ-MINE/advice", json=ask, headers=bearer("viewer"))
    assert viewer.status_code == 403
    unknown = await pmo.api.post(
        "/projects/PRJ-MINE/advice", json={**ask, "topic": "tax law"}, headers=mine
    )
    assert unknown.status_code == 422
    assert detail_text(unknown) == (
        "No PMO expert has the specialty 'tax-law'; the PMO offers: agile-coaching."
    )

    asked = await pmo.api.post("/projects/PRJ-MINE/advice", json=ask, headers=mine)
    assert asked.status_code == 201, asked.text
    advice = asked.json()
    assert (advice["origin"], advice["specialty"], advice["expert_id"]) == (
        "advice",
        "agile-coaching",
        "exp-dora",
    )
    assert advice["requested_by"] == "me@example.com"
    assert advice["end"] == until.isoformat()
    accepted = await pmo.api.post(f"/interventions/{advice['intervention_id']}/accept")
    assert accepted.status_code == 200, accepted.text

    async def allocated() -> bool:
        rows = (await pmo.api.get("/allocations?resource_id=exp-dora")).json()
        return bool(rows) and all(row["fte"] == pytest.approx(0.2) for row in rows)

    await eventually(allocated, timeout=45, what="the expert allocated to the advice")

    # The clock as it will run the day after the end date: the intervention ends, Dora is free.
    await intervention_round(pmo.service.runtime, datetime.now(UTC) + timedelta(days=14))
    ended = (await pmo.api.get(f"/interventions/{advice['intervention_id']}")).json()
    assert ended["state"] == "ended"
    assert ended["end_reason"] == f"end date {until} passed"

    async def released() -> bool:
        rows: list[dict[str, Any]] = (await pmo.api.get("/allocations?resource_id=exp-dora")).json()
        return rows == []

    await eventually(released, timeout=45, what="the expert released after the end date")
    records = await read_topic(settings, f"{settings.topic_prefix}intervention-ended")
    [event] = [json.loads(r.value)["data"] for r in records]
    assert (event["intervention_id"], event["was_accepted"]) == (advice["intervention_id"], True)
