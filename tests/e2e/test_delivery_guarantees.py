"""Nothing lost, nothing twice: a redelivered event has one effect; garbage is dead-lettered."""

from __future__ import annotations

import json

import httpx
import pytest

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, read_topic

pytestmark = pytest.mark.e2e


def project(project_id: str) -> dict[str, object]:
    return {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Operations",
        "manager": "grace.hopper@example.com",
        "start_date": "2026-02-01",
        "planned_finish_date": "2026-10-31",
        "budget": 250000,
        "currency": "USD",
    }


async def test_redelivered_event_has_one_effect_and_garbage_is_dead_lettered(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    registry = await start_service("registry")
    prefix = settings.topic_prefix
    garbage = b"\x00\xffthis is not a CloudEvent{"

    first = await enterprise.send("project-started", project("PRJ-A"))
    await enterprise.send_raw("project-started", garbage, key="PRJ-A")
    await enterprise.send("project-started", project("PRJ-A"), event_id=first)  # redelivery
    await enterprise.send("project-started", project("PRJ-B"), binary=True)  # next valid event

    async with httpx.AsyncClient(base_url=registry.base_url, headers=admin_headers) as api:

        async def registered_b() -> bool:
            return (await api.get("/projects/PRJ-B")).status_code == 200

        await eventually(registered_b, what="PRJ-B registered after the garbage")

        registered = await read_topic(settings, f"{prefix}project-registered", at_least=2)
        assert sorted(json.loads(r.value)["data"]["project_id"] for r in registered) == [
            "PRJ-A",
            "PRJ-B",
        ]

        dead = await read_topic(settings, f"{prefix}project-started.dlq", at_least=2)
        by_value = {record.value: dict(record.headers) for record in dead}
        assert len(dead) == 2
        assert garbage in by_value
        assert by_value[garbage]["pmo-dlq-reason"].startswith(b"not a CloudEvent")
        assert by_value[garbage]["pmo-dlq-topic"] == f"{prefix}project-started".encode()
        duplicate = next(h for v, h in by_value.items() if v != garbage)
        assert duplicate["pmo-dlq-reason"].startswith(b"duplicate: event '" + first.encode())

        listed = (await api.get("/dead-letters")).json()
        assert {entry["event_id"] for entry in listed} == {None, first}
        assert all(entry["reason"] for entry in listed)

        metrics = (await api.get("/metrics")).text
        assert (
            f'pmo_consumer_lag{{partition="0",service="registry",topic="{prefix}project-started"}}'
            in metrics
            or (
                f'pmo_consumer_lag{{partition="1",service="registry",topic="{prefix}project-started"}}'
                in metrics
            )
        )
        assert 'pmo_events_consumed_total{outcome="processed",service="registry"' in metrics
        assert (
            'pmo_dead_letters_total{service="registry",topic="' + prefix + 'project-started"} 2.0'
            in metrics
        )
