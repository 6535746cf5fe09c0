"""The shared messaging mechanisms against the real broker and database, service by service."""

from __future__ import annotations

import asyncio
import json
import uuid
import zlib
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import sqlalchemy.exc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from sqlalchemy.ext.asyncio import AsyncEngine

from services.registry.adapters.tables import ProjectRow
from services.registry.domain.projects import registration
from services.registry.entrypoints.service import registry
from services.registry.service_layer.handlers import on_project_started
from shared.database import create_engine, session_factory
from shared.events.contracts import ProjectStarted
from shared.messaging.consumer import EventMeta, Handler
from shared.messaging.outbox import OutboxRelay
from shared.messaging.tables import outbox, parked_event
from shared.messaging.unit_of_work import UnitOfWork
from shared.metrics import ServiceMetrics
from shared.runtime import ServiceDefinition
from shared.settings import Settings
from tests.conftest import ServiceStarter, bearer
from tests.harness import Enterprise, committed_offsets, eventually, read_topic, stop_serving

PROJECT: dict[str, Any] = {
    "name": "Helios warehouse automation",
    "business_unit": "Logistics",
    "manager": "katherine.johnson@example.com",
    "start_date": "2026-01-01",
    "planned_finish_date": "2026-12-31",
    "budget": 500000,
    "currency": "EUR",
}


def project(project_id: str) -> dict[str, Any]:
    return {"project_id": project_id, **PROJECT}


def outbox_row(topic: str, key: bytes, value: bytes, **columns: Any) -> sa.Insert:
    """An outbox row as a unit of work writes it (a new message id, no headers), for a relay
    test to commit; `columns`: any other column (its trace context, say)."""
    return sa.insert(outbox).values(
        message_id=uuid.uuid4(), topic=topic, key=key, value=value, headers=[], **columns
    )


def relay_for(
    settings: Settings,
    engine: AsyncEngine,
    service: str,
    *,
    tracer: Tracer | None = None,
    **options: Any,
) -> OutboxRelay:
    """`service`'s outbox relay on the test's broker and topics, with a test's `options`
    (`poll_interval_s`, `batch_size`)."""
    return OutboxRelay(
        service=service,
        engine=engine,
        producer_options={**settings.kafka_client_options(), "enable_idempotence": False},
        tracer=tracer or TracerProvider().get_tracer("test"),
        metrics=ServiceMetrics(service),
        topic_prefix=settings.topic_prefix,
        **options,
    )


def registry_handling_starts_with(handler: Handler[ProjectStarted]) -> ServiceDefinition:
    """The registry, with a test's own handler of `project-started`."""
    return ServiceDefinition(
        name="registry",
        summary="registry under test",
        handlers={"project-started": handler},
        publishes=registry.publishes,
        routers=registry.routers,
    )


