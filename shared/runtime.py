"""How a service runs: its broker subscription, database, outbox relay, workers and HTTP app."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import time
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import (
    BrokerResponseError,
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from fastapi import APIRouter, FastAPI
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.message import AckStatus, StreamMessage
from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512
from faststream.specification import AsyncAPI
from opentelemetry.sdk.trace import SpanProcessor
from sqlalchemy import text
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from shared.database import create_engine, migrate, session_factory, wait_for_database
from shared.events import EventData
from shared.messaging import parking
from shared.messaging.consumer import AnyHandler, EventConsumer
from shared.messaging.offsets import OffsetCommits
from shared.messaging.outbox import ALERT_EVENTS, OutboxRelay
from shared.messaging.unit_of_work import UnitOfWork
from shared.metrics import ServiceMetrics
from shared.rounds import repeat_rounds
from shared.settings import ServiceName, Settings
from shared.telemetry import trace_database, tracer_provider_for
from shared.topics import event_name_of, topic_name

log = logging.getLogger(__name__)

Worker = Callable[["ServiceRuntime"], Coroutine[Any, Any, None]]

IDEMPOTENCE_REFUSED = (
    "the Kafka broker refuses idempotent producers (InitProducerId: {reason}); publishing "
    "without idempotence, which loses nothing (every consumer is idempotent): "
    "set PMO_KAFKA_ENABLE_IDEMPOTENCE=false for this broker to start without this check"
)
"""The warning when `PMO_KAFKA_ENABLE_IDEMPOTENCE` is on but the broker cannot honour it."""

_NOT_ABOUT_IDEMPOTENCE = (
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
    IllegalSaslStateError,
)


async def idempotence_refusal(producer_options: Mapping[str, Any]) -> str | None:
    """Why the broker refuses an idempotent producer, or None when it accepts one.

    An idempotent producer asks the broker for a producer id (InitProducerId) when it starts;
    a broker that cannot give one (an old Kafka, a Kafka-protocol broker without it, an ACL
    denying IdempotentWrite) answers with an error code. Connection, TLS and authentication
    errors are raised as they are: they are not about idempotence.
    """
    producer = AIOKafkaProducer(**{**producer_options, "enable_idempotence": True})
    # aiokafka logs the refusal at ERROR before raising it; the caller says what it means.
    sender_log = logging.getLogger("aiokafka.producer.sender")
    level = sender_log.level
    sender_log.setLevel(logging.CRITICAL)
    try:
        await producer.start()
    except BrokerResponseError as error:
        if isinstance(error, _NOT_ABOUT_IDEMPOTENCE):
            raise
        return type(error).__name__
    finally:
        sender_log.setLevel(level)
        await producer.stop()
    return None


@dataclass(frozen=True)
class ServiceDefinition:
    """What makes a service itself: the events it handles and publishes, its API, its workers."""

    name: ServiceName
    summary: str
    handlers: Mapping[str, AnyHandler]
    publishes: Sequence[type[EventData]]
    routers: Sequence[APIRouter] = ()
    workers: Sequence[Worker] = ()
    lanes: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Lanes of events consumed apart from the rest: lane name -> event names handled, e.g.
    `{"alerts": ("project-at-risk", "project-recovered")}`. Each lane is its own Kafka
    subscriber in its own consumer group `pmo-{name}-{lane}` (own fetches, batches and
    transactions), so its events never wait behind a backlog of the others'. Kafka orders
    records per partition of one topic only, so splitting topics between groups breaks no
    order that was guaranteed. Raises `ValueError` for an event not handled or in two lanes."""

    def __post_init__(self) -> None:
        laned = [event for events in self.lanes.values() for event in events]
        if unknown := sorted(set(laned) - set(self.handlers)):
            raise ValueError(f"{self.name}: lanes name events it does not handle: {unknown}")
        if len(laned) != len(set(laned)):
            raise ValueError(f"{self.name}: an event is in more than one lane: {laned}")
        if empty := sorted(lane for lane, events in self.lanes.items() if not events):
            raise ValueError(f"{self.name}: lanes without events: {empty}")


