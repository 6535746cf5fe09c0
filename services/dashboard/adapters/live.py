"""Live updates: the services' outbound events, read from Kafka and fanned out to open pages.

Every dashboard replica reads every outbound topic itself, without a consumer group (each replica
must tell its own browsers about every event) and from the end (a page wants what happens from
now on; what happened before is in the services' APIs). It commits nothing and changes nothing,
so reading an event twice or missing one while restarting only refreshes a page once more or once
less: the page then re-reads the services' APIs, which are the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed

from shared.rounds import repeat_rounds
from shared.settings import Settings
from shared.topics import OUTBOUND_TOPICS, event_name_of, topic_name

log = logging.getLogger(__name__)

LIVE_EVENTS: tuple[str, ...] = tuple(
    dict.fromkeys((*OUTBOUND_TOPICS, "project-health-assessed", "project-rebaselined"))
)
"""The outbound events a page may reflect; topics not created yet are picked up once they are."""
TOPIC_RECHECK_S = 10.0
SUBSCRIBER_BUFFER = 256


@dataclass(frozen=True)
class LiveEvent:
    """What a page needs to know of an event to decide whether to refresh."""

    type: str
    """The event name, e.g. `project-at-risk`."""
    id: str | None
    project_id: str | None
    time: str | None
    severity: str | None

    def json(self) -> str:
        return json.dumps(asdict(self))


def live_event(topic: str, key: bytes | None, value: bytes | None, prefix: str) -> LiveEvent:
    """The event a record carries; a record that is not a structured CloudEvent still tells its
    type by its topic (pages refresh from the APIs anyway)."""
    name = event_name_of(topic, prefix)
    envelope: dict[str, Any] = {}
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        parsed = json.loads(value or b"")
        envelope = parsed if isinstance(parsed, dict) else {}
    data: dict[str, Any] = envelope["data"] if isinstance(envelope.get("data"), dict) else {}
    project = data.get("project_id") or (key.decode("utf-8", "replace") if key else None)
    severity = data.get("severity") or data.get("health")
    return LiveEvent(
        type=name,
        id=str(envelope["id"]) if "id" in envelope else None,
        project_id=str(project) if project else None,
        time=str(envelope["time"]) if "time" in envelope else None,
        severity=str(severity) if severity else None,
    )


class EventFeed:
    """Reads the outbound topics and hands each event to every open page's queue."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._subscribers: set[asyncio.Queue[LiveEvent]] = set()
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._assigned: set[TopicPartition] = set()
        self.ready = asyncio.Event()
        """Set once the feed reads every existing outbound topic from its end."""

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            **self.settings.kafka_client_options(),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            client_id="pmo-dashboard",
        )
        self._task = asyncio.create_task(self._run(), name="dashboard-live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                await self._consumer.stop()

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[LiveEvent]]:
        """A queue of the events from now on, for one open page."""
        queue: asyncio.Queue[LiveEvent] = asyncio.Queue(maxsize=SUBSCRIBER_BUFFER)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    def publish(self, event: LiveEvent) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                # A page that stopped reading loses its oldest news, never blocks the others.
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()
            queue.put_nowait(event)

    async def _assign(self, consumer: AIOKafkaConsumer) -> None:
        """Read every existing live topic; keep positions of partitions already read."""
        present = await consumer.topics()
        wanted = {topic_name(name, self.settings.topic_prefix) for name in LIVE_EVENTS}
        partitions = {
            TopicPartition(topic, partition)
            for topic in wanted & set(present)
            for partition in consumer.partitions_for_topic(topic) or ()
        }
        if partitions == self._assigned:
            return
        positions = {tp: await consumer.position(tp) for tp in self._assigned & partitions}
        consumer.assign(sorted(partitions))
        new = sorted(partitions - set(positions))
        if new:
            await consumer.seek_to_end(*new)
        for tp, offset in positions.items():
            consumer.seek(tp, offset)
        for tp in new:  # resolve "the end" now, so nothing published from here on is missed
            await consumer.position(tp)
        self._assigned = partitions

    async def _run(self) -> None:
        consumer = self._consumer
        assert consumer is not None

        def broker_away(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            log.warning("live feed: the broker does not answer yet (%s)", error)

        await AsyncRetrying(
            retry=retry_if_exception_type(Exception), wait=wait_fixed(2), before_sleep=broker_away
        )(consumer.start)
        checked = 0.0

        async def read_once() -> None:
            nonlocal checked
            if time.monotonic() - checked > TOPIC_RECHECK_S:
                await self._assign(consumer)
                checked = time.monotonic()
                self.ready.set()
            if not self._assigned:
                await asyncio.sleep(1)
                return
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    self.publish(
                        live_event(
                            record.topic, record.key, record.value, self.settings.topic_prefix
                        )
                    )

        await repeat_rounds(
            read_once,
            what="live feed: reading the outbound topics",
            service="dashboard",
            after_failure=1.0,
        )