async def test_outbox_relays_publish_each_message_once_in_order_with_its_trace(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database_url_for("registry"), "registry", application="test")
    tracer = TracerProvider().get_tracer("test")
    topic = f"{settings.topic_prefix}project-registered"
    try:
        uow = UnitOfWork(session_factory(engine), service="registry", settings=settings)
        with tracer.start_as_current_span("writer") as writer:
            async with uow:
                for n in range(40):
                    await uow.session.exec(
                        outbox_row(
                            topic,
                            f"PRJ-{n % 4}".encode(),
                            json.dumps({"n": n}).encode(),
                            traceparent=(
                                f"00-{writer.get_span_context().trace_id:032x}-"
                                f"{writer.get_span_context().span_id:016x}-01"
                            ),
                        )
                    )
                await uow.commit()
        # Two replicas' relays on the same schema: the advisory lock lets one publish.
        relays = [
            relay_for(settings, engine, "registry", tracer=tracer, poll_interval_s=0.05)
            for _ in range(2)
        ]
        for relay in relays:
            await relay.start()
        try:
            records = await read_topic(settings, topic, at_least=40)
        finally:
            for relay in relays:
                await relay.stop()

        assert len(records) == 40
        by_key: dict[str, list[int]] = {}
        for record in records:
            by_key.setdefault(record.key.decode(), []).append(json.loads(record.value)["n"])
        assert all(numbers == sorted(numbers) for numbers in by_key.values()), by_key
        traceparents = {dict(record.headers)["traceparent"].decode() for record in records}
        assert {tp.split("-")[1] for tp in traceparents} == {
            f"{writer.get_span_context().trace_id:032x}"
        }
        async with engine.connect() as connection:
            states = (
                await connection.execute(
                    sa.select(outbox.c.state, sa.func.count()).group_by(outbox.c.state)
                )
            ).all()
        assert dict(states) == {"published": 40}  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def test_a_relay_sends_alerts_before_a_backlog_of_other_topics_keeping_each_key_in_order(
    settings: Settings,
) -> None:
    # 120 `project-health-assessed` committed before three `project-at-risk`, and a relay that
    # sends 20 rows a round: the alerts go in its first round, not after six rounds of backlog,
    # while each topic's rows of one key still leave in the order they were committed.
    engine = create_engine(settings.database_url_for("monitoring"), "monitoring", application="t")
    assessed = f"{settings.topic_prefix}project-health-assessed"
    at_risk = f"{settings.topic_prefix}project-at-risk"
    rows = [(assessed, f"PRJ-BULK-{n % 3}", n) for n in range(120)]
    rows += [(at_risk, "PRJ-ALERTED", n) for n in range(3)]
    rows += [(assessed, "PRJ-BULK-0", n) for n in range(120, 125)]
    try:
        uow = UnitOfWork(session_factory(engine), service="monitoring", settings=settings)
        async with uow:
            for topic, key, n in rows:
                await uow.session.exec(
                    outbox_row(topic, key.encode(), json.dumps({"n": n}).encode())
                )
            await uow.commit()
        relay = relay_for(settings, engine, "monitoring", poll_interval_s=0.05, batch_size=20)
        await relay.start()
        try:
            alerts = await read_topic(settings, at_risk, at_least=3)
            bulk = await read_topic(settings, assessed, at_least=125)
        finally:
            await relay.stop()
        async with engine.connect() as connection:
            marked = (
                await connection.execute(
                    sa.select(outbox.c.topic, outbox.c.published_at).where(
                        outbox.c.topic.in_([assessed, at_risk])
                    )
                )
            ).all()
    finally:
        await engine.dispose()

    # Each round marks what it sent with its own time: the alerts did not wait for the backlog
    # (seven rounds of 20), which their own lane sends beside them.
    alerts_marked = max(when for topic, when in marked if topic == at_risk)
    assert alerts_marked < max(when for topic, when in marked if topic == assessed)
    assert [json.loads(record.value)["n"] for record in alerts] == [0, 1, 2]
    by_key: dict[str, list[int]] = {}
    for record in bulk:
        by_key.setdefault(record.key.decode(), []).append(json.loads(record.value)["n"])
    assert sorted(n for numbers in by_key.values() for n in numbers) == list(range(125))
    assert all(numbers == sorted(numbers) for numbers in by_key.values()), by_key


async def test_a_relay_sends_an_alert_while_a_bulk_send_is_in_flight(
    settings: Settings,
) -> None:
    # The bulk lane's send of a `project-health-assessed` is held in flight (its broker never
    # acknowledges it while the test runs); an alert committed meanwhile still reaches the
    # broker, and the held row is sent once let go, each marked once.
    engine = create_engine(settings.database_url_for("monitoring"), "monitoring", application="t")
    assessed = f"{settings.topic_prefix}project-health-assessed"
    at_risk = f"{settings.topic_prefix}project-at-risk"
    # An hour between polls: only the wake-ups below move it.
    relay = relay_for(settings, engine, "monitoring", poll_interval_s=3600)
    sessions = session_factory(engine)

    async def commit(topic: str, n: int, *, alerts: bool) -> None:
        uow = UnitOfWork(
            sessions,
            service="monitoring",
            settings=settings,
            after_commit=lambda: relay.wake(alerts=alerts),
        )
        async with uow:
            await uow.session.exec(outbox_row(topic, b"PRJ-LANES", json.dumps({"n": n}).encode()))
            await uow.commit()

    try:
        await relay.start()
        bulk = next(lane for lane in relay._lanes if not lane.alerts)
        assert bulk.producer is not None
        send = bulk.producer.send
        in_flight = asyncio.Event()
        let_go = asyncio.Event()

        async def held_send(*args: Any, **kwargs: Any) -> Any:
            queued = await send(*args, **kwargs)
            in_flight.set()
            await let_go.wait()
            return queued

        bulk.producer.send = held_send
        await commit(assessed, 0, alerts=False)
        await asyncio.wait_for(in_flight.wait(), 20)
        await commit(at_risk, 1, alerts=True)
        alerts = await read_topic(settings, at_risk, at_least=1)
        assert [json.loads(record.value)["n"] for record in alerts] == [1]
        assert not let_go.is_set()  # the bulk send was still in flight when the alert left
        let_go.set()
        bulk_records = await read_topic(settings, assessed, at_least=1)
        assert [json.loads(record.value)["n"] for record in bulk_records] == [0]

        async def all_marked() -> bool:
            async with engine.connect() as connection:
                states = (
                    await connection.execute(sa.select(outbox.c.state, outbox.c.attempts))
                ).all()
            return [tuple(state) for state in states] == [("published", 1)] * 2

        await eventually(all_marked, what="both rows marked published once")
    finally:
        await relay.stop()
        await engine.dispose()


