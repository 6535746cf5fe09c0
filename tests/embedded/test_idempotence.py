"""A broker that refuses idempotent producers (issue 12.10): the embedded Tansu answers
InitProducerId with an error; a service told to be idempotent warns, naming
PMO_KAFKA_ENABLE_IDEMPOTENCE, and works without, instead of crash-looping."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from pmo.embedded import EmbeddedKafka
from pmo.topics import create_topics
from shared.runtime import idempotence_refusal
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, read_topic
from tests.registry.conftest import charter


@pytest.fixture(scope="module")
def refusing_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Tansu, whatever broker the other tests use: its memory engine refuses InitProducerId."""
    log = tmp_path_factory.mktemp("tansu") / "tansu.log"
    with EmbeddedKafka(log_path=Path(log)) as broker:
        yield broker.bootstrap_servers


async def test_the_refusal_is_detected_and_named(refusing_broker: str) -> None:
    reason = await idempotence_refusal({"bootstrap_servers": refusing_broker})
    assert reason == "UnknownError"


async def test_a_service_told_to_be_idempotent_warns_and_works_without(
    refusing_broker: str,
    settings: Settings,
    start_service: ServiceStarter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    on_refusing = settings.model_copy(
        update={"kafka_bootstrap_servers": refusing_broker, "kafka_enable_idempotence": True}
    )
    await create_topics(on_refusing, partitions=1)
    with caplog.at_level(logging.WARNING, logger="shared.runtime"):
        await start_service(
            "registry", kafka_bootstrap_servers=refusing_broker, kafka_enable_idempotence=True
        )
    [warning] = [r for r in caplog.records if "InitProducerId" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert "refuses idempotent producers (InitProducerId: UnknownError)" in warning.getMessage()
    assert "PMO_KAFKA_ENABLE_IDEMPOTENCE=false" in warning.getMessage()
    # aiokafka's own ERROR about the refusal is not left to puzzle an operator.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

    producer = AIOKafkaProducer(bootstrap_servers=refusing_broker)
    await producer.start()
    try:
        await Enterprise(producer, settings.topic_prefix).send(
            "project-started", charter("PRJ-IDEMPOTENCE")
        )
    finally:
        await producer.stop()
    records = await read_topic(on_refusing, f"{settings.topic_prefix}project-registered")
    assert [json.loads(r.value)["data"]["project_id"] for r in records] == ["PRJ-IDEMPOTENCE"]
