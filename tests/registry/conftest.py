"""What the registry's tests share: a project charter, the running registry and its API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import RunningService, eventually, read_topic


def charter(project_id: str, **changes: Any) -> dict[str, Any]:
    """A `project-started` data: a year-long project, changed by keyword."""
    return {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Operations",
        "manager": "grace.hopper@example.com",
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        "budget": 100000,
        "currency": "EUR",
        **changes,
    }


def status(project_id: str, **changes: Any) -> dict[str, Any]:
    """A `status-changed` data, changed by keyword."""
    return {
        "project_id": project_id,
        "as_of": "2026-06-30",
        "percent_complete": 50,
        "actual_cost": 50000,
        **changes,
    }


def assessed(
    project_id: str,
    health: str = "red",
    *,
    at: datetime | None = None,
    metrics: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """A monitoring `project-health-assessed` data: red or amber for the schedule, or green."""
    reasons = (
        []
        if health == "green"
        else [{"code": "schedule", "severity": health, "message": "SPI(t) 0.6 is below 0.9"}]
    )
    return {
        "project_id": project_id,
        "health": health,
        "reasons": reasons,
        "metrics": metrics if metrics is not None else {"spi": 0.6, "spi_t": 0.6, "cpi": 1.0},
        "as_of": "2026-06-30",
        "assessed_at": (at or datetime.now(UTC)).isoformat(),
        "trigger": "status-changed",
    }


def allocated(
    project_id: str, request_id: str, requested: float, granted: float, state: str
) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "request_id": request_id,
        "skill": "solution-architect",
        "fte_requested": requested,
        "fte_granted": granted,
        "weeks": ["2026-W30"],
        "status": state,
        "reason": "capacity",
    }


@pytest.fixture
async def registry(start_service: ServiceStarter) -> RunningService:
    return await start_service("registry")


@pytest.fixture
async def api(
    registry: RunningService, admin_headers: dict[str, str]
) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=registry.base_url, headers=admin_headers, timeout=30
    ) as client:
        yield client


async def published(settings: Settings, event: str, *, at_least: int = 1) -> list[dict[str, Any]]:
    """The `data` of every record on one of the registry's outbound topics."""
    records = await read_topic(
        settings, f"{settings.topic_prefix}{event}", at_least=at_least, timeout=30
    )
    return [json.loads(record.value)["data"] for record in records]


async def dead_letters(settings: Settings, topic: str, *, at_least: int = 1) -> dict[str, str]:
    """Event id -> dead-letter reason, for the records on `<topic>.dlq`."""
    records = await read_topic(
        settings, f"{settings.topic_prefix}{topic}.dlq", at_least=at_least, timeout=30
    )
    return {
        json.loads(record.value)["id"]: dict(record.headers)["pmo-dlq-reason"].decode()
        for record in records
    }


async def project_when(
    api: httpx.AsyncClient, project_id: str, what: str, **expected: Any
) -> dict[str, Any]:
    """Poll GET /projects/{id} until its fields have the `expected` values."""

    async def probe() -> dict[str, Any] | None:
        response = await api.get(f"/projects/{project_id}")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if all(body.get(k) == v for k, v in expected.items()) else None

    return await eventually(probe, timeout=30, what=what)
