"""How many events per second one service instance takes, against a raw aiokafka consumer.

The monitoring service first takes P projects' `project-started`; then N `status-changed`
CloudEvents are published and, on the same broker in the same run, we time:
  * baseline: a plain aiokafka consumer in its own group reading the N records and committing
    after each batch (no parsing, no database);
  * monitoring: one instance of the monitoring service consuming the same N records (parse,
    validate, inbox, earned value and health, one transaction per batch, offsets after commit).

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
from shared.events import EventData, to_structured
from shared.events.contracts import ProjectStarted, StatusChanged
from shared.runtime import ServiceRuntime
from shared.settings import Settings

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


def consumed(runtime: ServiceRuntime) -> float:
    return sum(
        sample.value
        for metric in runtime.metrics.events_consumed.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


async def until_consumed(runtime: ServiceRuntime, total: float) -> float:
    """Seconds from the first of these events consumed to the last."""
    before = consumed(runtime)
    started = None
    while True:
        done = consumed(runtime) - before
        if done and started is None:
            started = time.perf_counter()
        if done >= total:
            return time.perf_counter() - (started or time.perf_counter())
        await asyncio.sleep(0.01)


async def raw_baseline(settings: Settings, total: int) -> float:
    consumer = AIOKafkaConsumer(
        f"{settings.topic_prefix}status-changed",
        **settings.kafka_client_options(),
        group_id=f"bench-raw-{uuid.uuid4().hex[:6]}",
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
            if batch and started is None:
                started = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
            if batch:
                await consumer.commit()
        return time.perf_counter() - (started or time.perf_counter())
    finally:
        await consumer.stop()


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
    async with bench_settings() as settings:
        await create_topics(settings, partitions=6)
        # The service takes the baselines, stops, and meets the reports as a backlog, so that
        # the timing is of consuming, not of the producer (which shares this process).
        runtime = ServiceRuntime(SERVICES["monitoring"], settings)
        await runtime.start()
        try:
            await publish(settings, portfolio(projects))
            await until_consumed(runtime, projects)
        finally:
            await runtime.stop()
        await publish(settings, reports(events, projects))
        runtime = ServiceRuntime(SERVICES["monitoring"], settings)
        await runtime.start()
        try:
            service = await until_consumed(runtime, events)
        finally:
            await runtime.stop()
        raw = await raw_baseline(settings, events)
        total = events
        print(f"machine: {machine()}")
        print(f"events: {events} status reports on {projects} projects, 6 partitions")
        print(f"{'consumer':<40} {'seconds':>8} {'events/s':>10}")
        print(f"{'raw aiokafka (baseline)':<40} {raw:>8.2f} {total / raw:>10.0f}")
        print(f"{'monitoring service, one instance':<40} {service:>8.2f} {total / service:>10.0f}")
        print(f"ratio service/baseline: {raw / service:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--projects", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.events, arguments.projects))