def consumer_groups(definition: ServiceDefinition, topic_prefix: str = "") -> dict[str, list[str]]:
    """A service's consumer groups -> the event names each consumes, the service's own first.

    The group `{topic_prefix}pmo-{service}` takes what no lane takes (absent if nothing is
    left); each lane is the group `{topic_prefix}pmo-{service}-{lane}`. The deploy manifests'
    KEDA triggers name the same groups (tests/deploy checks them against this).
    """
    group = f"{topic_prefix}pmo-{definition.name}"
    laned = {event for events in definition.lanes.values() for event in events}
    groups = {group: [event for event in definition.handlers if event not in laned]}
    for lane, events in definition.lanes.items():
        groups[f"{group}-{lane}"] = list(events)
    return {name: events for name, events in groups.items() if events}


def _is_utf8(value: bytes | None) -> bool:
    try:
        (value or b"").decode()
    except UnicodeDecodeError:
        return False
    return True


async def _parse_leniently(
    records: tuple[ConsumerRecord[Any, Any], ...],
    parse: Callable[[tuple[ConsumerRecord[Any, Any], ...]], Awaitable[StreamMessage[Any]]],
) -> StreamMessage[Any]:
    # FastStream decodes every header as UTF-8 and fails the whole batch, again and again, on
    # one that is not. Kafka headers are bytes: it gets copies with such headers blanked, and
    # the consumer (and the dead letters) still get the records exactly as they came. Almost
    # every batch decodes as it is, so the copies are made only when it does not.
    try:
        return await parse(records)
    except UnicodeDecodeError:
        pass
    safe = tuple(
        record
        if all(_is_utf8(value) for _, value in record.headers or ())
        else dataclasses.replace(
            record,
            headers=[(name, value if _is_utf8(value) else b"") for name, value in record.headers],
        )
        for record in records
    )
    message = await parse(safe)
    message.raw_message = records
    return message


async def _keep_raw(message: StreamMessage[Any]) -> Any:
    # Parsing is the consumer's job (CloudEvents, both modes, dead letters): FastStream must not
    # try to decode JSON and fail on garbage before the consumer sees it.
    return message.body


def faststream_security(settings: Settings) -> BaseSecurity | None:
    options = settings.kafka_client_options()
    ssl_context = options.get("ssl_context")
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    if protocol == "SSL":
        return BaseSecurity(ssl_context=ssl_context)
    username = settings.kafka_sasl_username or ""
    password = (
        settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    )
    mechanism = settings.kafka_sasl_mechanism or "PLAIN"
    kind = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
    return kind[mechanism](username, password, ssl_context=ssl_context)


class StartupFailed(RuntimeError):
    """A service could not start: its database or broker is not usable (a one-line reason)."""


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


GC_THRESHOLDS = (20_000, 10, 10)
"""The cyclic collector's thresholds while a service runs (Python's default: 700, 10, 10).

A batch makes tens of thousands of container objects that live until its transaction commits
(events, rows, models) and a backlog keeps long-lived ones growing (allocation's plans of its
book): at 700 the collector walked them again every few hundred allocations, and each tenth
young collection of a growing heap set off a full one. Measured on allocation's
`resource-requested` bench (20,000 requests, bench/results/consumer_throughput.md): the
collector's CPU fell from 2.6 s to 1.0 s of the process's 12-14 s (at 10,000), with no full
collection during the backlog. In a monitoring backlog (at 20,000): 500 young collections per
20,000 events and 0.5-1.4 s of collector time (against 6-8 s of CPU, loaded machine) became
1 collection and 0.02 s; a batch of 500 keeps thousands of objects alive until its commit, and
at 700 the young collections ran about twelve times per batch, walking and promoting the same
live objects. A young collection now walks at most 20,000 objects (a few milliseconds); objects
freed by their reference count never needed the collector; cycles are still collected, later."""


