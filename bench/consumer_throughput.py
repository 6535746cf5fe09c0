"""How many `status-changed` events per second one service instance takes, against a baseline
that does the least any consumer with the same guarantees must do, in the same run.

The services first take P projects' `project-started`; then N `status-changed` CloudEvents are
published and, on the same broker and database in the same run, we time consuming them as a
backlog:
  * baseline (batched writes): a plain aiokafka consumer in its own group; per batch of at most
    500 records it parses each as a CloudEvent and validates its data against the contract, then
    runs ONE asyncpg transaction: an inbox insert of the batch's event ids (one multi-row
    statement, ON CONFLICT DO NOTHING) and an upsert of each project's latest status (one
    multi-row statement); offsets are committed after the transaction;
  * each converted service, one instance: registry and monitoring, full processing (parse,
    validate, inbox, the handler's work: report history, earned value and health, history and
    outbox rows; one transaction per batch, offsets after commit).
Then allocation's and notifications' busiest inbound topics, the same way (`BUSIEST`): each
service takes the registry's `project-registered` of the P projects, N events of the topic are
published (`resource-requested`: one new request each; `project-health-assessed`: one per status
report; `project-at-risk`: an alert each), and a baseline of the same shape (parse and validate,
one transaction per batch: the inbox insert and one multi-row statement writing the same amount
of state: a row per request, the newest assessment per project, a queued notice per alert) runs
before one instance of the service with full processing (allocation: the requests and their
pending re-resolutions, its re-resolution worker running beside; notifications: its view of
the project, the queued notices, its delivery worker running beside).
The figure is events from the first consumed to the last, per second (and, under each service's
lines, the CPU seconds its process spent from its start to its stop, every thread: a figure the
machine's load moves far less than the seconds); the ratio is the service's
against the baseline's (each against its own topic's; each baseline the fastest of
`BASELINE_RUNS` runs). The target (issue 11) is a ratio of at
least 0.25. Allocation decides its requests after taking them (its worker re-solves the
requests' components, coalescing batches for up to `allocation_resolution_coalesce_s`), so it
gets a second line, `until decided`: from the first request taken until every request is
decided and its `resource-allocated` written to the outbox (polled every 50 ms), against the
same baseline.

Usage: python -m bench.consumer_throughput [--events 20000] [--projects 200]
Uses PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS / PMO_BENCH_DATABASE_URL if set, else the embedded broker
and the PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pmo.embedded import EmbeddedKafka
from pmo.topics import create_topics
from services.catalog import SERVICES
from shared.events import EventData, decode_data, parse_record, to_structured
from shared.events.contracts import (
    ProjectAtRisk,
    ProjectHealthAssessed,
    ProjectStarted,
    ResourceRequested,
    RiskReason,
    StatusChanged,
)
from shared.runtime import ServiceRuntime
from shared.settings import ServiceName, Settings

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
START = date(2026, 1, 1)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


async def publish(settings: Settings, events: list[EventData]) -> None:
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(), enable_idempotence=False, linger_ms=5
    )
    await producer.start()
    try:
        for event in events:
            value, headers = to_structured(event, source="/bench")
            await producer.send(
                f"{settings.topic_prefix}{event.event_name}",
                value,
                key=event.key().encode(),
                headers=headers,
            )
        await producer.flush()
    finally:
        await producer.stop()


def portfolio(projects: int) -> list[EventData]:
    return [
        ProjectStarted(
            project_id=f"PRJ-{n}",
            name=f"Project {n}",
            business_unit="Bench",
            manager="pm@example.com",
            start_date=START,
            planned_finish_date=START + timedelta(days=365),
            budget=1_000_000,
            currency="EUR",
        )
        for n in range(projects)
    ]


def reports(events: int, projects: int) -> list[EventData]:
    return [
        StatusChanged(
            project_id=f"PRJ-{n % projects}",
            as_of=START + timedelta(days=1 + n // projects),
            percent_complete=min(100.0, (n // projects) * 0.3),
            actual_cost=1000.0 * (n // projects),
        )
        for n in range(events)
    ]


def consumed(runtime: ServiceRuntime, topic: str | None = None) -> float:
    """Events the service has taken (any outcome), of `topic` only if given."""
    return sum(
        sample.value
        for metric in runtime.metrics.events_consumed.collect()
        for sample in metric.samples
        if sample.name.endswith("_total") and (topic is None or sample.labels["topic"] == topic)
    )


def baseline_consumer(settings: Settings, topic: str) -> AIOKafkaConsumer:
    """A plain aiokafka consumer of `topic` in a group of its own, as every baseline reads."""
    return AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        session_timeout_ms=2000,
        heartbeat_interval_ms=400,
    )


STALL_S = 120.0
"""A part that takes no event for this long has stopped: the bench says so and ends."""


class Stalled(RuntimeError):
    """A part of the bench took no event for `STALL_S` seconds (how many of how many it took)."""


class Idle:
    """The stall clock of a baseline's consume loop: `moved` on each batch, `check` when a poll
    comes back empty (raises `Stalled` after `STALL_S` seconds without a record)."""

    def __init__(self, part: str) -> None:
        self.part = part
        self.since = time.perf_counter()

    def moved(self) -> None:
        self.since = time.perf_counter()

    def check(self, seen: int, total: int) -> None:
        if time.perf_counter() - self.since > STALL_S:
            raise Stalled(
                f"{self.part} took {seen} of {total} events and then none for {STALL_S:.0f} s"
            )


async def until_consumed(
    runtime: ServiceRuntime, total: float, topic: str | None = None, poll_s: float = 0.01
) -> float:
    """Seconds from the first of these events consumed to the last (of `topic`, if given).

    Raises `Stalled` when no event is taken for `STALL_S` seconds. Counts from the runtime's
    own metrics, which start at 0: watch from before `runtime.start()` (see `consume_as`),
    since a service may take a whole backlog while it starts (its second consumer group is
    still joining)."""
    before = 0.0
    started = None
    last, last_change = 0.0, time.perf_counter()
    while True:
        done = consumed(runtime, topic) - before
        now = time.perf_counter()
        if done and started is None:
            started = now
        if done >= total:
            return now - (started or now)
        if done != last:
            last, last_change = done, now
        elif now - last_change > STALL_S:
            raise Stalled(
                f"{runtime.name} took {done:.0f} of {total:.0f} events of "
                f"{topic or 'its topics'} and then none for {STALL_S:.0f} s"
            )
        await asyncio.sleep(poll_s)


BASELINE_RUNS = 3
"""Each baseline runs this many times (each in a group of its own, from empty tables) and the
fastest counts: a single run of well under a second swung between 0.34 and 0.83 s from one run
to the next on a quiet machine, which made the ratios swing with it; the fastest is the
baseline's own speed, so the ratios against it are the lowest, not flattered by a slow one."""