async def test_a_relay_sends_no_alert_while_an_older_relay_holds_the_relay_lock(
    settings: Settings,
) -> None:
    # An older replica's relay (one lane for every topic) holds the lock every relay took before
    # the lanes: a new replica's alert lane must not send beside it (two relays sending one
    # topic could reorder a project's at-risk and recovered) until the lock is let go.
    engine = create_engine(settings.database_url_for("monitoring"), "monitoring", application="t")
    at_risk = f"{settings.topic_prefix}project-at-risk"
    older_relay_lock = zlib.crc32(b"pmo-outbox-relay-monitoring")
    relay = relay_for(settings, engine, "monitoring", poll_interval_s=0.05)

    async def alert_state() -> str:
        async with engine.connect() as connection:
            return str(
                (
                    await connection.execute(
                        sa.select(outbox.c.state).where(outbox.c.topic == at_risk)
                    )
                ).scalar_one()
            )

    try:
        async with engine.connect() as older:
            assert (
                await older.execute(
                    sa.text("SELECT pg_try_advisory_lock(:id)"), {"id": older_relay_lock}
                )
            ).scalar_one()
            uow = UnitOfWork(session_factory(engine), service="monitoring", settings=settings)
            async with uow:
                await uow.session.exec(outbox_row(at_risk, b"PRJ-UPGRADE", b"{}"))
                await uow.commit()
            await relay.start()
            relay.wake(alerts=True)
            for _ in range(20):  # forty of the relay's poll intervals, and woken at the start
                await asyncio.sleep(0.1)
                assert await alert_state() == "pending"
            await older.execute(sa.text("SELECT pg_advisory_unlock(:id)"), {"id": older_relay_lock})
        alerts = await read_topic(settings, at_risk, at_least=1)
        assert [record.key for record in alerts] == [b"PRJ-UPGRADE"]

        async def published() -> bool:
            return await alert_state() == "published"

        await eventually(published, what="the alert marked published")
    finally:
        await relay.stop()
        await engine.dispose()


async def test_a_relay_publishes_each_commit_when_woken_not_at_its_poll(
    settings: Settings,
) -> None:
    # An hour between polls: every message below reaches the broker only because the commit
    # that wrote it woke the relay (what a unit of work does after each commit in a service).
    engine = create_engine(settings.database_url_for("registry"), "registry", application="test")
    topic = f"{settings.topic_prefix}project-registered"
    relay = relay_for(settings, engine, "registry", poll_interval_s=3600)
    await relay.start()
    try:
        for n in range(5):
            uow = UnitOfWork(
                session_factory(engine),
                service="registry",
                settings=settings,
                after_commit=relay.wake,
            )
            async with uow:
                await uow.session.exec(
                    outbox_row(topic, b"PRJ-WOKEN", json.dumps({"n": n}).encode())
                )
                await uow.commit()
            # Each one before the next is written: a relay gone back to its hour-long wait
            # after the first would never send the second.
            records = await read_topic(settings, topic, at_least=n + 1)
            assert [json.loads(r.value)["n"] for r in records] == list(range(n + 1))
    finally:
        await relay.stop()
        await engine.dispose()


