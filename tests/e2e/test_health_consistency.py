"""One truthful health everywhere: monitoring, registry, report, digest and escalation agree.

Against the real broker and database, with registry, monitoring and notifications running: a
project going red → amber → green and a project always green show the same health and figures
in every view; an old assessment arriving late changes nothing; a re-baselined project's CPI
follows the new budget everywhere.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from services.notifications.adapters.tables import DeliveryRow
from services.notifications.service_layer.clock import NotificationClock
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually, read_topic, webhook_receiver

pytestmark = pytest.mark.e2e

FIGURES = ("spi_t", "cpi", "eac")


def charter(project_id: str, budget: float = 100_000) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Digital",
        "manager": "ada.lovelace@example.com",
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        "budget": budget,
        "currency": "EUR",
    }


def report(project_id: str, as_of: date, percent: float, cost: float) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "as_of": as_of.isoformat(),
        "percent_complete": percent,
        "actual_cost": cost,
    }


class Views:
    """Each service's view of a project's health, read from its HTTP API."""

    def __init__(self, headers: dict[str, str], **services: RunningService) -> None:
        self.clients = {
            name: httpx.AsyncClient(base_url=service.base_url, headers=headers, timeout=30)
            for name, service in services.items()
        }

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    async def of(self, project_id: str) -> dict[str, tuple[Any, ...] | None]:
        """(health, SPI(t), CPI, EAC) in monitoring, the registry, its report and the digest."""
        monitoring = await self.clients["monitoring"].get(f"/projects/{project_id}/health")
        registry = await self.clients["registry"].get(f"/projects/{project_id}")
        report = await self.clients["registry"].get("/reports/portfolio", params={"format": "json"})
        digest = await self.clients["notifications"].get("/portfolio")
        found: dict[str, tuple[Any, ...] | None] = {}
        if monitoring.status_code == 200:
            body = monitoring.json()
            found["monitoring"] = (body["health"], *(body["metrics"].get(f) for f in FIGURES))
        if registry.status_code == 200:
            body = registry.json()
            metrics = body["health_metrics"]
            found["registry"] = (body["health"], *(metrics.get(f) for f in FIGURES))
        for row in report.json()["projects"]:
            if row["project_id"] == project_id:
                found["report"] = (row["health"], *(row[f] for f in FIGURES))
        for line in digest.json()["lines"]:
            if line["project_id"] == project_id:
                # The digest shows SPI, SPI(t) and CPI (no EAC).
                found["digest"] = (line["health"], line["spi_t"], line["cpi"])
        return found

    async def agree(
        self, project_id: str, health: str, what: str, *, cpi: float | None = None
    ) -> tuple[Any, ...]:
        """Wait until every view shows monitoring's assessment, at `health` (and `cpi` if
        given); return it."""

        async def probe() -> tuple[Any, ...] | None:
            views = await self.of(project_id)
            shown = views.get("monitoring")
            if shown is None or shown[0] != health or len(views) < 4:
                return None
            if cpi is not None and shown[2] != cpi:
                return None
            same = (
                views["registry"] == shown
                and views["report"] == shown
                and views["digest"] == shown[:3]
            )
            return shown if same else None

        return await eventually(probe, timeout=45, what=what)


async def consumed(service: RunningService, name: str, topic: str) -> float:
    """How many events of `topic` the service has processed (its Prometheus counter)."""
    async with httpx.AsyncClient(base_url=service.base_url, timeout=30) as client:
        text = (await client.get("/metrics")).text
    pattern = (
        r'pmo_events_consumed_total\{outcome="processed",service="'
        + re.escape(name)
        + r'",topic="'
        + re.escape(topic)
        + r'"\} ([0-9.e+]+)'
    )
    found = re.search(pattern, text)
    return float(found.group(1)) if found else 0.0


@pytest.fixture
async def system(start_service: ServiceStarter, admin_headers: dict[str, str]) -> Any:
    registry, monitoring, notifications = await asyncio.gather(
        start_service("registry"),
        start_service("monitoring", monitoring_staleness_check_interval_s=3600.0),
        start_service("notifications"),
    )
    views = Views(
        admin_headers, registry=registry, monitoring=monitoring, notifications=notifications
    )
    yield registry, monitoring, notifications, views
    await views.close()


async def test_red_amber_green_and_always_green_read_the_same_everywhere_and_late_news_is_ignored(
    system: Any, enterprise: Enterprise, settings: Settings, admin_headers: dict[str, str]
) -> None:
    registry, _, notifications, views = system
    async with (
        webhook_receiver() as receiver,
        httpx.AsyncClient(
            base_url=notifications.base_url, headers=admin_headers, timeout=30
        ) as notifications_api,
    ):
        subscribed = await notifications_api.post(
            "/subscriptions",
            json={
                "name": "PMO director",
                "channel": "webhook",
                "recipient": receiver.url,
                "secret": "escalation-secret-0123456789",
                "event_types": [],
                "escalation_target": True,
            },
        )
        assert subscribed.status_code == 201, subscribed.text
        await enterprise.send("project-started", charter("PRJ-PATH"))
        await enterprise.send("project-started", charter("PRJ-CALM"))

        # SPI(t) 0.89 (red) → 0.9379 (amber) → 0.988 (green); CPI 1 throughout.
        await enterprise.send("status-changed", report("PRJ-PATH", date(2026, 7, 2), 44.5, 44_500))
        red = await views.agree("PRJ-PATH", "red", "PRJ-PATH red everywhere")
        assert red == ("red", 0.89, 1.0, 100_000)

        await enterprise.send("status-changed", report("PRJ-PATH", date(2026, 7, 16), 50.5, 50_500))
        amber = await views.agree("PRJ-PATH", "amber", "PRJ-PATH amber everywhere")
        assert amber == ("amber", 0.9379, 1.0, 100_000)
        # The escalation, when it comes, says what monitoring says now: amber (not "red").
        clock = NotificationClock(notifications.runtime)
        assert await clock.escalate(datetime.now(UTC) + timedelta(days=30)) == 1
        async with notifications.runtime.sessions() as session:
            (escalation,) = (
                await session.exec(
                    select(DeliveryRow).where(
                        col(DeliveryRow.event_type) == "pmo.project-escalated"
                    )
                )
            ).all()
        assert escalation.project_id == "PRJ-PATH"
        assert escalation.context["escalation"]["severity"] == "amber"
        assert escalation.context["escalation"]["metrics"]["spi_t"] == 0.9379
        assert [r["code"] for r in escalation.context["escalation"]["reasons"]] == ["schedule"]

        await enterprise.send("status-changed", report("PRJ-PATH", date(2026, 7, 30), 57, 57_000))
        green = await views.agree("PRJ-PATH", "green", "PRJ-PATH green everywhere")
        assert green == ("green", 0.988, 1.0, 100_000)

        # Never at risk, so never alerted: its assessment reaches every view all the same.
        await enterprise.send("status-changed", report("PRJ-CALM", date(2026, 7, 2), 50.4, 50_000))
        calm = await views.agree("PRJ-CALM", "green", "PRJ-CALM green everywhere")
        assert calm == ("green", 1.008, 1.008, 99_206.35)

    # The red assessment again, as a new event arriving late: registry and digest keep green.
    topic = f"{settings.topic_prefix}project-health-assessed"
    records = await read_topic(settings, topic, at_least=4)
    first_red = next(
        json.loads(record.value)["data"]
        for record in records
        if json.loads(record.value)["data"]["project_id"] == "PRJ-PATH"
    )
    assert first_red["health"] == "red"
    before = (
        await consumed(registry, "registry", topic),
        await consumed(notifications, "notifications", topic),
    )
    await enterprise.send("project-health-assessed", first_red)

    async def handled() -> bool:
        return (
            await consumed(registry, "registry", topic) > before[0]
            and await consumed(notifications, "notifications", topic) > before[1]
        )

    await eventually(handled, timeout=30, what="the late assessment handled")
    assert (await views.of("PRJ-PATH")) == {
        "monitoring": green,
        "registry": green,
        "report": green,
        "digest": green[:3],
    }


async def test_a_rebaselined_project_s_cpi_follows_the_new_budget_everywhere(
    system: Any, enterprise: Enterprise, admin_headers: dict[str, str]
) -> None:
    registry, _, _, views = system
    # 52% of 100,000 earned for 50,000: CPI 1.04. Re-baselined to 300,000: EV 156,000, CPI 3.12.
    await enterprise.send("project-started", charter("PRJ-REBASE"))
    await enterprise.send("status-changed", report("PRJ-REBASE", date(2026, 7, 2), 52, 50_000))
    before = await views.agree("PRJ-REBASE", "green", "PRJ-REBASE assessed everywhere")
    assert before[2] == 1.04

    async with httpx.AsyncClient(
        base_url=registry.base_url, headers=admin_headers, timeout=30
    ) as api:
        answer = await api.post(
            "/projects/PRJ-REBASE/baselines",
            json={"budget": 300_000, "reason": "scope tripled by the steering committee"},
        )
        assert answer.status_code == 201, answer.text
        after = await views.agree("PRJ-REBASE", "green", "CPI 3.12 everywhere", cpi=3.12)
        assert after == ("green", 1.04, 3.12, 96_153.85)
        project = (await api.get("/projects/PRJ-REBASE")).json()
        assert (project["budget"], project["baseline_version"]) == (300_000, 2)
        assert project["rebaselined_at"] is not None
    health = (await views.clients["monitoring"].get("/projects/PRJ-REBASE/health")).json()
    assert (health["baseline_version"], health["budget_at_completion"]) == (2, 300_000)
    # Both events are in their publisher's AsyncAPI document.
    for service, event in (
        ("monitoring", "project-health-assessed"),
        ("registry", "project-rebaselined"),
    ):
        channels = (await views.clients[service].get("/asyncapi.json")).json()["channels"]
        assert any(event in name for name in channels), (service, sorted(channels))