BASELINE_SCHEMA = """
DROP SCHEMA IF EXISTS bench CASCADE;
CREATE SCHEMA bench;
CREATE TABLE bench.inbox (
    event_id text NOT NULL, source text NOT NULL, event_type text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (event_id, source)
);
CREATE TABLE bench.project_status (
    project_id text PRIMARY KEY, as_of date NOT NULL, percent_complete double precision NOT NULL,
    actual_cost double precision NOT NULL, updated_at timestamptz NOT NULL DEFAULT now()
);
"""


async def batched_write_baseline(settings: Settings, total: int) -> float:
    """The baseline: consume, parse and validate, one asyncpg transaction per batch (an inbox
    insert and a state upsert, one multi-row statement each), offsets after commit. Seconds
    from the first batch to the last."""
    topic = f"{settings.topic_prefix}status-changed"
    assert settings.database_url is not None, "bench_settings names the run's database"
    database = await asyncpg.connect(settings.database_url)
    await database.execute(BASELINE_SCHEMA)
    consumer = baseline_consumer(settings, topic)
    await consumer.start()
    seen, started = 0, None
    idle = Idle(f"the baseline of {topic}")
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [record for part in batch.values() for record in part]
            if not records:
                idle.check(seen, total)
                continue
            idle.moved()
            if started is None:
                started = time.perf_counter()
            ids, sources, types = [], [], []
            latest: dict[str, StatusChanged] = {}
            for record in records:
                envelope = parse_record(record.value, record.headers or [])
                report = decode_data(envelope, StatusChanged)
                ids.append(envelope.id)
                sources.append(envelope.source)
                types.append(envelope.type)
                latest[report.project_id] = report  # one row per project and statement
            async with database.transaction():
                await database.execute(
                    "INSERT INTO bench.inbox (event_id, source, event_type) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
                    "ON CONFLICT DO NOTHING",
                    ids,
                    sources,
                    types,
                )
                await database.execute(
                    "INSERT INTO bench.project_status "
                    "(project_id, as_of, percent_complete, actual_cost) "
                    "SELECT * FROM unnest($1::text[], $2::date[], $3::float8[], $4::float8[]) "
                    "ON CONFLICT (project_id) DO UPDATE SET as_of = excluded.as_of, "
                    "percent_complete = excluded.percent_complete, "
                    "actual_cost = excluded.actual_cost, updated_at = now()",
                    list(latest),
                    [report.as_of for report in latest.values()],
                    [report.percent_complete for report in latest.values()],
                    [report.actual_cost for report in latest.values()],
                )
            await consumer.commit()
            seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await database.close()


