"""The transactional outbox: events are rows written with the state change, and a relay sends them.

Nothing a service publishes goes straight to Kafka. A handler's events (and its dead letters) are
inserted in the same transaction as its effect; the relay publishes committed rows in order, keyed
by project, and marks them published. A crash between publishing and marking means the row is sent
again: consumers are idempotent (inbox), so the effect still happens once.

Alerts first: the relay sends the alert topics (`ALERT_EVENTS`) in a lane of their own (its own
task, connection and producer), so that a `project-at-risk` does not wait behind the thousands of
`project-health-assessed` a busy monitoring wrote before it, nor for a bulk round in flight. Kafka
orders records only within a partition (one topic, one key), and so does the relay: a topic is in
one lane, where its rows go out in the order they were committed (`seq`), so each project's events
of one topic keep their order; rows of different topics may overtake each other, as they may in
Kafka itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.tables import decode_headers, encode_headers, outbox, parked_event
from shared.metrics import ServiceMetrics
from shared.rounds import repeat_rounds
from shared.telemetry import context_from_traceparent, current_trace_headers

log = logging.getLogger(__name__)

_TEXTS = postgresql.ARRAY(sa.Text)

MAX_ATTEMPTS = 50
ALERT_EVENTS = ("project-at-risk", "project-recovered")
"""Events the relay sends before the rest (see the module's docstring): the ones a PMO is alerted
by, rare next to the state events, whose wait behind a backlog is the alert's latency."""
MAX_SPAN_LINKS = 32
"""At most this many of a relay batch's causes are linked from its span."""


async def enqueue(
    session: AsyncSession,
    *,
    topic: str,
    key: str | bytes | None,
    value: bytes,
    headers: list[tuple[str, bytes]],
    cause: Context | None = None,
) -> uuid.UUID:
    """Write one message to the outbox inside the caller's transaction.

    `key` is the Kafka key: text (a project id, UTF-8 encoded) or, for a dead letter, the
    original record's bytes as they came.

    The trace context of `cause` (by default the current one) is stored with it, so the relay
    publishes it as part of the trace of the work that wrote it, not of the relay's own loop.
    """
    (message_id,) = await enqueue_many(session, [OutboxMessage(topic, key, value, headers, cause)])
    return message_id


@dataclass(frozen=True)
class OutboxMessage:
    """A message for `enqueue_many`: topic, Kafka key, value, headers, and the trace it continues
    (None: the current one)."""

    topic: str
    key: str | bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    cause: Context | None = None


_ENQUEUE = sa.text(
    f"INSERT INTO {outbox.name} "
    "(message_id, topic, key, value, headers, traceparent, tracestate) "
    "SELECT u.message_id, u.topic, u.key, u.value, u.headers::jsonb, u.traceparent, u.tracestate "
    "FROM unnest(CAST(:ids AS uuid[]), CAST(:topics AS text[]), CAST(:keys AS bytea[]), "
    "CAST(:values AS bytea[]), CAST(:headers AS text[]), CAST(:traceparents AS text[]), "
    "CAST(:tracestates AS text[])) WITH ORDINALITY "
    "AS u(message_id, topic, key, value, headers, traceparent, tracestate, n) ORDER BY u.n"
)
"""`enqueue_many`'s one statement: arrays, not a row of parameters per message, so the database
runs one statement (not one per message) and its text is the same whatever the count; the rows
take their `seq` in the arrays' order."""


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) UUIDs from one read of the system's randomness, where
    `uuid4()` reads it once per id (a system call for each event a batch publishes)."""
    entropy = os.urandom(16 * count)
    return [uuid.UUID(bytes=entropy[n : n + 16], version=4) for n in range(0, 16 * count, 16)]


def _encoded_headers(
    headers: list[tuple[str, bytes]], seen: dict[tuple[tuple[str, bytes], ...], str]
) -> str:
    """`headers` as the outbox stores them (JSON text of `encode_headers`), each distinct list
    encoded once per `seen` (headers of an unhashable kind, e.g. a dead letter's bytearray,
    every time)."""
    try:
        key = tuple(headers)
        found = seen.get(key)
    except TypeError:
        return json.dumps(encode_headers(headers))
    if found is None:
        found = seen[key] = json.dumps(encode_headers(headers))
    return found


async def enqueue_many(session: AsyncSession, messages: Sequence[OutboxMessage]) -> list[uuid.UUID]:
    """Write messages to the outbox in one multi-row statement, in order, in the caller's
    transaction; return their ids. The relay sends them in this order."""
    if not messages:
        return []
    ids = new_ids(len(messages))
    traceparents: list[str | None] = []
    tracestates: list[str | None] = []
    headers: list[str] = []
    # Worked out once per distinct cause and header list, not per message: a batch's messages
    # mostly continue one trace (a re-resolution's thousands of decisions, all of the current
    # one) and carry the same headers. A cause is an immutable Context, alive in `messages`
    # for the whole call, so its id names it.
    trace_of: dict[int, tuple[str | None, str | None]] = {}
    encoded: dict[tuple[tuple[str, bytes], ...], str] = {}
    for message in messages:
        trace = trace_of.get(id(message.cause))
        if trace is None:
            trace_headers = current_trace_headers(message.cause)
            trace = trace_of[id(message.cause)] = (
                trace_headers.get("traceparent"),
                trace_headers.get("tracestate"),
            )
        traceparents.append(trace[0])
        tracestates.append(trace[1])
        headers.append(_encoded_headers(message.headers, encoded))
    connection = await session.connection()
    await connection.execute(
        _ENQUEUE,
        {
            "ids": ids,
            "topics": [message.topic for message in messages],
            "keys": [
                message.key.encode() if isinstance(message.key, str) else message.key
                for message in messages
            ],
            "values": [message.value for message in messages],
            "headers": headers,
            "traceparents": traceparents,
            "tracestates": tracestates,
        },
    )
    return ids


def _is_permanent(error: BaseException) -> bool:
    """Whether the broker refused the message itself, rather than being away or busy."""
    if isinstance(error, KafkaError):
        return not getattr(error, "retriable", False) and not isinstance(
            error, KafkaTimeoutError | KafkaConnectionError
        )
    return not isinstance(error, OSError | TimeoutError)


@dataclass
class _Lane:
    """One lane of the relay: its topics, its producer, its wake-up and its task.

    `alerts`: the lane sends the rows of `topics` only; otherwise it sends every topic but
    those (`topics` empty: every topic)."""

    name: str
    topics: list[str]
    alerts: bool
    lock_id: int
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    producer: AIOKafkaProducer | None = None
    task: asyncio.Task[None] | None = None

    def which(self) -> sa.ColumnElement[bool]:
        """The lane's rows among the pending ones."""
        if not self.topics:
            return sa.true()
        in_lane = outbox.c.topic == sa.any_(sa.literal(self.topics, _TEXTS))
        return in_lane if self.alerts else sa.not_(in_lane)


