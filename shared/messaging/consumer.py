"""The one event consumer: a Kafka batch becomes one transaction, with inbox and dead letters.

For each batch, in order: every record is parsed as a CloudEvent and validated against its
contract (bad input is dead-lettered with the reason); the inbox claims the batch's event ids in
one statement (a redelivered event is dead-lettered as a duplicate and has no second effect);
each new event is handled under its own trace; the transaction commits; only then does FastStream
commit the offsets. Handlers first run without savepoints; if one rejects, parks or fails on an
event, the batch is rolled back and done again with a savepoint per event, so that only that
event's work is undone. A failure of the database or the broker rolls the batch back
and rewinds the offsets, so the batch is delivered again; the transactions that follow are
shorter (halved by each such rollback, doubled by each commit up to the batch size), so that a
database restarting often still sees transactions commit between its restarts.

A handler is either per event (`Handler`: one event, its metadata, the unit of work) or per batch
(`per_batch(BatchHandler)`: the batch's consecutive events of its topic at once, in the order they
came, so that it loads what they need in one query each and writes with multi-row statements).
A batch handler runs under one span for the run, in the first event's trace and linked to (at
most `MAX_SPAN_LINKS` of) the others'; the events it publishes carry their cause's trace
(`Delivery.cause`, worked out only for the events that publish). When the batch is
done again with a savepoint per event, a batch handler is called with one event at a time, under
that event's own span: a rejected, parked or failing event is then told apart exactly as with a
per-event handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer

from shared.database import is_transient
from shared.events import Envelope, EventData, InvalidEvent, decode_data, parse_record
from shared.events.cloudevents import TYPE_PREFIX, salvage_identity
from shared.events.contracts import INBOUND_EVENTS, OUTBOUND_EVENTS
from shared.messaging import inbox, parking
from shared.messaging.dead_letters import UndeliverableRecord
from shared.messaging.unit_of_work import UnitOfWork
from shared.metrics import ServiceMetrics
from shared.telemetry import current_event_id, current_project_id, event_trace_context
from shared.topics import event_name_of

log = logging.getLogger(__name__)

E = TypeVar("E", bound=EventData)

MAX_SPAN_LINKS = 32
"""A batch handler's span links to the traces of at most this many of its run's other events
(each link costs the event's trace worked out; OpenTelemetry keeps 128 at most anyway)."""


class Rejected(Exception):
    """A handler refuses an event for a reason of the business (e.g. an impossible transition).

    The event is dead-lettered with this reason and nothing it did is kept.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Deferred(Exception):
    """A handler cannot apply an event yet: it waits for something else to arrive first.

    The event is parked with `waits_for` (e.g. the project id) and replayed, in arrival order,
    when a handler calls `uow.release(waits_for)`.
    """

    def __init__(self, waits_for: str, reason: str) -> None:
        super().__init__(reason)
        self.waits_for = waits_for
        self.reason = reason


class EventMeta(NamedTuple):
    """What a handler may need to know about the event besides its data.

    A named tuple rather than a frozen dataclass: one is made for every event handled, and a
    frozen dataclass's `__init__` costs about five times as much.
    """

    id: str
    source: str
    type: str
    time: datetime | None
    topic: str
    partition: int
    offset: int


Handler = Callable[[E, EventMeta, UnitOfWork], Awaitable[None]]


@dataclass(frozen=True)
class Delivery(Generic[E]):
    """One event of a run, as a batch handler receives it."""

    event: E
    meta: EventMeta
    trace: Callable[[], Context] = field(repr=False, compare=False)
    """Works out the event's trace (read it as `cause`): most events of a run publish nothing,
    so it is worked out only for those that do, and for the run's span."""

    @functools.cached_property
    def cause(self) -> Context:
        """The trace the event belongs to: pass it to `uow.publish(..., cause=)` so that each
        event published because of this one continues its trace."""
        return self.trace()

    @contextlib.contextmanager
    def continued(self) -> Iterator[None]:
        """Make the event's trace the current one, for code that publishes with `uow.publish`
        without naming a cause."""
        token = otel_context.attach(self.cause)
        try:
            yield
        finally:
            otel_context.detach(token)


BatchHandler = Callable[[Sequence[Delivery[E]], UnitOfWork], Awaitable[None]]
"""Handles a run of events of one topic in one call, in the order they came.

It must give the same effects as handling them one by one in that order (later events of a
project see what earlier ones did), and raise `Rejected`, `Deferred` or any error as a per-event
handler would: the consumer then does the batch again, calling it with one event at a time."""


@dataclass(frozen=True)
class PerBatch(Generic[E]):
    """Marks a `BatchHandler` in a service's handlers (see `per_batch`)."""

    handler: BatchHandler[E]


def per_batch(handler: BatchHandler[E]) -> PerBatch[E]:
    """Subscribe `handler` to take the batch's events of its topic at once."""
    return PerBatch(handler)


AnyHandler = Handler[Any] | PerBatch[Any]


@dataclass(frozen=True)
class Subscription(Generic[E]):
    model: type[E]
    handler: Handler[E] | PerBatch[E]


def subscriptions(handlers: Mapping[str, AnyHandler]) -> dict[str, Subscription[Any]]:
    """Pair each handled event name with its contract model."""
    known = {**INBOUND_EVENTS, **OUTBOUND_EVENTS}
    unknown = set(handlers) - set(known)
    if unknown:
        raise ValueError(f"No event contract for {sorted(unknown)}")
    return {name: Subscription(known[name], handler) for name, handler in handlers.items()}


class _NeedsCare(Exception):
    """The optimistic pass met an event that must be handled in a savepoint of its own."""


@dataclass
class _Parsed:
    record: UndeliverableRecord
    envelope: Envelope
    data: EventData
    subscription: Subscription[Any]


class EventConsumer:
    """Handles batches of Kafka records for one service."""

    def __init__(
        self,
        *,
        service: str,
        handlers: Mapping[str, AnyHandler],
        unit_of_work: Callable[[], UnitOfWork],
        tracer: Tracer,
        metrics: ServiceMetrics,
        topic_prefix: str = "",
        max_event_bytes: int = 262_144,
        batch_max: int = 500,
    ) -> None:
        self.service = service
        self.max_event_bytes = max_event_bytes
        self.batch_max = batch_max
        self.batch_limit = batch_max
        """Events per transaction now: halved by a rollback for an infrastructure error, doubled
        by each commit, up to `batch_max`. A database that restarts every few seconds then still
        sees transactions short enough to commit between two restarts."""
        self.subscriptions = subscriptions(handlers)
        self.unit_of_work = unit_of_work
        self.tracer = tracer
        self.metrics = metrics
        self.topic_prefix = topic_prefix
        self._retry_delay = 0.0

    @property
    def event_names(self) -> list[str]:
        return list(self.subscriptions)

    async def process(
        self,
        records: Sequence[Any],
        committed: Callable[[Sequence[Any]], None] | None = None,
    ) -> None:
        """Process one batch, in transactions of at most `batch_limit` events each.

        `committed` is told the records of each transaction that commits, so that a rollback
        later in the batch has only the rest delivered again. Raises only when the rest of the
        batch must be delivered again.
        """
        done = 0
        while done < len(records):
            chunk = records[done : done + self.batch_limit]
            try:
                await self._transaction(chunk)
            except Exception:
                # Most likely the database went away while this transaction ran: a shorter one
                # may fit between two outages, where the same length would fail again.
                self.batch_limit = max(len(chunk) // 2, 1)
                raise
            self.batch_limit = min(self.batch_limit * 2, self.batch_max)
            done += len(chunk)
            if committed is not None:
                committed(chunk)

    async def _transaction(self, records: Sequence[Any]) -> None:
        """Process records in one transaction; raises when they must be delivered again."""
        started = time.perf_counter()
        try:
            try:
                await self._process(records)
            except Exception as error:
                if is_transient(error):
                    raise
                # Something outside any handler refused the batch (a value the database will
                # not store, say): find the record, dead-letter it alone, and go on.
                log.exception(
                    "batch of %d failed outside the handlers; taking it record by record",
                    len(records),
                    extra={"service": self.service},
                )
                for record in records:
                    await self._process_alone(record)
        except Exception as error:
            # The database or broker is away (or even a lone dead letter failed): back off so
            # the redelivery loop does not spin.
            self._retry_delay = min(max(self._retry_delay * 2, 0.5), 10.0)
            log.warning(
                "batch of %d rolled back (%s: %s); retrying in %.1fs, at most %d per transaction",
                len(records),
                type(error).__name__,
                error,
                self._retry_delay,
                max(len(records) // 2, 1),
                extra={"service": self.service},
            )
            await asyncio.sleep(self._retry_delay)
            raise
        self._retry_delay = 0.0
        self.metrics.batch_seconds.labels(self.service).observe(time.perf_counter() - started)
        self.metrics.batch_size.labels(self.service).observe(len(records))

    async def _process(self, raw_records: Sequence[Any]) -> None:
        parsed: list[_Parsed] = []
        invalid: list[tuple[UndeliverableRecord, InvalidEvent]] = []
        for raw in raw_records:
            record = UndeliverableRecord.of(raw)
            try:
                parsed.append(self._parse(record))
            except InvalidEvent as error:
                invalid.append((record, error))
        try:
            # Most batches hold only events their handlers accept: handle them without a
            # savepoint each, which saves two round trips per event.
            outcomes = await self._attempt(parsed, invalid, careful=False)
        except Exception as error:
            if is_transient(error):
                raise
            # Some event is to be rejected, parked or broke its handler (or its writes failed
            # at commit): do the batch again, each event in its own savepoint, so that one
            # event's failure undoes only itself.
            outcomes = await self._attempt(parsed, invalid, careful=True)
        for (topic, outcome), count in Counter(outcomes).items():
            self.metrics.events_consumed.labels(self.service, topic, outcome).inc(count)
            if outcome in ("dead_lettered", "duplicate"):
                self.metrics.dead_letters.labels(self.service, topic).inc(count)

    async def _process_alone(self, raw: Any) -> None:
        try:
            await self._process([raw])
        except Exception as error:
            if is_transient(error):
                raise
            # The reason is for the sender: the internal error (SQL, a stack) goes to the log,
            # under the record's coordinates, and never into the dead letter.
            record = UndeliverableRecord.of(raw)
            log.error(
                "record %s[%d]@%d could not be processed; dead-lettered",
                record.topic,
                record.partition,
                record.offset,
                exc_info=error,
                extra={"service": self.service},
            )
            reason = (
                f"could not be processed by {self.service} (an internal error, logged with "
                f"topic {record.topic}, partition {record.partition}, offset {record.offset})"
            )
            try:
                async with self.unit_of_work() as uow:
                    await uow.dead_letter(record, reason=reason)
                    await uow.commit()
            except Exception as failure:
                if is_transient(failure):
                    raise
                # Even its bytes cannot be kept (no such record is known, but one must never
                # stop the partition): keep the coordinates and the reason only.
                async with self.unit_of_work() as uow:
                    await uow.dead_letter(
                        UndeliverableRecord(
                            record.topic, record.partition, record.offset, None, None, []
                        ),
                        reason=reason + "; its bytes could not be stored",
                    )
                    await uow.commit()
            self.metrics.events_consumed.labels(self.service, record.topic, "dead_lettered").inc()
            self.metrics.dead_letters.labels(self.service, record.topic).inc()

    async def _attempt(
        self,
        parsed: Sequence[_Parsed],
        invalid: Sequence[tuple[UndeliverableRecord, InvalidEvent]],
        *,
        careful: bool,
    ) -> list[tuple[str, str]]:
        """One transaction for the whole batch; returns each event's outcome once committed."""
        outcomes: list[tuple[str, str]] = []
        async with self.unit_of_work() as uow:
            for record, error in invalid:
                await _dead_letter_invalid(uow, record, error)
                outcomes.append((record.topic, "dead_lettered"))
            identities = {(p.envelope.id, p.envelope.source): p.envelope.type for p in parsed}
            keys = {p.data.key() for p in parsed}
            fresh = await inbox.claim(
                uow.session,
                self.service,
                [(i, s, t) for (i, s), t in identities.items()],
                lock=uow.lock_names(keys),
            )
            # The batch's keys (project ids) are held until it commits, in the claim's statement.
            # Kafka gives one project's events to one consumer, but around a rebalance two
            # replicas may both hold some; and "is the project there? then park" must not
            # interleave with "create the project, then release what waited" in another
            # replica, or an event waits for ever. Sorted, so two batches cannot deadlock
            # (PostgreSQL would abort one anyway, and that batch is retried). Taken before any
            # savepoint: a handler locking its project (`uow.lock`) asks for nothing more.
            uow.held.update(keys)
            run: list[_Parsed] = []  # consecutive events for one batch handler, not handled yet
            for item in parsed:
                identity = (item.envelope.id, item.envelope.source)
                if identity not in fresh:
                    await uow.dead_letter(
                        item.record,
                        reason=(
                            f"duplicate: event {item.envelope.id!r} from "
                            f"{item.envelope.source!r} was already processed"
                        ),
                        event_id=item.envelope.id,
                        event_type=item.envelope.type,
                        source=item.envelope.source,
                    )
                    outcomes.append((item.record.topic, "duplicate"))
                    continue
                fresh.discard(identity)  # a second copy later in this batch is a duplicate too
                if not careful and isinstance(item.subscription.handler, PerBatch):
                    if run and run[0].subscription is not item.subscription:
                        await self._handle_run(run, uow, outcomes)
                        run = []
                    run.append(item)
                    continue
                if run:
                    await self._handle_run(run, uow, outcomes)
                    run = []
                outcomes.append((item.record.topic, await self._handle(item, uow, careful)))
                await self._replay_released(uow, outcomes, careful)
            if run:
                await self._handle_run(run, uow, outcomes)
            await uow.commit()
        return outcomes

    def _parse(self, record: UndeliverableRecord) -> _Parsed:
        size = record.size
        if size > self.max_event_bytes:
            # Checked before anything is made of it: what is accepted must fit in the events
            # it causes, and a sender needs the size and the limit, not a broker error later.
            raise InvalidEvent(
                f"record is {size:,} bytes (value, key and headers); events of at most "
                f"{self.max_event_bytes:,} bytes are accepted (PMO_MAX_EVENT_BYTES)"
            )
        envelope = parse_record(record.value, record.headers)
        expected = event_name_of(record.topic, self.topic_prefix)
        # The whole type, prefix included: "project-started" is not "pmo.project-started".
        if envelope.type != TYPE_PREFIX + expected:
            raise InvalidEvent(
                f"event type {envelope.type!r} does not belong on topic {record.topic!r}, "
                f"which carries only '{TYPE_PREFIX}{expected}'",
                envelope.identity,
            )
        subscription = self.subscriptions.get(expected)
        if subscription is None:
            raise InvalidEvent(
                f"{self.service} does not handle {envelope.type!r}", envelope.identity
            )
        return _Parsed(record, envelope, decode_data(envelope, subscription.model), subscription)

    async def _handle(self, item: _Parsed, uow: UnitOfWork, careful: bool) -> str:
        envelope, record = item.envelope, item.record
        parent = event_trace_context(
            record.headers, envelope.extensions, envelope.id, envelope.source
        )
        project_id = getattr(item.data, "project_id", None)
        event_token = current_event_id.set(envelope.id)
        project_token = current_project_id.set(project_id)
        started = time.perf_counter()
        try:
            with self.tracer.start_as_current_span(
                f"handle {envelope.type}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": record.topic,
                    "messaging.message.id": envelope.id,
                    "messaging.kafka.destination.partition": record.partition,
                    "messaging.kafka.message.offset": record.offset,
                    "cloudevents.event_type": envelope.type,
                    "cloudevents.event_source": envelope.source,
                    "pmo.project_id": project_id or "",
                    # A rolled-back optimistic pass leaves a span too; this tells them apart.
                    "pmo.pass": "careful" if careful else "optimistic",
                },
            ) as span:
                meta = EventMeta(
                    id=envelope.id,
                    source=envelope.source,
                    type=envelope.type,
                    time=envelope.time,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
                if not careful:
                    try:
                        await _call(item.subscription.handler, item.data, meta, uow)
                    except (Deferred, Rejected) as needs_care:
                        raise _NeedsCare from needs_care
                    except Exception as error:
                        if is_transient(error):
                            raise
                        raise _NeedsCare from error
                    return "processed"
                try:
                    async with uow.session.begin_nested():
                        await _call(item.subscription.handler, item.data, meta, uow)
                except Deferred as deferred:
                    await parking.park(
                        uow.session,
                        record,
                        consumer=self.service,
                        waits_for=deferred.waits_for,
                        reason=deferred.reason,
                        event_id=envelope.id,
                        source=envelope.source,
                        event_type=envelope.type,
                    )
                    span.add_event("parked", {"waits_for": deferred.waits_for})
                    return "parked"
                except Rejected as rejected:
                    span.set_status(Status(StatusCode.ERROR, rejected.reason))
                    await self._reject(item, uow, f"rejected: {rejected.reason}")
                    return "dead_lettered"
                except Exception as error:
                    if is_transient(error):
                        raise
                    # A handler that breaks on one event must not stop the consumer: the event
                    # is dead-lettered with the error, and the bug shows in logs and metrics.
                    span.record_exception(error)
                    span.set_status(Status(StatusCode.ERROR, type(error).__name__))
                    log.exception(
                        "handler failed on %s %s",
                        envelope.type,
                        envelope.id,
                        extra={"service": self.service},
                    )
                    await self._reject(item, uow, f"handler error: {type(error).__name__}: {error}")
                    return "dead_lettered"
                return "processed"
        finally:
            self.metrics.event_processing_seconds.labels(self.service, record.topic).observe(
                time.perf_counter() - started
            )
            current_event_id.reset(event_token)
            current_project_id.reset(project_token)

    async def _handle_run(
        self, run: Sequence[_Parsed], uow: UnitOfWork, outcomes: list[tuple[str, str]]
    ) -> None:
        """Hand a run of one topic's events to its batch handler, in one call and one span.

        The span is in the first event's trace and linked to the others' (the OpenTelemetry way
        for a batch; up to `MAX_SPAN_LINKS` of them); a run of one event is that event's
        handling span, as with a per-event handler. The events the handler publishes carry their
        own cause's trace. Any refusal or failure sends the whole batch to the careful pass
        (`_NeedsCare`), where each event is handled alone.
        """
        first = run[0]
        handler = first.subscription.handler
        assert isinstance(handler, PerBatch), "a run is made of a batch handler's events only"
        deliveries: list[Delivery[Any]] = []
        for item in run:
            envelope, record = item.envelope, item.record
            deliveries.append(
                Delivery(
                    item.data,
                    EventMeta(
                        id=envelope.id,
                        source=envelope.source,
                        type=envelope.type,
                        time=envelope.time,
                        topic=record.topic,
                        partition=record.partition,
                        offset=record.offset,
                    ),
                    functools.partial(
                        event_trace_context,
                        record.headers,
                        envelope.extensions,
                        envelope.id,
                        envelope.source,
                    ),
                )
            )
        links = [
            Link(trace.get_current_span(delivery.cause).get_span_context())
            for delivery in deliveries[1 : 1 + MAX_SPAN_LINKS]
        ]
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.destination.name": first.record.topic,
            "messaging.batch.message_count": len(run),
            "cloudevents.event_type": first.envelope.type,
            "pmo.pass": "optimistic",
        }
        if len(run) == 1:  # the span of that event's handling, as a per-event handler's
            attributes["messaging.message.id"] = first.envelope.id
            attributes["pmo.project_id"] = getattr(first.data, "project_id", None) or ""
        started = time.perf_counter()
        with self.tracer.start_as_current_span(
            f"handle {first.envelope.type}"
            if len(run) == 1
            else f"handle batch {first.envelope.type}",
            context=deliveries[0].cause,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes=attributes,
        ):
            try:
                await handler.handler(deliveries, uow)
            except (Deferred, Rejected) as needs_care:
                raise _NeedsCare from needs_care
            except Exception as error:
                if is_transient(error):
                    raise
                raise _NeedsCare from error
        # One figure per event still, each the event's share of the run's time.
        share = (time.perf_counter() - started) / len(run)
        timing = self.metrics.event_processing_seconds.labels(self.service, first.record.topic)
        for item in run:
            timing.observe(share)
            outcomes.append((item.record.topic, "processed"))
        await self._replay_released(uow, outcomes, careful=False)

    async def _replay_released(
        self, uow: UnitOfWork, outcomes: list[tuple[str, str]], careful: bool
    ) -> None:
        """Handle the parked events whose wait a handler just ended, in the order they came."""
        while uow.released:
            key = uow.released.pop(0)
            for record in await parking.unpark(uow.session, consumer=self.service, waits_for=key):
                try:
                    item = self._parse(record)
                except InvalidEvent as invalid:  # e.g. the contract changed while it waited
                    await _dead_letter_invalid(uow, record, invalid)
                    outcomes.append((record.topic, "dead_lettered"))
                    continue
                outcomes.append((record.topic, await self._handle(item, uow, careful)))

    async def _reject(self, item: _Parsed, uow: UnitOfWork, reason: str) -> None:
        log.warning(
            "dead-lettered %s %s: %s",
            item.envelope.type,
            item.envelope.id,
            reason,
            extra={"service": self.service},
        )
        await uow.dead_letter(
            item.record,
            reason=reason,
            event_id=item.envelope.id,
            event_type=item.envelope.type,
            source=item.envelope.source,
        )


async def _call(
    handler: Handler[Any] | PerBatch[Any], data: EventData, meta: EventMeta, uow: UnitOfWork
) -> None:
    """Handle one event with either form of handler (a batch handler gets a run of one)."""
    if isinstance(handler, PerBatch):
        current = otel_context.get_current()  # the event's own span, as it is now
        await handler.handler([Delivery(data, meta, lambda: current)], uow)
    else:
        await handler(data, meta, uow)


async def _dead_letter_invalid(
    uow: UnitOfWork, record: UndeliverableRecord, error: InvalidEvent
) -> None:
    """Dead-letter a record refused as invalid, naming the event whenever it could be read."""
    identity = error.identity
    event_id: str | None
    source: str | None
    event_type: str | None
    if identity is not None:
        event_id, source, event_type = identity.id, identity.source, identity.type
    else:
        event_id, source, event_type = salvage_identity(record.value, record.headers)
    await uow.dead_letter(
        record, reason=error.reason, event_id=event_id, event_type=event_type, source=source
    )