SERVICES_MEASURED: tuple[ServiceName, ...] = ("registry", "monitoring")
"""The services whose `status-changed` path works per batch."""


QUIET_CLOCK = {"monitoring_staleness_check_interval_s": 3600.0, "monitoring_stale_after_days": 3650}
"""Monitoring's staleness clock kept out of the timing: the reports are dated from the bench's
fixed start (months ago), so the clock would flag every project stale at start-up and reassess
them one by one beside the consumer; it is a worker of its own, not what is measured here."""


async def consume_as(
    settings: Settings,
    service: ServiceName,
    topic: str,
    total: int,
    then: Callable[[], Awaitable[None]] | None = None,
) -> float:
    """Start one instance of the service, watch it take `total` events of `topic` (the full
    topic name), await `then` if given (not timed), stop it: the seconds from the first event
    taken to the last."""
    runtime = ServiceRuntime(SERVICES[service], settings)
    watch = asyncio.create_task(until_consumed(runtime, total, topic, poll_s=0.02))
    try:
        await runtime.start()
        seconds = await watch
        if then is not None:
            await then()
        return seconds
    finally:
        watch.cancel()
        await runtime.stop()


async def take_portfolio(settings: Settings, service: ServiceName, projects: int) -> None:
    """Let the service take the projects' `project-started` and send what that made (the
    registry's `project-registered`, which allocation and notifications take), then stop it."""

    async def sent() -> None:
        query = f"SELECT count(*) FROM {service}.outbox WHERE state = 'pending'"
        await asyncio.wait_for(settled(settings, query), timeout=120)

    await consume_as(settings, service, f"{settings.topic_prefix}project-started", projects, sent)


async def service_run(settings: Settings, service: ServiceName, total: int) -> float:
    """One instance of the service takes the backlog of `total` status reports: seconds."""
    return await consume_as(settings, service, f"{settings.topic_prefix}status-changed", total)


# --- allocation's and notifications' busiest topics ------------------------------------------


def requests(events: int, projects: int) -> list[EventData]:
    """`events` resource requests spread over the projects, eight weeks each from this week."""
    today = date.today()
    return [
        ResourceRequested(
            project_id=f"PRJ-{n % projects}",
            request_id=f"REQ-{n}",
            skill=("Python", "SAP", "Testing")[n % 3],
            fte=0.5,
            start=today,
            end=today + timedelta(weeks=8),
        )
        for n in range(events)
    ]