class OutboxRelay:
    """Publishes a service's committed outbox rows to Kafka, oldest first within each topic.

    Two lanes, each a task with its own database connection, producer and advisory lock: the
    alert lane sends the rows of `first_topics` (by default `ALERT_EVENTS` behind
    `topic_prefix`), the bulk lane every other topic. An alert then never waits for a bulk
    round in flight (its produce request and acknowledgement, its marking), nor behind it in
    the producer (aiokafka keeps one produce request in flight per broker connection). A topic
    is in one lane only, so its rows keep their commit order. Several replicas may run a relay;
    each lane's lock lets one replica's lane publish at a time, which is what keeps each
    project's events in the order they were committed. The alert lane publishes only while its
    own replica's bulk lane holds the bulk lock, the lock every relay before the lanes took
    for all topics: during a rolling upgrade an older replica that relays everything keeps the
    new replicas' alert lanes waiting, so two relays never send one topic at once.

    The lanes' connections run in autocommit: each read and each marking is one round trip,
    without a BEGIN and a COMMIT around it (nothing here needs two statements to be atomic: a
    row sent and not marked is sent again, which the consumers' inboxes absorb).
    """

    def __init__(
        self,
        *,
        service: str,
        engine: AsyncEngine,
        producer_options: dict[str, Any],
        tracer: Tracer,
        metrics: ServiceMetrics,
        poll_interval_s: float = 0.5,
        batch_size: int = 500,
        retention: timedelta = timedelta(days=3),
        topic_prefix: str = "",
        first_events: Sequence[str] = ALERT_EVENTS,
    ) -> None:
        self.service = service
        self.engine = engine
        self.producer_options = producer_options
        self.tracer = tracer
        self.metrics = metrics
        self.poll_interval_s = poll_interval_s
        self.batch_size = batch_size
        self.retention = retention
        self.first_topics = [f"{topic_prefix}{name}" for name in first_events]
        lock = zlib.crc32(f"pmo-outbox-relay-{service}".encode())
        self._bulk = _Lane("bulk", self.first_topics, alerts=False, lock_id=lock)
        self._lanes = [self._bulk]
        self._bulk_leads = asyncio.Event()
        """Set while this relay's bulk lane holds the bulk lock (the alert lane waits for it)."""
        if self.first_topics:
            alerts_lock = zlib.crc32(f"pmo-outbox-relay-{service}-alerts".encode())
            self._lanes.insert(0, _Lane("alerts", self.first_topics, True, alerts_lock))
        self._last_prune = datetime.min.replace(tzinfo=UTC)

    def wake(self, *, alerts: bool = False) -> None:
        """Called after a commit that wrote outbox rows: publish now, not at the next poll.

        Wakes the bulk lane, or with `alerts` the alert lane: a commit that wrote rows of both
        calls both (a wake-up is a query, on the service's event loop)."""
        (self._lanes[0] if alerts else self._bulk).wake.set()

    async def start(self) -> None:
        """Connect the lanes' producers and start relaying; raises the broker's error if it
        is away (after letting go of what was started)."""
        try:
            for lane in self._lanes:
                producer = AIOKafkaProducer(**self.producer_options)
                try:
                    await producer.start()
                except BaseException:
                    with contextlib.suppress(Exception):
                        await producer.stop()  # let go of what the failed start opened
                    raise
                lane.producer = producer
        except BaseException:
            await self.stop()
            raise
        for lane in self._lanes:
            lane.task = asyncio.create_task(
                self._run(lane), name=f"{self.service}-outbox-relay-{lane.name}"
            )

    async def stop(self) -> None:
        for lane in self._lanes:
            if lane.task is not None:
                lane.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await lane.task
                lane.task = None
        for lane in self._lanes:
            if lane.producer is not None:
                with contextlib.suppress(KafkaError):
                    await lane.producer.stop()
                lane.producer = None

    async def _run(self, lane: _Lane) -> None:
        await repeat_rounds(
            lambda: self._connect_and_lead(lane),
            what=f"outbox relay ({lane.name})",
            service=self.service,
            after_failure=self.poll_interval_s * 4,
        )

    async def _connect_and_lead(self, lane: _Lane) -> None:
        async with self.engine.connect() as connection:
            await self._lead(lane, await connection.execution_options(isolation_level="AUTOCOMMIT"))

    async def _lead(self, lane: _Lane, connection: Any) -> None:
        """Hold the lane's lock on this connection and publish until cancelled or disconnected
        (the alert lane: or until the bulk lane lets go of the bulk lock)."""
        if lane is self._bulk:
            try:
                await self._lead_lane(lane, connection)
            finally:
                self._bulk_leads.clear()
            return
        await self._bulk_leads.wait()
        await self._lead_lane(lane, connection)
        # The bulk lane let go of its lock: so does this lane, then it waits for it again.
        await connection.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": lane.lock_id})

    async def _lead_lane(self, lane: _Lane, connection: Any) -> None:
        while True:
            locked = (
                await connection.execute(
                    sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": lane.lock_id}
                )
            ).scalar_one()
            if locked:
                if lane is self._bulk:
                    self._bulk_leads.set()
                break
            # Another replica is the relay: stand by and try again later.
            await asyncio.sleep(self.poll_interval_s * 4)
        observed = 0.0
        while lane is self._bulk or self._bulk_leads.is_set():
            # Cleared before the rows are read: a commit from here on wakes the next round,
            # where clearing after reading (and after the metrics' queries) lost the wake-up
            # of a commit made meanwhile, and its event waited for the poll interval.
            lane.wake.clear()
            sent = await self._publish(lane, connection)
            if sent < self.batch_size:
                # The backlog gauges and the pruning are not worth two queries per round: at
                # most once per poll interval, by the bulk lane, so that a busy relay goes
                # straight back to work.
                if lane is self._bulk and time.monotonic() - observed >= self.poll_interval_s:
                    await self._observe_backlog(connection)
                    await self._prune(connection)
                    observed = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lane.wake.wait(), self.poll_interval_s)

    async def _publish(self, lane: _Lane, connection: Any) -> int:
        """Publish up to `batch_size` pending rows of `lane`, oldest first, and mark them;
        return how many were published."""
        rows = (
            await connection.execute(
                sa.select(
                    outbox.c.seq,
                    outbox.c.topic,
                    outbox.c.key,
                    outbox.c.value,
                    outbox.c.headers,
                    outbox.c.traceparent,
                    outbox.c.tracestate,
                )
                .where(outbox.c.state == "pending", lane.which())
                .order_by(outbox.c.seq)
                .limit(self.batch_size)
            )
        ).all()
        if not rows:
            return 0
        published: list[int] = []
        failures: dict[int, tuple[str, bool]] = {}
        assert lane.producer is not None, "the relay sends only between start() and stop()"
        results = await self._send_batch(lane.producer, rows)
        for row, result in zip(rows, results, strict=True):
            if isinstance(result, BaseException):
                failures[row.seq] = (
                    f"{type(result).__name__}: {result}",
                    _is_permanent(result),
                )
            else:
                published.append(row.seq)
                self.metrics.events_produced.labels(self.service, row.topic).inc()
        now = datetime.now(UTC)
        if published:
            await connection.execute(
                sa.update(outbox)
                .where(
                    outbox.c.seq == sa.any_(sa.literal(published, postgresql.ARRAY(sa.BigInteger)))
                )
                .values(state="published", published_at=now, attempts=outbox.c.attempts + 1)
            )
        for seq, (error, permanent) in failures.items():
            # Left pending, so the next round sends it again, however long the broker is away:
            # nothing committed is ever dropped. Only a message the broker refuses for what it
            # is (too large, topic not allowed) is parked as failed after MAX_ATTEMPTS, so that it
            # does not hold the relay; it stays in the table with its error, counted in
            # `pmo_outbox_failed`, to be re-queued by hand once the cause is fixed.
            state: Any = "pending"
            if permanent:
                state = sa.case((outbox.c.attempts + 1 >= MAX_ATTEMPTS, "failed"), else_="pending")
            await connection.execute(
                sa.update(outbox)
                .where(outbox.c.seq == seq)
                .values(attempts=outbox.c.attempts + 1, last_error=error[:2000], state=state)
            )
        if failures:
            log.warning(
                "outbox: %d of %d messages not published yet: %s",
                len(failures),
                len(rows),
                next(iter(failures.values()))[0],
                extra={"service": self.service},
            )
            await asyncio.sleep(self.poll_interval_s)
        return len(published)

    async def _send_batch(
        self, producer: AIOKafkaProducer, rows: Sequence[Any]
    ) -> list[BaseException | None]:
        """Send `rows` in order under one producer span; per row, None or the error it met.

        Each message carries the trace context stored with its row (the work that wrote it), so
        its consumers continue that trace; the batch's span links to up to `MAX_SPAN_LINKS` of
        those contexts, and a row stored without one carries the batch span's. One span and one
        `send` per message cost about a quarter of a busy consumer's CPU; here the sends only
        queue each message in the producer (in order), and the delivery results are awaited
        together.
        """
        causes: dict[str, trace.Link] = {}
        for row in rows:
            if row.traceparent and row.traceparent not in causes and len(causes) < MAX_SPAN_LINKS:
                parent = context_from_traceparent(row.traceparent, row.tracestate)
                if parent is not None:
                    causes[row.traceparent] = trace.Link(
                        trace.get_current_span(parent).get_span_context()
                    )
        topics = sorted({row.topic for row in rows})
        with self.tracer.start_as_current_span(
            f"{topics[0] if len(topics) == 1 else 'outbox'} publish",
            kind=SpanKind.PRODUCER,
            links=list(causes.values()),
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": ",".join(topics),
                "messaging.batch.message_count": len(rows),
            },
        ) as span:
            own: dict[str, str] = {}
            inject(own)
            own_headers = [(name, value.encode()) for name, value in own.items()]
            queued: list[asyncio.Future[Any] | BaseException] = []
            for row in rows:
                headers = [
                    (name, value)
                    for name, value in decode_headers(row.headers)
                    if name not in ("traceparent", "tracestate")
                ]
                if row.traceparent:
                    headers.append(("traceparent", row.traceparent.encode()))
                    if row.tracestate:
                        headers.append(("tracestate", row.tracestate.encode()))
                else:
                    headers.extend(own_headers)
                try:
                    queued.append(
                        await producer.send(
                            row.topic,
                            value=bytes(row.value),
                            key=bytes(row.key) if row.key is not None else None,
                            headers=headers,
                        )
                    )
                except Exception as error:  # refused before it was queued (e.g. too large)
                    queued.append(error)
            pending = [item for item in queued if not isinstance(item, BaseException)]
            outcomes = iter(await asyncio.gather(*pending, return_exceptions=True))
            results: list[BaseException | None] = []
            for item in queued:
                result = item if isinstance(item, BaseException) else next(outcomes)
                if isinstance(result, BaseException):
                    span.record_exception(result)
                    results.append(result)
                else:
                    results.append(None)
            return results

    async def _observe_backlog(self, connection: Any) -> None:
        backlog, oldest, failed = (
            await connection.execute(
                sa.select(
                    sa.func.count().filter(outbox.c.state == "pending"),
                    sa.func.min(outbox.c.created_at).filter(outbox.c.state == "pending"),
                    sa.func.count().filter(outbox.c.state == "failed"),
                ).where(outbox.c.state != "published")
            )
        ).one()
        parked, oldest_parked = (
            await connection.execute(
                sa.select(sa.func.count(), sa.func.min(parked_event.c.parked_at))
            )
        ).one()
        await connection.commit()
        now = datetime.now(UTC)
        self.metrics.outbox_failed.labels(self.service).set(failed)
        self.metrics.parked_events.labels(self.service).set(parked)
        self.metrics.parked_oldest_age_seconds.labels(self.service).set(
            (now - oldest_parked).total_seconds() if oldest_parked else 0.0
        )
        self.metrics.outbox_backlog.labels(self.service).set(backlog)
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0
        self.metrics.outbox_oldest_age_seconds.labels(self.service).set(age)

    async def _prune(self, connection: Any) -> None:
        """Forget published rows after the retention period, at most once a minute."""
        now = datetime.now(UTC)
        if now - self._last_prune < timedelta(minutes=1):
            return
        self._last_prune = now
        await connection.execute(
            sa.delete(outbox).where(
                outbox.c.state == "published", outbox.c.published_at < now - self.retention
            )
        )
        await connection.commit()
