"""Issue 15, item 5: consumer lag counts every record behind, on the embedded broker too.

The embedded Tansu broker answers a ListOffsets request (`end_offsets`) with the last record
batch's base offset + 1, so a lag computed from it misses all but one record of that batch;
the high watermark in its fetch responses is right. The service measures from the latter.
"""

from __future__ import annotations

from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.metrics import ServiceMetrics
from shared.runtime import _observe_lag
from shared.settings import Settings

BATCHES, PER_BATCH = 3, 5


async def test_lag_after_a_batch_counts_every_record_behind_it(settings: Settings) -> None:
    topic = f"{settings.topic_prefix}lag-probe"
    options = settings.kafka_client_options()
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(**options, enable_idempotence=False, linger_ms=100)
    await producer.start()
    try:
        for batch in range(BATCHES):  # several record batches, as a busy producer writes them
            for n in range(PER_BATCH):
                await producer.send(topic, f"{batch}-{n}".encode())
            await producer.flush()
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(topic, **options, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        records: list[ConsumerRecord[bytes, bytes]] = []
        while not records:
            fetched = await consumer.getmany(timeout_ms=2000, max_records=2)
            records = [record for part in fetched.values() for record in part]
        metrics = ServiceMetrics("registry")
        _observe_lag(SimpleNamespace(consumer=consumer), records, metrics, "registry")
    finally:
        await consumer.stop()

    behind = BATCHES * PER_BATCH - (records[-1].offset + 1)
    lag = metrics.registry.get_sample_value(
        "pmo_consumer_lag", {"service": "registry", "topic": topic, "partition": "0"}
    )
    assert lag == behind