def assessments(events: int, projects: int) -> list[EventData]:
    """`events` health assessments spread over the projects, as monitoring publishes one per
    status report: newer `assessed_at` per project, one in ten amber with a schedule reason."""
    assessed = datetime(2026, 1, 1, tzinfo=UTC)
    late = RiskReason(code="schedule", message="SPI 0.85 below 0.90", numbers={"spi": 0.85})
    return [
        ProjectHealthAssessed(
            project_id=f"PRJ-{n % projects}",
            health="amber" if n % 10 == 9 else "green",
            reasons=[late] if n % 10 == 9 else [],
            metrics={"spi": 0.85 if n % 10 == 9 else 1.0, "cpi": 1.0, "ev": 1000.0 * n},
            as_of=START + timedelta(days=1 + n // projects),
            assessed_at=assessed + timedelta(seconds=n),
            at_risk_since=assessed if n % 10 == 9 else None,
            trigger="status-changed",
        )
        for n in range(events)
    ]


def alerts(events: int, projects: int) -> list[EventData]:
    """`events` at-risk alerts spread over the projects (monitoring sends one when a project's
    health worsens; a backlog of them is what a replay or a bad month end brings)."""
    late = RiskReason(code="schedule", message="SPI 0.80 below 0.90", numbers={"spi": 0.8})
    return [
        ProjectAtRisk(
            project_id=f"PRJ-{n % projects}",
            severity="amber",
            reasons=[late],
            metrics={"spi": 0.8, "cpi": 1.0},
        )
        for n in range(events)
    ]


@dataclass(frozen=True)
class StateWrite:
    """The baseline's state statement for one topic: a table and an upsert from arrays."""

    table: str
    sql: str
    """INSERT ... SELECT FROM unnest($1, ...) ...: its parameters are `columns(events)`."""
    columns: Callable[[list[Any]], list[list[Any]]]


def _latest_per_project(events: list[Any]) -> list[Any]:
    return list({event.project_id: event for event in events}.values())


REQUEST_ROWS = StateWrite(
    "CREATE TABLE bench.request (request_id text PRIMARY KEY, project_id text NOT NULL, "
    "skill text NOT NULL, fte double precision, start_date date NOT NULL, "
    "end_date date NOT NULL, received_at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO bench.request (request_id, project_id, skill, fte, start_date, end_date) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::date[], "
    "$6::date[]) ON CONFLICT DO NOTHING",
    lambda events: [
        [event.request_id for event in events],
        [event.project_id for event in events],
        [event.skill for event in events],
        [event.fte for event in events],
        [event.start for event in events],
        [event.end for event in events],
    ],
)
"""One new row per request (allocation keeps every request)."""

HEALTH_ROWS = StateWrite(
    "CREATE TABLE bench.project_health (project_id text PRIMARY KEY, health text NOT NULL, "
    "reasons jsonb NOT NULL, metrics jsonb NOT NULL, assessed_at timestamptz NOT NULL, "
    "updated_at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO bench.project_health (project_id, health, reasons, metrics, assessed_at) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[], "
    "$5::timestamptz[]) ON CONFLICT (project_id) DO UPDATE SET health = excluded.health, "
    "reasons = excluded.reasons, metrics = excluded.metrics, "
    "assessed_at = excluded.assessed_at, updated_at = now()",
    lambda events: [
        [event.project_id for event in _latest_per_project(events)],
        [event.health for event in _latest_per_project(events)],
        [
            json.dumps([reason.model_dump(mode="json") for reason in event.reasons])
            for event in _latest_per_project(events)
        ],
        [json.dumps(event.metrics) for event in _latest_per_project(events)],
        [event.assessed_at for event in _latest_per_project(events)],
    ],
)
"""The newest assessment per project (notifications keeps the newest)."""

NOTICE_ROWS = StateWrite(
    "CREATE TABLE bench.notice (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
    "project_id text NOT NULL, severity text NOT NULL, context jsonb NOT NULL, "
    "queued_at timestamptz NOT NULL DEFAULT now())",
    "INSERT INTO bench.notice (project_id, severity, context) "
    "SELECT * FROM unnest($1::text[], $2::text[], $3::jsonb[])",
    lambda events: [
        [event.project_id for event in events],
        [event.severity for event in events],
        [event.model_dump_json() for event in events],
    ],
)
"""One queued notice per alert (notifications queues one delivery per alert for the project
manager's subscription, which it makes on registration)."""


async def topic_baseline(
    settings: Settings, model: type[EventData], write: StateWrite, total: int
) -> float:
    """The batched-write baseline for one topic (as `batched_write_baseline`, whose shape it
    has): consume, parse and validate as `model`, one asyncpg transaction per batch with a
    multi-row inbox insert and `write`'s one statement, offsets after commit. Seconds from the
    first batch to the last."""
    assert settings.database_url is not None, "bench_settings names the run's database"
    database = await asyncpg.connect(settings.database_url)
    inbox = f"inbox_{model.event_name.replace('-', '_')}"
    # Each run of a baseline starts from empty tables: its inbox meets no ids of an earlier run.
    await database.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    await database.execute("CREATE SCHEMA bench")
    await database.execute(
        f"CREATE TABLE bench.{inbox} (event_id text NOT NULL, source text NOT NULL, "
        "event_type text NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (event_id, source))"
    )
    await database.execute(write.table)
    topic = f"{settings.topic_prefix}{model.event_name}"
    consumer = baseline_consumer(settings, topic)
    await consumer.start()
    seen, started = 0, None
    idle = Idle(f"the baseline of {topic}")
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [record for part in batch.values() for record in part]
            if not records:
                idle.check(seen, total)
                continue
            idle.moved()
            if started is None:
                started = time.perf_counter()
            envelopes = [parse_record(record.value, record.headers or []) for record in records]
            events = [decode_data(envelope, model) for envelope in envelopes]
            async with database.transaction():
                await database.execute(
                    f"INSERT INTO bench.{inbox} (event_id, source, event_type) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) "
                    "ON CONFLICT DO NOTHING",
                    [envelope.id for envelope in envelopes],
                    [envelope.source for envelope in envelopes],
                    [envelope.type for envelope in envelopes],
                )
                await database.execute(write.sql, *write.columns(events))
            await consumer.commit()
            seen += len(records)
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()
        await database.close()


async def take_registrations(settings: Settings, service: ServiceName, projects: int) -> None:
    """Let the service take the registry's `project-registered` of every project, then stop."""
    await consume_as(settings, service, f"{settings.topic_prefix}project-registered", projects)


async def topic_run(
    settings: Settings, service: ServiceName, topic: str, total: int
) -> tuple[float, float | None]:
    """One instance of the service takes a backlog of `total` events of `topic`: the seconds
    from the first event taken to the last, and, for a service with background work
    (`SETTLED`), the seconds from the same first event until that work is done too (it stays up
    until then; None for the others)."""
    waited: float | None = None

    async def then() -> None:
        nonlocal waited
        if service in SETTLED:
            started = time.perf_counter()
            await asyncio.wait_for(settled(settings, SETTLED[service], poll_s=0.05), timeout=300)
            waited = time.perf_counter() - started

    seconds = await consume_as(settings, service, f"{settings.topic_prefix}{topic}", total, then)
    return seconds, None if waited is None else seconds + waited


async def settled(settings: Settings, query: str, poll_s: float = 0.5) -> None:
    """Until `query` (a count) answers 0 on the run's database."""
    assert settings.database_url is not None, "bench_settings names the run's database"
    database = await asyncpg.connect(settings.database_url)
    try:
        while True:
            left = await database.fetchval(query)
            if not left:
                return
            await asyncio.sleep(poll_s)
    finally:
        await database.close()


BUSIEST: tuple[tuple[ServiceName, type[EventData], StateWrite, Callable[..., list[EventData]]], ...]
BUSIEST = (
    ("allocation", ResourceRequested, REQUEST_ROWS, requests),
    ("notifications", ProjectHealthAssessed, HEALTH_ROWS, assessments),
    ("notifications", ProjectAtRisk, NOTICE_ROWS, alerts),
)
"""Allocation's and notifications' busiest inbound topics: the service, the topic's contract,
the baseline's state write of the same amount of state, and the events to publish. Allocation
goes first: it also takes `project-health-assessed` (for its interventions), which would
otherwise be a second backlog beside the one measured."""

SETTLED = {
    "allocation": "SELECT (SELECT count(*) FROM allocation.resolution_pending) "
    "+ (SELECT count(*) FROM allocation.resource_request WHERE decided_at IS NULL)"
}
"""After its run, a service stays up until this query says 0 (its background work is done:
allocation's every request decided, its `resource-allocated` in the outbox), so that no work of
its own (a solve runs in a thread, which stopping cannot cancel) takes CPU from the runs that
follow. Timed as a second line (`until decided`), beside the consumer's."""


async def busiest_topics(
    settings: Settings, events: int, projects: int, only: frozenset[str]
) -> None:
    """Each of `BUSIEST`: the service takes the registry's registrations, `events` events of its
    topic are published as a backlog, the baseline of the same shape and then one instance of
    the service take them; a line each, printed as it is done. Only the topics in `only`."""
    registered: set[ServiceName] = set()
    for service, model, write, make in BUSIEST:
        if model.event_name not in only:
            continue
        if service not in registered:
            await take_registrations(settings, service, projects)
            registered.add(service)
        await publish(settings, make(events, projects))
        baseline = min(
            [await topic_baseline(settings, model, write, events) for _ in range(BASELINE_RUNS)]
        )
        row(f"baseline: {model.event_name}", baseline, events, baseline)
        cpu = time.process_time()
        seconds, until_done = await topic_run(settings, service, model.event_name, events)
        cpu = time.process_time() - cpu
        row(f"{service}, one instance", seconds, events, baseline)
        if until_done is not None:
            row(f"{service}, one instance, until decided", until_done, events, baseline)
        print(
            f"  {service}: {cpu:.2f} s of process CPU from its start to its stop "
            f"({1e6 * cpu / events:.0f} µs an event)",
            flush=True,
        )


@contextlib.asynccontextmanager
async def bench_settings(**overrides: object) -> AsyncIterator[Settings]:
    """Settings of one benchmark run: its own topics and database, dropped at the end.

    The broker is PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS if set, else an embedded Tansu started here;
    the database is made on PMO_BENCH_DATABASE_URL, else the PostgreSQL on 127.0.0.1:5432.
    """
    kafka = os.environ.get("PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS")
    broker = None
    if not kafka:
        broker = EmbeddedKafka()
        kafka = broker.start()
    admin_url = os.environ.get("PMO_BENCH_DATABASE_URL", LOCAL_POSTGRES)
    database = f"pmo_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield Settings.model_validate(
            {
                "kafka_bootstrap_servers": kafka,
                "database_url": admin_url.rsplit("/", 1)[0] + f"/{database}",
                "topic_prefix": f"bench{uuid.uuid4().hex[:6]}.",
                "kafka_enable_idempotence": False,
                "consumer_session_timeout_ms": 2000,
                "log_json": False,
                **overrides,
            }
        )
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()
        if broker is not None:
            broker.stop()


