"""What monitoring's tests against the real broker and database share: events, probes, waits."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import httpx
import sqlalchemy as sa

from shared.messaging.tables import outbox
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.harness import RunningService, eventually, read_topic

QUIET_CLOCK_S = 3600.0
"""Staleness check interval for tests about something else: the clock's one round runs at
start, before any project exists, and the next comes long after the test."""

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def charter(
    project_id: str,
    *,
    start: date = date(2026, 1, 1),
    finish: date = date(2026, 12, 31),
    budget: float = 100_000,
    business_unit: str = "Digital",
    curve: Sequence[tuple[date, float]] | None = None,
) -> dict[str, Any]:
    """The `data` of a project-started event."""
    data: dict[str, Any] = {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": business_unit,
        "manager": "ada.lovelace@example.com",
        "start_date": start.isoformat(),
        "planned_finish_date": finish.isoformat(),
        "budget": budget,
        "currency": "EUR",
    }
    if curve is not None:
        data["planned_value_curve"] = [
            {"date": day.isoformat(), "planned_value": value} for day, value in curve
        ]
    return data


def report(
    project_id: str, as_of: date, percent: float, cost: float, **extra: Any
) -> dict[str, Any]:
    """The `data` of a status-changed event."""
    return {
        "project_id": project_id,
        "as_of": as_of.isoformat(),
        "percent_complete": percent,
        "actual_cost": cost,
        **extra,
    }


class MonitoringProbe:
    """Looks at a running monitoring service from outside (its API, its topics) and waits."""

    def __init__(self, service: RunningService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.api = httpx.AsyncClient(base_url=service.base_url, headers=ADMIN, timeout=30)

    async def close(self) -> None:
        await self.api.aclose()

    async def health(self, project_id: str) -> dict[str, Any] | None:
        response = await self.api.get(f"/projects/{project_id}/health")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    async def history(self, project_id: str) -> list[dict[str, Any]]:
        response = await self.api.get(f"/projects/{project_id}/health/history")
        if response.status_code == 404:
            return []
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    async def assessed(self, project_id: str, count: int) -> list[dict[str, Any]]:
        """The project's history once it holds `count` assessments."""

        async def probe() -> list[dict[str, Any]] | None:
            entries = await self.history(project_id)
            return entries if len(entries) >= count else None

        return await eventually(probe, timeout=30, what=f"{count} assessment(s) of {project_id}")

    async def settled(self) -> None:
        """Every event monitoring has written to its outbox is on Kafka."""

        async def drained() -> bool:
            async with self.service.runtime.engine.connect() as connection:
                unpublished = (
                    await connection.execute(
                        sa.select(sa.func.count()).where(outbox.c.state != "published")
                    )
                ).scalar_one()
            return unpublished == 0

        await eventually(drained, timeout=30, what="monitoring's outbox published")

    async def published(self, event_name: str, *, at_least: int = 0) -> list[dict[str, Any]]:
        """The `data` of every event on a topic (call `settled` first to see them all)."""
        records = await read_topic(
            self.settings, f"{self.settings.topic_prefix}{event_name}", at_least=at_least
        )
        return [json.loads(record.value)["data"] for record in records]

    async def dead_letter_reasons(self) -> list[str]:
        response = await self.api.get("/dead-letters")
        response.raise_for_status()
        return [entry["reason"] for entry in response.json()]


def by_project(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        grouped.setdefault(event["project_id"], []).append(event)
    return grouped
