"""A service started while its broker is away waits for it, as for its database, then works."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaProducer

from pmo.embedded import EmbeddedKafka, free_port
from pmo.topics import create_topics
from services.catalog import SERVICES
from shared.events import to_structured
from shared.events.contracts import ProjectStarted
from shared.runtime import ServiceRuntime
from shared.settings import Settings
from tests.harness import read_topic


async def test_a_service_started_before_its_broker_waits_and_then_works(
    settings: Settings,
) -> None:
    port = free_port()
    away = settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "broker_wait_s": 60.0}
    )
    runtime = ServiceRuntime(SERVICES["registry"], away)
    starting = asyncio.create_task(runtime.start())
    await asyncio.sleep(3)  # several refused connections: the service is still waiting
    assert not starting.done(), starting
    broker = EmbeddedKafka(port=port)
    broker.start()
    try:
        await create_topics(away, partitions=1)
        await asyncio.wait_for(starting, 60)
        try:
            charter = ProjectStarted.model_validate(
                {
                    "project_id": "PRJ-WAITED",
                    "name": "Waited",
                    "business_unit": "Ops",
                    "manager": "pm@example.com",
                    "start_date": "2026-01-01",
                    "planned_finish_date": "2026-12-31",
                    "budget": 10,
                    "currency": "EUR",
                }
            )
            value, headers = to_structured(charter, source="/test")
            producer = AIOKafkaProducer(**away.kafka_client_options(), enable_idempotence=False)
            await producer.start()
            try:
                await producer.send_and_wait(
                    f"{away.topic_prefix}project-started", value, key=b"PRJ-WAITED", headers=headers
                )
            finally:
                await producer.stop()
            registered = await read_topic(away, f"{away.topic_prefix}project-registered")
            assert [json.loads(r.value)["data"]["project_id"] for r in registered] == ["PRJ-WAITED"]
        finally:
            await runtime.stop()
    finally:
        broker.stop()
