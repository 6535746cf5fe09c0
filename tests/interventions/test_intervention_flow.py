"""End to end from events: a red key project gets a PMO expert proposed, accepted, allocated,
notified, in its history, and released on recovery (registry, monitoring, allocation and
notifications against the real broker and database)."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.allocation.domain.requests import iso_week
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, read_topic, webhook_receiver

pytestmark = pytest.mark.e2e

TODAY = date.today()
MANAGER = "pm.atlas@example.com"
INTERVENTION_NOTICES = [
    "intervention-proposed",
    "intervention-accepted",
    "intervention-declined",
    "intervention-ended",
]


def charter(project_id: str) -> dict[str, Any]:
    """A key project half-way through its year: planned value today is half its budget."""
    return {
        "project_id": project_id,
        "name": "Atlas ERP migration",
        "business_unit": "Operations",
        "manager": MANAGER,
        "start_date": (TODAY - timedelta(days=182)).isoformat(),
        "planned_finish_date": (TODAY + timedelta(days=182)).isoformat(),
        "budget": 100000,
        "currency": "EUR",
        "key_project": True,
    }


def report(project_id: str, percent_complete: float, actual_cost: float) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "as_of": TODAY.isoformat(),
        "percent_complete": percent_complete,
        "actual_cost": actual_cost,
    }


async def published(settings: Settings, event: str) -> list[dict[str, Any]]:
    records = await read_topic(settings, f"{settings.topic_prefix}{event}", at_least=1, timeout=30)
    return [json.loads(record.value)["data"] for record in records]


async def test_a_red_key_project_gets_an_expert_who_is_released_when_it_recovers(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    async with webhook_receiver() as receiver:
        registry, _, allocation, notifications = await asyncio.gather(
            start_service("registry"),
            start_service("monitoring"),
            start_service("allocation", allocation_intervention_check_interval_s=0.5),
            start_service("notifications"),
        )
        allocation_api = httpx.AsyncClient(base_url=allocation.base_url, headers=admin_headers)
        notifications_api = httpx.AsyncClient(
            base_url=notifications.base_url, headers=admin_headers
        )
        registry_api = httpx.AsyncClient(base_url=registry.base_url, headers=admin_headers)

        # The PMO's experts: Ana recovers schedules, Carl controls costs.
        for resource_id, name, specialty in (
            ("exp-ana", "Ana Ortiz", "Schedule Recovery"),
            ("exp-carl", "Carl Berg", "cost-control"),
        ):
            created = await allocation_api.post(
                "/resources",
                json={
                    "resource_id": resource_id,
                    "name": name,
                    "skills": ["project-management"],
                    "capacity_fte": 1.0,
                },
            )
            assert created.status_code == 201, created.text
            marked = await allocation_api.put(
                f"/resources/{resource_id}/specialties", json={"specialties": [specialty]}
            )
            assert marked.status_code == 200, marked.text
        experts = {
            e["resource_id"]: e["specialties"]
            for e in (await allocation_api.get("/experts")).json()
        }
        assert experts == {"exp-ana": ["schedule-recovery"], "exp-carl": ["cost-control"]}

        # The PMO hears of every intervention; the project manager of their project's.
        subscription_ids = {}
        for who, project_filter in (("pmo", None), ("manager", "PRJ-ATLAS")):
            made = await notifications_api.post(
                "/subscriptions",
                json={
                    "name": f"{who}: interventions",
                    "channel": "webhook",
                    "recipient": receiver.url,
                    "secret": "interventions-webhook-secret",
                    "event_types": INTERVENTION_NOTICES,
                    "project_id": project_filter,
                    "throttle_window_s": 0,
                },
            )
            assert made.status_code == 201, made.text
            subscription_ids[made.json()["id"]] = who

        await enterprise.send("project-started", charter("PRJ-ATLAS"))
        # Earned value 30% of the budget where 50% was planned: SPI 0.6, red on schedule.
        await enterprise.send("status-changed", report("PRJ-ATLAS", 30, 30000))

        async def proposed() -> dict[str, Any] | None:
            found = (await allocation_api.get("/interventions?project_id=PRJ-ATLAS")).json()
            return found[0] if found else None

        proposal = await eventually(proposed, timeout=60, what="an intervention proposed")
        assert proposal["origin"] == "risk"
        assert proposal["state"] == "proposed"
        assert proposal["specialty"] == "schedule-recovery"
        assert proposal["expert_id"] == "exp-ana"
        assert proposal["fte"] == settings.allocation_intervention_fte
        assert "key project red" in proposal["reasons"]
        intervention_id = proposal["intervention_id"]
        # Nobody is allocated before an administrator accepts.
        assert (await allocation_api.get("/allocations?resource_id=exp-ana")).json() == []

        accepted = await allocation_api.post(
            f"/interventions/{intervention_id}/accept", json={"note": "two days a week"}
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["state"] == "accepted"
        request_id = accepted.json()["request_id"]

        async def allocated() -> list[dict[str, Any]] | None:
            rows = (await allocation_api.get("/allocations?resource_id=exp-ana")).json()
            return rows or None

        lines = await eventually(allocated, timeout=45, what="the expert allocated")
        assert {(line["request_id"], line["project_id"]) for line in lines} == {
            (request_id, "PRJ-ATLAS")
        }
        assert all(line["fte"] == pytest.approx(0.5) for line in lines)
        decisions = [
            d
            for d in await published(settings, "resource-allocated")
            if d["request_id"] == request_id
        ]
        assert decisions[0]["resource_id"] == "exp-ana"
        assert decisions[0]["status"] == "granted"

        # Notified to the PMO and to the project manager (each subscription, each step).
        async def notified(step: str) -> set[str] | None:
            deliveries = (await notifications_api.get(f"/deliveries?event_type=pmo.{step}")).json()
            got = {subscription_ids[d["subscription_id"]] for d in deliveries}
            return got if got == {"pmo", "manager"} else None

        await eventually(
            lambda: notified("intervention-proposed"), timeout=45, what="proposal notices"
        )
        await eventually(
            lambda: notified("intervention-accepted"), timeout=45, what="acceptance notices"
        )

        async def history_notes(step: str) -> list[str] | None:
            history = (await registry_api.get("/projects/PRJ-ATLAS/history")).json()["items"]
            notes = [
                entry["note"]
                for entry in history
                if entry["change"] == "intervention" and entry["after"]["step"] == step
            ]
            return notes or None

        [accepted_note] = await eventually(
            lambda: history_notes("intervention-accepted"), timeout=45, what="history: accepted"
        )
        assert "exp-ana (schedule-recovery)" in accepted_note
        [proposed_note] = await eventually(
            lambda: history_notes("intervention-proposed"), timeout=45, what="history: proposed"
        )
        assert "key project red" in proposed_note

        # The project recovers: SPI 1.1 and CPI 1.1, green again.
        await enterprise.send("status-changed", report("PRJ-ATLAS", 55, 50000))

        async def ended() -> dict[str, Any] | None:
            row = (await allocation_api.get(f"/interventions/{intervention_id}")).json()
            return row if row["state"] == "ended" else None

        finished = await eventually(ended, timeout=60, what="the intervention ended on recovery")
        assert finished["end_reason"] == "project recovered (health back to green)"

        this_week = iso_week(TODAY)

        async def released() -> bool:
            rows: list[dict[str, Any]] = (
                await allocation_api.get(f"/allocations?resource_id=exp-ana&from_week={this_week}")
            ).json()
            return rows == []

        await eventually(released, timeout=45, what="the expert released")
        await eventually(lambda: notified("intervention-ended"), timeout=45, what="end notices")
        [ended_note] = await eventually(
            lambda: history_notes("intervention-ended"), timeout=45, what="history: ended"
        )
        assert ended_note == (
            "PMO intervention ended: project recovered (health back to green); exp-ana released"
        )
        # The release is a fresh decision asking nothing, not a shortfall: the project stays green.
        decisions = [
            d
            for d in await published(settings, "resource-allocated")
            if d["request_id"] == request_id
        ]
        assert (decisions[-1]["fte_requested"], decisions[-1]["fte_granted"]) == (0.0, 0.0)
        for client in (allocation_api, notifications_api, registry_api):
            await client.aclose()
