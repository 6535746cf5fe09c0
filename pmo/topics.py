"""Creates the system's topics (and their dead-letter topics) on the configured Kafka."""

from __future__ import annotations

import contextlib
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_fixed

from shared.settings import Settings
from shared.topics import all_topics

log = logging.getLogger(__name__)


async def create_topics(
    settings: Settings, *, partitions: int | None = None, timeout: float = 60.0
) -> list[str]:
    """Create every topic that does not exist yet; return the ones created.

    Retries the connection for `timeout` seconds, because at start the broker is often still
    coming up beside us (compose, Kubernetes Job, `pmo up`).
    """
    wanted = all_topics(settings.topic_prefix)

    async def connected_admin() -> AIOKafkaAdminClient:
        admin = AIOKafkaAdminClient(**settings.kafka_client_options(), client_id="pmo-topics")
        try:
            await admin.start()
        except KafkaConnectionError:
            await admin.close()
            raise
        return admin

    try:
        admin: AIOKafkaAdminClient = await AsyncRetrying(
            retry=retry_if_exception_type(KafkaConnectionError),
            wait=wait_fixed(1.0),
            stop=stop_after_delay(timeout),
            reraise=True,
        )(connected_admin)
    except KafkaConnectionError as error:
        raise KafkaConnectionError(
            f"Kafka at {settings.kafka_bootstrap_servers} did not answer in {timeout:.0f}s"
        ) from error
    try:
        existing = set(await admin.list_topics())
        missing = [name for name in wanted if name not in existing]
        if missing:
            # Another replica or init job may create them meanwhile: that is the goal anyway.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(
                            name=name,
                            num_partitions=partitions or settings.topic_partitions,
                            replication_factor=settings.topic_replication_factor,
                        )
                        for name in missing
                    ]
                )
        log.info("topics ready: %d created, %d existed", len(missing), len(wanted) - len(missing))
        return missing
    finally:
        await admin.close()