class ServiceRuntime:
    """One running instance of a service (a pod, or a task in `pmo up` and the tests)."""

    def __init__(
        self,
        definition: ServiceDefinition,
        settings: Settings,
        *,
        span_processors: Iterable[SpanProcessor] = (),
        lanes: Collection[str] | None = None,
    ) -> None:
        """`lanes`: the consumer groups this instance joins, by lane name ("" for the service's
        own group); None joins them all. An instance of some lanes only is a replica like any
        other (same inbox, outbox, workers), e.g. notifications' alert lane in a process of
        its own, where no other group's batches hold up its event loop."""
        self.definition = definition
        self.name = definition.name
        self.settings = settings
        self.tracer_provider = tracer_provider_for(self.name, span_processors)
        self.tracer = self.tracer_provider.get_tracer(f"pmo.{self.name}")
        self.metrics = ServiceMetrics(self.name)
        self._gc_threshold: tuple[int, ...] | None = None
        """The collector's thresholds before `start` raised the first (restored by `stop`)."""
        self.engine = create_engine(
            settings.database_url_for(self.name),
            self.name,
            pool_size=settings.database_pool_size,
            application=f"pmo-{self.name}",
        )
        trace_database(self.engine, self.tracer)
        self.sessions = session_factory(self.engine)
        self.consumer_group = f"{settings.topic_prefix}pmo-{self.name}"
        self.broker = KafkaBroker(
            settings.bootstrap_servers(),
            # The AsyncAPI document is public: it names the operator's Kafka, never its address.
            specification_url="kafka-bootstrap-servers",
            security=faststream_security(settings),
            client_id=f"pmo-{self.name}",
            # This broker's producer publishes nothing (events leave by the outbox relay's), so
            # it needs no producer id from a broker that may not hand one out.
            enable_idempotence=False,
            # No FastStream telemetry middleware: the consumer makes each event's span in the
            # event's own trace; FastStream's would add a span per batch in a trace of its own,
            # reading every record's trace headers and baggage to link them (a few per cent of
            # a backlog's time), and this broker publishes nothing.
            middlewares=[
                KafkaPrometheusMiddleware(
                    registry=self.metrics.registry, app_name=f"pmo-{self.name}"
                ),
            ],
            logger=logging.getLogger(f"pmo.{self.name}.broker"),
            graceful_timeout=25.0,
        )
        self.relay = OutboxRelay(
            service=self.name,
            engine=self.engine,
            producer_options={
                **settings.kafka_client_options(),
                "client_id": f"pmo-{self.name}-relay",
                "enable_idempotence": settings.kafka_enable_idempotence,
                "acks": "all",
                # No wait for more: what the relay sends together is batched anyway, as rows
                # queue while a request is in flight; a lone alert leaves at once.
                "linger_ms": 0,
            },
            tracer=self.tracer,
            metrics=self.metrics,
            poll_interval_s=settings.outbox_poll_interval_s,
            batch_size=settings.outbox_batch_size,
            topic_prefix=settings.topic_prefix,  # for its alert lane's topics
            # An alert lane (a connection, a producer, a poll) only where there are alerts.
            first_events=[
                name
                for name in ALERT_EVENTS
                if name in {model.event_name for model in definition.publishes}
            ],
        )
        self.offsets = OffsetCommits(self.name)
        """Each batch's Kafka offsets, committed after its transaction without holding the next."""
        self.consumer = EventConsumer(
            service=self.name,
            handlers=definition.handlers,
            unit_of_work=self.unit_of_work,
            tracer=self.tracer,
            metrics=self.metrics,
            topic_prefix=settings.topic_prefix,
            max_event_bytes=settings.max_event_bytes,
            batch_max=settings.consumer_batch_max,
        )
        self.topics = [
            topic_name(name, settings.topic_prefix) for name in self.consumer.event_names
        ]
        self.metrics.prime(self.topics)
        self.consumer_groups = {
            group: [topic_name(event, settings.topic_prefix) for event in events]
            for group, events in consumer_groups(definition, settings.topic_prefix).items()
            if lanes is None or _lane_of(group, self.consumer_group) in lanes
        }
        if not self.consumer_groups:
            raise ValueError(f"{self.name}: no consumer group for lanes {sorted(lanes or ())}")
        """Every consumer group this instance joins -> the topics it reads there."""
        self.subscribers: dict[str, BatchSubscriber] = {}
        """Each consumer group's FastStream subscriber (readiness asks each if it runs)."""
        self._subscribe()
        self._declare_publishers()
        self.asyncapi = AsyncAPI(
            self.broker,
            title=f"PMO {self.name}",
            version="0.1.0",
            description=definition.summary,
        )
        self._workers: list[asyncio.Task[None]] = []
        self._commit_listeners: list[Callable[[UnitOfWork], None]] = []
        self.started = False

    def on_commit(self, listener: Callable[[UnitOfWork], None]) -> None:
        """Call `listener` with the unit of work after every commit of one in this process.

        A worker that acts on committed rows (e.g. notifications' deliveries) waits on it
        instead of a poll interval, and may look at what the commit wrote (its session's
        `info`) to be woken only by the commits that concern it; other replicas' work still
        reaches it by its fallback poll.
        """
        self._commit_listeners.append(listener)

    def _committed(self, uow: UnitOfWork) -> None:
        # Only a commit that wrote outbox rows has anything for the relay, and only for the
        # lanes of those rows: each wake-up is a query on the lane's connection, on this
        # process's event loop (notifications commits hundreds of batches that publish
        # nothing). Rows written some other way still leave at the lanes' poll interval.
        if uow.published_alerts:
            self.relay.wake(alerts=True)
        if uow.published > uow.published_alerts:
            self.relay.wake()
        for listener in self._commit_listeners:
            listener(uow)

    def unit_of_work(self) -> UnitOfWork:
        def committed() -> None:
            self._committed(uow)

        uow = UnitOfWork(
            self.sessions, service=self.name, settings=self.settings, after_commit=committed
        )
        return uow

    def _subscribe(self) -> None:
        """One FastStream batch subscriber per consumer group, all handing to one consumer.

        The subscribers share the EventConsumer (so its inbox, parking and dead-letter path,
        and every handler for parked events replayed in either), each with its own fetches,
        batches and transactions. The consumer's adaptive batch limit is shared too: it
        follows the one database's health.
        """
        consumer = self.consumer
        offsets = self.offsets
        metrics = self.metrics
        service = self.name

        context = self.broker.context

        async def consume(body: Any) -> None:
            # The message from FastStream's context directly: asked for as a parameter
            # (`message: KafkaMessage`), it is resolved by a synchronous dependency that
            # FastStream runs in a worker thread, a thread hand-off for every batch.
            message: KafkaMessage = context.get_local("message")
            records = message.raw_message
            batch = records if isinstance(records, tuple) else (records,)
            pending = list(batch)

            kafka = message.consumer if isinstance(message.consumer, AIOKafkaConsumer) else None

            def committed(chunk: Sequence[Any]) -> None:
                # On an error FastStream rewinds each partition to the earliest record of
                # `raw_message`: only what no transaction committed is delivered again.
                del pending[: len(chunk)]
                message.raw_message = tuple(pending)
                if kafka is not None:
                    offsets.after(kafka, chunk)

            await consumer.process(batch, committed)
            if kafka is not None:
                # The offsets are on their way (`OffsetCommits`): FastStream's acknowledgement,
                # which would await a commit of its own, has nothing left to do.
                message.committed = AckStatus.ACKED
                if not self.started:  # stopping: FastStream stops the Kafka consumer next
                    await offsets.flush()
            _observe_lag(message, batch, metrics, service)

        prefix = self.settings.topic_prefix
        for group, topics in self.consumer_groups.items():
            lane = _lane_of(group, self.consumer_group)
            subscriber = self.broker.subscriber(
                *topics,
                group_id=group,
                batch=True,
                max_records=self.settings.consumer_batch_max,
                batch_timeout_ms=self.settings.consumer_batch_timeout_ms,
                fetch_max_wait_ms=self.settings.consumer_fetch_max_wait_ms,
                auto_offset_reset=self.settings.auto_offset_reset,
                session_timeout_ms=self.settings.consumer_session_timeout_ms,
                heartbeat_interval_ms=max(self.settings.consumer_session_timeout_ms // 5, 200),
                # Commit offsets only after the batch's transaction; rewind them on an error.
                ack_policy=AckPolicy.NACK_ON_ERROR,
                parser=_parse_leniently,
                decoder=_keep_raw,
                title=f"{self.name} {lane} consumer" if lane else f"{self.name} consumer",
                description=(
                    f"The consumer group {group.removeprefix(prefix)} of the {self.name} "
                    f"service{f' (its {lane} lane)' if lane else ''}; CloudEvents 1.0 "
                    "(structured or binary) of types "
                    f"{', '.join('pmo.' + event_name_of(t, prefix) for t in topics)}."
                ),
            )
            subscriber(consume)
            _without_idle_sleep(subscriber)
            self.subscribers[group] = subscriber

    def _declare_publishers(self) -> None:
        # The relay sends the messages; these declarations put them in the AsyncAPI document.
        for model in self.definition.publishes:
            self.broker.publisher(
                topic_name(model.event_name, self.settings.topic_prefix),
                title=f"pmo.{model.event_name}",
                description=(model.__doc__ or "").strip().splitlines()[0]
                if model.__doc__
                else None,
                schema=model,
            )

    async def start(self) -> None:
        """Wait for the database, migrate, connect to the broker, start the workers.

        Raises StartupFailed (one line naming the part and its setting) when the database or
        the broker is still not usable after their waits (`PMO_BROKER_WAIT_S` for the broker).
        """
        try:
            await wait_for_database(self.engine, timeout=self.settings.database_wait_s)
        except Exception as error:
            where = self.engine.url.render_as_string(hide_password=True)
            raise StartupFailed(
                f"PostgreSQL at {where} is not usable (PMO_DATABASE_URL): {_one_line(error)}"
            ) from error
        await migrate(self.engine, self.name)
        try:
            await self._on_broker("the idempotence check", self._check_idempotence)
            await self._on_broker("the outbox relay", self.relay.start)
            await self._on_broker("the consumer", self.broker.start)
        except (KafkaError, OSError) as error:
            raise StartupFailed(
                f"the Kafka broker at {self.settings.bootstrap_servers()} is not usable "
                f"(PMO_KAFKA_BOOTSTRAP_SERVERS): {_one_line(error)}"
            ) from error
        for worker in (*self.definition.workers, _expire_parked_events):
            self._workers.append(asyncio.create_task(worker(self), name=f"{self.name}-worker"))
        self.started = True
        # What start-up made (modules, ORM mappings, clients) lives as long as the process: out
        # of the cyclic collector's reach, a full collection no longer walks those ~150,000
        # objects every few batches (about a tenth of monitoring's time in a backlog).
        gc.freeze()
        # See GC_THRESHOLDS; the process's own are put back when this instance stops.
        self._gc_threshold = gc.get_threshold()
        gc.set_threshold(*GC_THRESHOLDS)
        log.info("%s started", self.name, extra={"service": self.name})

    async def _on_broker(self, what: str, start: Callable[[], Awaitable[None]]) -> None:
        """Start `what`, waiting (with backoff) while the broker is away, as for the database.

        A service started during a broker outage (or a freeze) waits for it rather than exit;
        after `PMO_BROKER_WAIT_S` it gives up with the broker's error.
        """

        def log_wait(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            # aiokafka's messages often start with their own type already.
            said = str(error)
            if error is not None and not said.startswith(type(error).__name__):
                said = f"{type(error).__name__}: {said}"
            log.warning(
                "%s: the broker is not answering (%s); trying again in %.1fs",
                what,
                said,
                state.upcoming_sleep,
                extra={"service": self.name},
            )

        async for attempt in AsyncRetrying(
            retry=retry_if_exception(_broker_away),
            wait=wait_exponential(multiplier=0.5, max=10),
            stop=stop_after_delay(self.settings.broker_wait_s),
            before_sleep=log_wait,
            reraise=True,
        ):
            with attempt:
                await start()

    async def _check_idempotence(self) -> None:
        """Fall back to a plain producer, with a warning, when the broker refuses idempotence."""
        options = self.relay.producer_options
        if not options.get("enable_idempotence"):
            return
        reason = await idempotence_refusal(options)
        if reason is not None:
            log.warning(IDEMPOTENCE_REFUSED.format(reason=reason), extra={"service": self.name})
            options["enable_idempotence"] = False

    async def stop(self) -> None:
        """Stop taking events, finish the batch in hand, flush, and let go of every connection."""
        self.started = False
        # The offsets of batches already done; the batch in hand flushes its own.
        await self.offsets.flush()
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()
        await self.relay.stop()
        await self.engine.dispose()
        self.tracer_provider.shutdown()
        gc.unfreeze()  # what this instance made may be garbage now (tests start many per process)
        if self._gc_threshold is not None:
            gc.set_threshold(*self._gc_threshold)
            self._gc_threshold = None
        log.info("%s stopped", self.name, extra={"service": self.name})

    async def ready(self) -> tuple[bool, dict[str, str]]:
        """Whether this instance can do its work now: the database answers, the broker answers and
        every consumer group's subscriber is running."""
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as error:
            checks["database"] = f"unavailable: {type(error).__name__}"
        try:
            stopped = [group for group, sub in self.subscribers.items() if not _running(sub)]
            checks["kafka"] = (
                ("not connected")
                if not (self.started and await self.broker.ping(timeout=2.0))
                else f"not consuming: {', '.join(stopped)}"
                if stopped
                else "ok"
            )
        except Exception as error:
            checks["kafka"] = f"unavailable: {type(error).__name__}"
        return all(value == "ok" for value in checks.values()), checks

    def http_app(self) -> FastAPI:
        from shared.http import create_http_app

        return create_http_app(self)


async def _expire_parked_events(runtime: ServiceRuntime) -> None:
    """Dead-letter parked events whose awaited event never came, so none waits for ever."""
    limit = runtime.settings.parked_expire_after
    interval = min(60.0, max(limit.total_seconds() / 4, 0.1))

    async def expire_once() -> None:
        async with runtime.unit_of_work() as uow:
            expired = await parking.expire(
                uow.session, consumer=runtime.name, older_than=datetime.now(UTC) - limit
            )
            for record, waits_for, reason, event_id, event_type, source in expired:
                await uow.dead_letter(
                    record,
                    reason=f"expired: waited longer than {limit} for {waits_for!r} ({reason})",
                    event_id=event_id,
                    event_type=event_type,
                    source=source,
                )
            await uow.commit()
        for record, *_ in expired:
            runtime.metrics.events_consumed.labels(
                runtime.name, record.topic, "dead_lettered"
            ).inc()
            runtime.metrics.dead_letters.labels(runtime.name, record.topic).inc()

    await repeat_rounds(
        expire_once,
        what="expiring parked events",
        service=runtime.name,
        pause=interval,
        pause_first=True,
    )


def _lane_of(group: str, service_group: str) -> str:
    """The lane a consumer group is for ("" for the service's own group)."""
    return group.removeprefix(service_group).removeprefix("-")


def _running(subscriber: BatchSubscriber) -> bool:
    """Whether a subscriber is started and its poll loop alive (FastStream restarts a loop
    that failed; one that ended for good leaves its group without this replica)."""
    return bool(subscriber.running) and any(not task.done() for task in subscriber.tasks)


def _without_idle_sleep(subscriber: Any) -> None:
    """Take FastStream's extra sleep out of a batch subscriber's poll loop.

    FastStream's batch subscriber waits up to `batch_timeout_ms` for records (aiokafka's
    `getmany`, which returns as soon as any arrive) and, when none came, then sleeps that long
    again before asking once more: a record that arrives during that sleep waits for it, up to
    50 ms at each hop of an alert's path. Without the sleep the poll's own wait paces an idle
    consumer (twenty polls a second at 50 ms) and a record is taken when it arrives.
    """
    if not isinstance(subscriber, BatchSubscriber):
        raise TypeError(f"expected FastStream's batch subscriber, got {type(subscriber).__name__}")

    async def get_msg(consumer: Any) -> tuple[ConsumerRecord[Any, Any], ...]:
        wait = subscriber.batch_timeout_ms / 1000
        began = time.monotonic()
        batches = await consumer.getmany(
            timeout_ms=subscriber.batch_timeout_ms, max_records=subscriber.max_records
        )
        records = tuple(record for records in batches.values() for record in records)
        if not records and (left := wait - (time.monotonic() - began)) > 0:
            # An empty answer before the wait ran out (no partition assigned yet, say): wait
            # out the rest, so that such a poll never spins.
            await asyncio.sleep(left)
        return records

    subscriber.get_msg = get_msg  # type: ignore[method-assign]


def _broker_away(error: BaseException) -> bool:
    """Whether a start failed because the broker is unreachable or busy, not misconfigured."""
    if isinstance(error, KafkaConnectionError | KafkaTimeoutError | OSError | TimeoutError):
        return True
    return isinstance(error, KafkaError) and bool(getattr(error, "retriable", False))


def _observe_lag(message: Any, batch: Sequence[Any], metrics: ServiceMetrics, service: str) -> None:
    consumer = getattr(message, "consumer", None)
    if consumer is None:
        return
    last: dict[tuple[str, int], int] = {}
    for record in batch:
        last[(record.topic, record.partition)] = record.offset
    for (topic, partition), offset in last.items():
        # The fetch response's high watermark, not `end_offsets()`: the embedded Tansu answers
        # ListOffsets with the last record batch's base offset + 1, which undercounts.
        highwater = consumer.highwater(TopicPartition(topic, partition))
        if highwater is not None:
            metrics.consumer_lag.labels(service, topic, str(partition)).set(
                max(highwater - offset - 1, 0)
            )