async def test_a_failing_database_rewinds_the_batch_and_the_event_has_one_effect(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    failures: list[str] = []

    async def flaky(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
        if not failures:
            failures.append(meta.id)
            raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionResetError("gone"))
        await on_project_started(event, meta, uow)

    await start_service("registry", registry_handling_starts_with(flaky))
    event_id = await enterprise.send("project-started", project("PRJ-FLAKY"))

    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert failures == [event_id]
    assert [json.loads(r.value)["data"]["project_id"] for r in registered] == ["PRJ-FLAKY"]


async def test_a_handler_bug_dead_letters_the_event_and_the_consumer_goes_on(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    async def buggy(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
        if event.project_id == "PRJ-BUG":
            raise KeyError("objective")
        await on_project_started(event, meta, uow)

    await start_service("registry", registry_handling_starts_with(buggy))
    bad = await enterprise.send("project-started", project("PRJ-BUG"))
    await enterprise.send("project-started", project("PRJ-OK"))

    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert [json.loads(r.value)["data"]["project_id"] for r in registered] == ["PRJ-OK"]
    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq")
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["pmo-dlq-reason"] == b"handler error: KeyError: 'objective'"
    assert json.loads(dead[0].value)["id"] == bad


async def test_a_report_that_overtakes_its_project_is_parked_then_assessed(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    monitoring = await start_service("monitoring")
    report = {
        "project_id": "PRJ-LATE",
        "as_of": "2026-07-02",
        "percent_complete": 20,
        "actual_cost": 100000,
    }
    await enterprise.send("status-changed", report)

    async def parked() -> int:
        async with monitoring.runtime.engine.connect() as connection:
            return int(
                (
                    await connection.execute(sa.select(sa.func.count()).select_from(parked_event))
                ).scalar_one()
            )

    await eventually(parked, what="the report parked until its project starts")
    await enterprise.send("project-started", project("PRJ-LATE"))

    alerts = await read_topic(settings, f"{settings.topic_prefix}project-at-risk")
    assert [json.loads(a.value)["data"]["project_id"] for a in alerts] == ["PRJ-LATE"]
    assert await parked() == 0


async def test_an_event_on_the_wrong_topic_and_invalid_data_are_dead_lettered_with_reasons(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    await start_service("registry")
    from tests.harness import structured_event

    value, headers = structured_event("status-changed", {"project_id": "PRJ-X"})
    await enterprise.send_raw("project-started", value, headers=headers, key="PRJ-X")
    await enterprise.send("project-started", {**project("PRJ-Y"), "budget": -5}, binary=True)

    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq", at_least=2)
    reasons = sorted(dict(record.headers)["pmo-dlq-reason"].decode() for record in dead)
    assert reasons[0].startswith("data.budget:"), reasons
    assert "does not belong on topic" in reasons[1], reasons


async def test_probes_metrics_docs_and_the_token_rule(
    start_service: ServiceStarter, admin_headers: dict[str, str]
) -> None:
    service = await start_service("monitoring")
    async with httpx.AsyncClient(base_url=service.base_url) as api:
        assert (await api.get("/livez")).json()["status"] == "alive"
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}
        assert "pmo_events_consumed" in (await api.get("/metrics")).text
        asyncapi = (await api.get("/asyncapi.json")).json()
        assert any("project-at-risk" in name for name in asyncapi["channels"])
        assert "/at-risk" in (await api.get("/openapi.json")).json()["paths"]

        for path in ("/at-risk", "/dead-letters", "/projects/PRJ-1/health"):
            missing = await api.get(path)
            assert missing.status_code == 401
            assert "bearer token is required" in missing.json()["detail"]
            wrong = await api.get(path, headers={"Authorization": "Bearer guess"})
            assert wrong.status_code == 401
        assert (await api.get("/at-risk", headers=admin_headers)).json() == []
        assert (await api.get("/at-risk", headers=bearer("viewer"))).json() == []
        forbidden = await api.get("/dead-letters", headers=bearer("viewer"))
        assert forbidden.status_code == 403
        assert "needs one of pmo_admin" in forbidden.json()["detail"]
        assert (await api.get("/dead-letters", headers=bearer("pmo_admin"))).json() == []
        not_found = await api.get("/projects/PRJ-1/health", headers=admin_headers)
        assert not_found.status_code == 404
        assert "PRJ-1" in not_found.json()["detail"]


async def test_writes_the_database_refuses_at_commit_dead_letter_the_event_not_the_partition(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    async def clashing(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
        # Written with the ORM, so the clash surfaces only when the batch flushes at commit.
        uow.session.add(
            ProjectRow(
                project_id="PRJ-SAME",  # every event writes the same key: the second clashes
                name=event.name,
                business_unit=event.business_unit,
                manager=event.manager,
                start_date=event.start_date,
                planned_finish_date=event.planned_finish_date,
                budget=event.budget,
                currency=event.currency,
                lifecycle="active",
                registered_by=meta.id,
            )
        )
        await uow.publish(registration(event, "active", "standard"))

    await start_service("registry", registry_handling_starts_with(clashing))
    sent = {
        await enterprise.send("project-started", project("PRJ-1")): "PRJ-1",
        await enterprise.send("project-started", project("PRJ-2")): "PRJ-2",
    }

    # Whichever comes second (they travel on different partitions) clashes, alone.
    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq")
    assert len(dead) == 1
    assert dict(dead[0].headers)["pmo-dlq-reason"].startswith(b"handler error: IntegrityError")
    refused = sent[json.loads(dead[0].value)["id"]]
    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert [json.loads(r.value)["data"]["project_id"] for r in registered] == [
        next(p for p in sent.values() if p != refused)
    ]


async def test_any_header_bytes_survive_the_dead_letter_path(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    await start_service("registry")
    odd = [("x-trace\x00", b"\x00\xff\x00"), ("content-type", b"text/plain")]
    await enterprise.send_raw("project-started", b"\x00not json", headers=odd, key="PRJ-Z")
    await enterprise.send("project-started", project("PRJ-AFTER"))

    dead = await read_topic(settings, f"{settings.topic_prefix}project-started.dlq")
    assert dead[0].value == b"\x00not json"
    assert ("x-trace\x00", b"\x00\xff\x00") in dead[0].headers
    registered = await read_topic(settings, f"{settings.topic_prefix}project-registered")
    assert [json.loads(r.value)["data"]["project_id"] for r in registered] == ["PRJ-AFTER"]


async def test_parked_events_are_listed_and_measured(
    start_service: ServiceStarter, enterprise: Enterprise, admin_headers: dict[str, str]
) -> None:
    monitoring = await start_service("monitoring")
    report = {
        "project_id": "PRJ-WAIT",
        "as_of": "2026-07-02",
        "percent_complete": 20,
        "actual_cost": 100000,
    }
    event_id = await enterprise.send("status-changed", report)

    async with httpx.AsyncClient(base_url=monitoring.base_url, headers=admin_headers) as api:

        async def listed() -> list[dict[str, Any]]:
            return list((await api.get("/parked")).json())

        (parked,) = await eventually(listed, what="the report listed as parked")
        assert (parked["event_id"], parked["waits_for"]) == (event_id, "PRJ-WAIT")
        assert "PRJ-WAIT" in parked["reason"]

        async def measured() -> bool:
            return 'pmo_parked_events{service="monitoring"} 1.0' in (await api.get("/metrics")).text

        await eventually(measured, what="the parked gauge at 1")
        assert (await api.get("/parked", headers=bearer("viewer"))).status_code == 403


async def test_a_parked_event_whose_wait_never_ends_is_dead_lettered_with_why(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    await start_service("monitoring", parked_expire_after=timedelta(seconds=1))
    report = {
        "project_id": "PRJ-NEVER",
        "as_of": "2026-07-02",
        "percent_complete": 20,
        "actual_cost": 100000,
    }
    event_id = await enterprise.send("status-changed", report)

    dead = await read_topic(settings, f"{settings.topic_prefix}status-changed.dlq", timeout=30)
    assert [json.loads(record.value)["id"] for record in dead] == [event_id]
    reason = dict(dead[0].headers)["pmo-dlq-reason"].decode()
    assert reason.startswith("expired: waited longer than 0:00:01 for 'PRJ-NEVER'"), reason


async def test_every_consumer_group_must_run_for_readiness_and_is_in_the_asyncapi_document(
    start_service: ServiceStarter, settings: Settings
) -> None:
    # Notifications reads its alerts in a lane of their own: two subscribers, two groups.
    service = await start_service("notifications")
    lane = f"{settings.topic_prefix}pmo-notifications-alerts"
    assert list(service.runtime.subscribers) == [f"{settings.topic_prefix}pmo-notifications", lane]
    async with httpx.AsyncClient(base_url=service.base_url) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok", "kafka": "ok"}

        channels = (await api.get("/asyncapi.json")).json()["channels"]
        groups = {
            channel["address"].removeprefix(settings.topic_prefix): channel["description"].split()[
                3
            ]
            for channel in channels.values()
        }
        assert (
            groups["project-at-risk"] == groups["project-recovered"] == "pmo-notifications-alerts"
        )
        assert groups["project-health-assessed"] == "pmo-notifications"

        # A replica whose lane stopped consuming is not ready, though the broker answers.
        await service.runtime.subscribers[lane].stop()
        stopped = await api.get("/readyz")
        assert stopped.status_code == 503, stopped.text
        assert stopped.json()["checks"]["kafka"] == f"not consuming: {lane}"


async def test_a_lock_held_for_the_transaction_is_kept_and_one_a_savepoint_took_goes_with_it(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database_url_for("registry"), "registry", application="test")

    async def free(key: str) -> bool:
        """Whether another transaction could take the registry's lock of `key` now."""
        async with engine.connect() as other:
            taken = await other.scalar(
                sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"registry:{key}"},
            )
            await other.rollback()
        return bool(taken)

    try:
        uow = UnitOfWork(session_factory(engine), service="registry", settings=settings)
        async with uow:
            await uow.lock(["PRJ-HELD"])
            assert uow.held == {"PRJ-HELD"}
            assert not await free("PRJ-HELD")
            savepoint = await uow.session.begin_nested()
            await uow.lock(["PRJ-HELD", "PRJ-SAVEPOINT"])
            assert not await free("PRJ-SAVEPOINT")
            await savepoint.rollback()
            # Rolling the savepoint back let its lock go: it must not count as held.
            assert uow.held == {"PRJ-HELD"}
            assert await free("PRJ-SAVEPOINT")
            assert not await free("PRJ-HELD")
            await uow.lock(["PRJ-SAVEPOINT"])
            assert not await free("PRJ-SAVEPOINT")
        assert await free("PRJ-HELD")
        assert await free("PRJ-SAVEPOINT")
    finally:
        await engine.dispose()


async def committed(enterprise: Enterprise, settings: Settings, group: str) -> int:
    """How many `project-started` records the group has committed (a fresh topic: from 0)."""
    offsets = await committed_offsets(enterprise, settings, group, ["project-started"])
    return offsets.get("project-started", 0)


async def test_offsets_are_committed_as_batches_end_and_a_clean_stop_leaves_none_behind(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    handled: list[str] = []

    async def counting(event: ProjectStarted, meta: EventMeta, uow: UnitOfWork) -> None:
        handled.append(meta.id)
        await on_project_started(event, meta, uow)

    service = await start_service("registry", registry_handling_starts_with(counting))
    group = service.runtime.consumer_group
    sent = [await enterprise.send("project-started", project(f"PRJ-OFF-{n}")) for n in range(6)]

    # Committed while the service runs: the background commits need no stop to land.
    async def all_committed() -> bool:
        return await committed(enterprise, settings, group) == len(sent)

    await eventually(all_committed, timeout=20)
    assert sorted(handled) == sorted(sent)

    # The last batch right before a stop: its offsets are flushed, so a restart takes nothing
    # again (a redelivery would reach the inbox and be dead-lettered as a duplicate).
    last = await enterprise.send("project-started", project("PRJ-OFF-LAST"))

    async def last_handled() -> bool:
        return last in handled

    await eventually(last_handled, timeout=20)
    await stop_serving(service.server, service.task)
    assert await committed(enterprise, settings, group) == len(sent) + 1
