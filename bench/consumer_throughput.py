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
The figure is events from the first consumed to the last, per second; the ratio is the service's
against the baseline's. The target (issue 11) is a ratio of at least 0.25.

Usage: python -m bench.consumer_throughput [--events 20000] [--projects 200]
Uses PMO_BENCH_KAFKA_BOOTSTRAP_SERVERS / PMO_BENCH_DATABASE_URL if set, else the embedded broker
and the PostgreSQL on 127.0.0.1:5432.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import time
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from pmo.embedded import EmbeddedKafka
from pmo.topics import create_topics
from services.catalog import SERVICES
from shared.events import EventData, decode_data, parse_record, to_structured
from shared.events.contracts import ProjectStarted, StatusChanged
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


async def until_consumed(
    runtime: ServiceRuntime, total: float, topic: str | None = None, poll_s: float = 0.01
) -> float:
    """Seconds from the first of these events consumed to the last (of `topic`, if given)."""
    before = consumed(runtime, topic)
    started = None
    while True:
        done = consumed(runtime, topic) - before
        if done and started is None:
            started = time.perf_counter()
        if done >= total:
            return time.perf_counter() - (started or time.perf_counter())
        await asyncio.sleep(poll_s)


BASELINE_SCHEMA = """
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
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client_options(),
        group_id=f"bench-baseline-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_poll_records=500,
        session_timeout_ms=2000,
        heartbeat_interval_ms=400,
    )
    await consumer.start()
    seen, started = 0, None
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            records = [record for part in batch.values() for record in part]
            if not records:
                continue
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


async def take_portfolio(settings: Settings, service: ServiceName, projects: int) -> None:
    """Let the service take the projects' `project-started`, then stop it."""
    runtime = ServiceRuntime(SERVICES[service], settings)
    await runtime.start()
    try:
        await until_consumed(
            runtime, projects, f"{settings.topic_prefix}project-started", poll_s=0.05
        )
    finally:
        await runtime.stop()


async def service_run(settings: Settings, service: ServiceName, total: int) -> float:
    """One instance of the service takes the backlog of `total` status reports: seconds."""
    runtime = ServiceRuntime(SERVICES[service], settings)
    await runtime.start()
    try:
        return await until_consumed(
            runtime, total, f"{settings.topic_prefix}status-changed", poll_s=0.05
        )
    finally:
        await runtime.stop()


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


async def main(events: int, projects: int) -> None:
    load_before = os.getloadavg()
    async with bench_settings() as settings:
        await create_topics(settings, partitions=6)
        await publish(settings, portfolio(projects))
        # Each service takes the baselines and stops; it then meets the reports as a backlog,
        # so that the timing is of consuming, not of the producer (which shares this process).
        settings = settings.model_copy(update=QUIET_CLOCK)
        for service in SERVICES_MEASURED:
            await take_portfolio(settings, service, projects)
        await publish(settings, reports(events, projects))
        baseline = await batched_write_baseline(settings, events)
        timings = {
            service: await service_run(settings, service, events) for service in SERVICES_MEASURED
        }
    load_after = os.getloadavg()
    print(f"machine: {machine()}")
    print(
        f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after "
        f"({os.cpu_count()} cores)"
    )
    print(f"events: {events} status reports on {projects} projects, 6 partitions, batches of 500")
    print(f"{'consumer':<44} {'seconds':>8} {'events/s':>10} {'ratio':>7}")
    label = "baseline: parse + inbox + upsert, batched"
    print(f"{label:<44} {baseline:>8.2f} {events / baseline:>10.0f} {1:>7.3f}")
    for service, seconds in timings.items():
        label = f"{service}, one instance"
        print(f"{label:<44} {seconds:>8.2f} {events / seconds:>10.0f} {baseline / seconds:>7.3f}")
    print("target: ratio >= 0.25 for each service")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--projects", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.projects))