def row(label: str, seconds: float, events: int, baseline_s: float) -> None:
    """One line of the table, printed as soon as its part is done (a long run shows its
    progress, and a stalled part is the one after the last line)."""
    print(
        f"{label:<44} {seconds:>8.2f} {events / seconds:>10.0f} {baseline_s / seconds:>7.3f}",
        flush=True,
    )


PARTS = ("status-changed", "resource-requested", "project-health-assessed", "project-at-risk")
"""The topics measured, in order; `--only` runs some of them."""


async def main(events: int, projects: int, only: frozenset[str] = frozenset(PARTS)) -> None:
    load_before = os.getloadavg()
    print(f"machine: {machine()}")
    print(
        f"events: {events} per topic on {projects} projects, 6 partitions, batches of 500; "
        f"each baseline the fastest of {BASELINE_RUNS} runs"
    )
    print(f"{'consumer':<44} {'seconds':>8} {'events/s':>10} {'ratio':>7}", flush=True)
    async with bench_settings() as settings:
        await create_topics(settings, partitions=6)
        await publish(settings, portfolio(projects))
        # Each service takes the baselines and stops; it then meets the reports as a backlog,
        # so that the timing is of consuming, not of the producer (which shares this process).
        settings = settings.model_copy(update=QUIET_CLOCK)
        for service in SERVICES_MEASURED:
            await take_portfolio(settings, service, projects)
        if "status-changed" in only:
            await publish(settings, reports(events, projects))
            baseline = min(
                [await batched_write_baseline(settings, events) for _ in range(BASELINE_RUNS)]
            )
            row("baseline: parse + inbox + upsert, batched", baseline, events, baseline)
            for service in SERVICES_MEASURED:
                seconds = await service_run(settings, service, events)
                row(f"{service}, one instance", seconds, events, baseline)
        await busiest_topics(settings, events, projects, only)
    load_after = os.getloadavg()
    print(
        f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({os.cpu_count()} cores)"
    )
    print("target: ratio >= 0.25 for each service")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events", type=int, default=20_000, help="events published per topic (default: 20000)"
    )
    parser.add_argument(
        "--projects", type=int, default=200, help="projects they are spread over (default: 200)"
    )
    parser.add_argument(
        "--only", choices=PARTS, action="append", help="measure only this topic (repeatable)"
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.projects, frozenset(arguments.only or PARTS)))
