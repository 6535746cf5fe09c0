"""Issue 15, item 3: a database that keeps restarting still sees progress, and batches grow back."""

from __future__ import annotations

import json

import httpx
import sqlalchemy.exc

from services.registry.entrypoints.service import registry
from services.registry.service_layer.handlers import on_project_started
from shared.events.contracts import ProjectStarted
from shared.messaging.consumer import EventConsumer, EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceDefinition
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, read_topic

BATCH_MAX = 32
OUTAGE_EVERY = 5
"""The database restarts while a transaction handles its sixth event: only short ones commit."""


def _project(project_id: str) -> dict[str, object]:
    return {
        "project_id": project_id,
        "name": "Backoff",
        "business_unit": "Resilience",
        "manager": "pm@example.com",
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        "budget": 1000,
        "currency": "EUR",
    }


async def test_rolled_back_batches_shrink_until_they_commit_then_grow_back(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    admin_headers: dict[str, str],
) -> None:
    restarting = [True]
    rolled_back: list[int] = []
    limits: list[int] = []
    consumers: list[EventConsumer] = []  # known once the service is started

    async def between_restarts(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
        limits.extend(consumer.batch_limit for consumer in consumers)
        handled = int(getattr(uow, "events_handled", 0)) + 1
        setattr(uow, "events_handled", handled)  # noqa: B010 (a test's mark on the transaction)
        if restarting[0] and handled > OUTAGE_EVERY:
            rolled_back.append(handled)
            raise sqlalchemy.exc.OperationalError(
                "COMMIT", {}, ConnectionResetError("the database system is shutting down")
            )
        await on_project_started(event, meta, uow)

    first = [f"PRJ-BACKOFF-{n:02d}" for n in range(40)]
    for project_id in first:  # waiting before the consumer starts: one big first batch
        await enterprise.send("project-started", _project(project_id))
    service = await start_service(
        "registry",
        ServiceDefinition(
            name="registry",
            summary="registry whose database drops transactions of more than five events",
            handlers={**registry.handlers, "project-started": between_restarts},
            publishes=registry.publishes,
            routers=registry.routers,
        ),
        consumer_batch_max=BATCH_MAX,
    )
    consumers.append(service.runtime.consumer)
    topic = f"{settings.topic_prefix}project-registered"

    registered = await read_topic(settings, topic, at_least=len(first), timeout=120)
    ids = [json.loads(record.value)["data"]["project_id"] for record in registered]
    assert sorted(ids) == first, "every event registered exactly once"
    assert rolled_back, "transactions of more than five events were rolled back"
    assert min(limits) <= OUTAGE_EVERY, "it backed off to transactions short enough to commit"
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        # What a committed transaction took is not delivered again (no duplicate dead letters).
        assert (await api.get("/dead-letters")).json() == []
    consumer = service.runtime.consumer

    restarting[0] = False  # the database is stable again
    for n in range(40):
        await enterprise.send("project-started", _project(f"PRJ-STEADY-{n:02d}"))

    async def grown_back() -> bool:
        return consumer.batch_limit == BATCH_MAX

    await eventually(grown_back, timeout=60, what=f"transactions of up to {BATCH_MAX} again")
    registered = await read_topic(settings, topic, at_least=80, timeout=60)
    assert len(registered) == 80
