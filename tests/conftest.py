"""Fixtures of the one test harness (see tests/harness.py for where the real parts come from)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from pmo.embedded import free_port
from pmo.topics import create_topics
from services.catalog import SERVICES
from shared.database import migrate_url
from shared.runtime import ServiceDefinition, ServiceRuntime
from shared.security import Role, issue_token
from shared.settings import SERVICE_NAMES, ServiceName, Settings
from tests.harness import (
    Enterprise,
    RunningService,
    kafka_for_tests,
    postgres_for_tests,
    serve,
    stop_serving,
    with_database,
)

# Tests never fail on a timing: no per-example deadline and no "generation is slow" check,
# which a loaded 2-core machine trips while the property itself holds.
hypothesis_settings.register_profile(
    "pmo", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
hypothesis_settings.load_profile("pmo")

ADMIN_TOKEN = "test-admin-token"
TOKEN_SECRET = "test-token-secret-of-32-characters"
TEST_PARTITIONS = 2


# The fixtures that start or reach the real parts: a `fast` test (`make test-fast`) asks for none.
INFRASTRUCTURE_FIXTURES = frozenset(("kafka_bootstrap", "postgres_url"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a test marked `fast` that would start the broker or reach PostgreSQL (through
    any fixture it uses), so the fast lane cannot quietly grow to need them."""
    for item in items:
        needs = INFRASTRUCTURE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("fast") is not None and needs:
            raise pytest.UsageError(
                f"{item.nodeid} is marked fast but uses {', '.join(sorted(needs))}: "
                "a fast test needs no broker and no database"
            )


@pytest.fixture(scope="session", autouse=True)
def traversable_temp_root(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Let an embedded PostgreSQL reach its data below pytest's temporary folders.

    Run as root where user namespaces are not available, PostgreSQL drops to an ordinary uid,
    which must traverse (not list) the folders above its data directory; pytest makes them
    root-only. Traverse is all this grants.
    """
    base = tmp_path_factory.getbasetemp()
    for folder in (base.parent, base):
        folder.chmod(folder.stat().st_mode | 0o111)


@pytest.fixture(scope="session")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pmo-harness")


@pytest.fixture(scope="session")
def kafka_bootstrap(work_dir: Path) -> Iterator[str]:
    with kafka_for_tests(work_dir) as bootstrap:
        yield bootstrap


@pytest.fixture(scope="session")
def postgres_url(work_dir: Path) -> Iterator[str]:
    with postgres_for_tests(work_dir) as url:
        yield url


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A database with every service's schema migrated, copied for each test (fast, isolated)."""
    name = f"pmo_template_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = with_database(postgres_url, name)
        for service in SERVICE_NAMES:
            await migrate_url(url, service)
        yield name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    name = f"pmo_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
        yield with_database(postgres_url, name)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def settings(kafka_bootstrap: str, database_url: str, topic_prefix: str) -> Settings:
    """Settings of a test: its own topics and database, quick polling, idempotence off only
    where the broker is the embedded one (it rejects InitProducerId)."""
    test_settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=database_url,
        topic_prefix=topic_prefix,
        kafka_enable_idempotence=False,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        consumer_batch_timeout_ms=20,
        # Tansu holds a group's first join for half the session timeout: keep tests quick.
        consumer_session_timeout_ms=2_000,
        outbox_poll_interval_s=0.1,
        database_pool_size=3,
        log_json=False,
    )
    await create_topics(test_settings, partitions=TEST_PARTITIONS)
    return test_settings


@pytest.fixture
async def enterprise(settings: Settings) -> AsyncIterator[Enterprise]:
    producer = AIOKafkaProducer(**settings.kafka_client_options(), enable_idempotence=False)
    await producer.start()
    try:
        yield Enterprise(producer, settings.topic_prefix)
    finally:
        await producer.stop()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


class ServiceStarter:
    """Starts services in-process, each with uvicorn on a free port; spans go to the test."""

    def __init__(self, settings: Settings, spans: InMemorySpanExporter) -> None:
        self.settings = settings
        self.spans = spans
        self.running: list[RunningService] = []

    async def __call__(
        self, name: ServiceName, definition: ServiceDefinition | None = None, **overrides: object
    ) -> RunningService:
        """Start service `name` (or a test's own `definition` of it) with settings `overrides`."""
        settings = (
            Settings.model_validate({**self.settings.model_dump(), **overrides})
            if overrides
            else self.settings
        )
        runtime = ServiceRuntime(
            definition or SERVICES[name],
            settings,
            span_processors=[SimpleSpanProcessor(self.spans)],
        )
        port = free_port()
        server, task = await serve(runtime.http_app(), port)
        service = RunningService(runtime, f"http://127.0.0.1:{port}", server, task)
        self.running.append(service)
        return service

    async def all(self, *names: ServiceName) -> list[RunningService]:
        """Start several at once: each waits for its consumer group to form, so in parallel."""
        return list(await asyncio.gather(*(self(name) for name in names)))

    async def stop_all(self) -> None:
        for service in reversed(self.running):
            await stop_serving(service.server, service.task)
        self.running.clear()


@pytest.fixture
async def start_service(
    settings: Settings, spans: InMemorySpanExporter
) -> AsyncIterator[ServiceStarter]:
    starter = ServiceStarter(settings, spans)
    yield starter
    await starter.stop_all()


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bearer(role: Role, subject: str = "someone@example.com") -> dict[str, str]:
    """Headers of a caller with `role`, holding a token signed as `pmo token create` would."""
    return {"Authorization": f"Bearer {issue_token(TOKEN_SECRET, subject, role)}"}
