"""Consumer offsets committed to Kafka after each batch's transaction, without waiting for them.

The offsets of a batch are committed only after its database transaction has committed (the
inbox makes a redelivery harmless, never the other way round). Waiting for the broker's answer
before taking the next batch put one more round trip in every batch's cycle (an offset commit
on the embedded broker under load: p50 1.8 ms, p90 12 ms), on the path of every alert. So a
batch's offsets are sent and the next batch starts at once, as Kafka's Java client does with
`commitAsync`: commits of one consumer go out one at a time, in order, and offsets that came
while one was in flight are merged (the newest per partition) into the next.

A commit that fails (the group rebalanced, the broker went away) is logged and not retried:
the partition's next owner, or this consumer after its restart, takes those events again and
the inbox has them as duplicates; later commits carry higher offsets anyway. A stopping
service waits for its commits (`flush`), so a clean stop redelivers nothing.

Our own code, not a library's: aiokafka commits only when awaited, and FastStream's
acknowledgement awaits it before the next batch; nothing offers the asynchronous form.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from aiokafka import ConsumerRecord, TopicPartition

log = logging.getLogger(__name__)


class Committer(Protocol):
    """What commits offsets: aiokafka's `AIOKafkaConsumer.commit` with explicit offsets."""

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...


class OffsetCommits:
    """The offsets of committed batches, sent to the broker in the background per consumer.

    `after(consumer, records)` after a transaction that took `records` committed; `flush()`
    waits until every offset handed over so far has been sent (or failed, logged).
    """

    def __init__(self, service: str) -> None:
        self.service = service
        self._waiting: dict[Committer, dict[TopicPartition, int]] = {}
        self._sending: dict[Committer, asyncio.Task[None]] = {}

    def after(self, consumer: Committer, records: Iterable[ConsumerRecord[Any, Any]]) -> None:
        """Have the offsets past `records` committed for `consumer`: each partition's next
        offset to read (the highest record's offset + 1), sent after any commit in flight."""
        waiting = self._waiting.setdefault(consumer, {})
        for record in records:
            partition = TopicPartition(record.topic, record.partition)
            if record.offset + 1 > waiting.get(partition, -1):
                waiting[partition] = record.offset + 1
        if not waiting:
            del self._waiting[consumer]
            return
        if consumer not in self._sending:
            self._sending[consumer] = asyncio.create_task(
                self._send(consumer), name=f"{self.service}-offset-commits"
            )

    async def _send(self, consumer: Committer) -> None:
        try:
            while offsets := self._waiting.pop(consumer, None):
                try:
                    await consumer.commit(offsets)
                except Exception as error:
                    log.warning(
                        "offsets %s not committed (%s: %s): those events will be taken again "
                        "and the inbox will have them as duplicates",
                        ", ".join(f"{p.topic}[{p.partition}]={o}" for p, o in offsets.items()),
                        type(error).__name__,
                        error,
                        extra={"service": self.service},
                    )
        finally:
            del self._sending[consumer]

    async def flush(self) -> None:
        """Wait until every offset handed over so far is sent (or its failure logged)."""
        while self._sending:
            await asyncio.gather(*self._sending.values(), return_exceptions=True)
