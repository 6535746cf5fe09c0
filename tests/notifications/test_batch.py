"""Notifications' per-batch alert path: several projects' events in one batch, as one by one.

The service runs as usual (its consumer on the broker, its delivery worker sending to a real
webhook receiver); the test then hands its one consumer a batch it composed itself, as Kafka
would deliver a backlog, so that what the batch holds is known: several projects' assessments
interleaved with an older one arriving late, their alerts, a project not registered yet, and the
same batch delivered again.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually, structured_event, webhook_receiver
from tests.notifications.conftest import QUICK, ApiFor, alerting_tool, assessed, at_risk, register


@dataclass
class Record:
    """A Kafka record as the consumer receives it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class Batch:
    """Builds the records of one fetch, each topic's offsets increasing."""

    def __init__(self, settings: Settings) -> None:
        self.prefix = settings.topic_prefix
        self.offset = 10_000

    def record(self, event_type: str, data: dict[str, Any]) -> Record:
        value, headers = structured_event(event_type, data, event_id=str(uuid.uuid4()))
        self.offset += 1
        return Record(
            f"{self.prefix}{event_type}",
            0,
            self.offset,
            data["project_id"].encode(),
            value,
            headers,
        )


async def rows(service: RunningService, query: str, **params: Any) -> list[Any]:
    async with service.runtime.engine.connect() as connection:
        return list((await connection.execute(sa.text(query).bindparams(**params))).all())


async def duplicates(service: RunningService, records: list[Any]) -> int:
    """How many of `records` notifications recorded as duplicates (a redelivery's dead letters)."""
    found = await rows(
        service,
        "SELECT count(*) FROM dead_letter WHERE consumer = 'notifications' "
        "AND reason LIKE 'duplicate:%' AND event_id = ANY(:ids)",
        ids=[json.loads(record.value)["id"] for record in records],
    )
    return int(found[0][0])


async def execute(service: RunningService, statement: str, **params: Any) -> None:
    async with service.runtime.engine.begin() as connection:
        await connection.execute(sa.text(statement).bindparams(**params))


def handler_passes(spans: InMemorySpanExporter) -> list[tuple[str, Any]]:
    """(span name, pass) of each handler span finished: how the consumer took the batch."""
    return [
        (span.name, (span.attributes or {}).get("pmo.pass"))
        for span in spans.get_finished_spans()
        if span.name.startswith("handle ")
    ]


def at(moment: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """An assessment made at `moment` (monitoring's time)."""
    return {**data, "assessed_at": moment.isoformat()}


async def test_a_batch_of_several_projects_queues_one_notice_per_alert_in_order_and_once(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
    spans: InMemorySpanExporter,
) -> None:
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **QUICK)
        api = api_for(service)
        tool = await alerting_tool(service, api, enterprise, receiver.url, "PRJ-NB-A", "PRJ-NB-B")
        # A's current episode was escalated already: an assessment of the same episode keeps
        # that, one of a new episode (B's) starts without.
        episode = datetime.now(UTC) - timedelta(days=3)
        await execute(
            service,
            "UPDATE notifications.project SET at_risk_since = :episode, escalated_at = now(), "
            "health = 'red', health_assessed_at = :episode WHERE project_id = 'PRJ-NB-A'",
            episode=episode,
        )
        now = datetime.now(UTC)
        batch = Batch(settings)
        records = [
            batch.record(
                "project-health-assessed",
                at(now, assessed("PRJ-NB-A", "red", spi=0.7, at_risk_since=episode)),
            ),
            batch.record("project-health-assessed", at(now, assessed("PRJ-NB-B", "red"))),
            # Arrives after A's newest but was made before it: changes nothing.
            batch.record(
                "project-health-assessed",
                at(now - timedelta(hours=1), assessed("PRJ-NB-A", "amber", spi=0.85)),
            ),
            batch.record(
                "project-health-assessed",
                at(now + timedelta(seconds=1), assessed("PRJ-NB-B", "amber", spi=0.8)),
            ),
            batch.record("project-at-risk", at_risk("PRJ-NB-A", spi=0.71)),
            batch.record("project-at-risk", at_risk("PRJ-NB-B", spi=0.72)),
            batch.record("project-at-risk", at_risk("PRJ-NB-A", spi=0.74)),
        ]
        spans.clear()
        await service.runtime.consumer.process(records)
        # Taken as two runs, one call each (a refusal or failure would have sent the batch to
        # the careful pass, one event at a time, with the same effects).
        handled = handler_passes(spans)
        assert handled == [
            ("handle batch pmo.project-health-assessed", "optimistic"),
            ("handle batch pmo.project-at-risk", "optimistic"),
        ]

        views = {
            row.project_id: row
            for row in await rows(
                service,
                "SELECT project_id, health, metrics, at_risk_since, escalated_at "
                "FROM notifications.project WHERE project_id LIKE 'PRJ-NB-%'",
            )
        }
        assert (views["PRJ-NB-A"].health, views["PRJ-NB-A"].metrics["spi"]) == ("red", 0.7)
        assert views["PRJ-NB-A"].at_risk_since == episode
        assert views["PRJ-NB-A"].escalated_at is not None
        assert (views["PRJ-NB-B"].health, views["PRJ-NB-B"].metrics["spi"]) == ("amber", 0.8)
        assert views["PRJ-NB-B"].escalated_at is None

        def queued() -> str:
            return (
                "SELECT project_id, context FROM notifications.delivery "
                f"WHERE subscription_id = '{tool['id']}' ORDER BY id"
            )

        alerts = [
            (row.project_id, row.context["event"]["data"]["metrics"]["spi"])
            for row in await rows(service, queued())
        ]
        assert alerts == [("PRJ-NB-A", 0.71), ("PRJ-NB-B", 0.72), ("PRJ-NB-A", 0.74)]
        # A batch naming a project not registered yet: its events are parked until it is.
        waiting = [
            batch.record("project-health-assessed", at(now, assessed("PRJ-NB-C", "red"))),
            batch.record("project-at-risk", at_risk("PRJ-NB-C", spi=0.73)),
        ]
        await service.runtime.consumer.process(waiting)
        parked = await rows(
            service,
            "SELECT count(*) FROM parked_event WHERE consumer = 'notifications' "
            "AND waits_for = 'PRJ-NB-C'",
        )
        assert parked[0][0] == 2

        # The same batch again (a redelivery after a rebalance): duplicates, no second effect.
        await service.runtime.consumer.process(records)
        again = [
            (row.project_id, row.context["event"]["data"]["metrics"]["spi"])
            for row in await rows(service, queued())
        ]
        assert again == alerts
        assert await duplicates(service, records) == len(records)

        # C's registration lets its parked assessment and alert through, in their order.
        await register(enterprise, "PRJ-NB-C")

        async def c_alerted() -> list[Any] | None:
            found = await rows(service, queued())
            return found if len(found) == 4 else None

        queued_all = await eventually(c_alerted, timeout=60, what="C's parked alert queued")
        assert queued_all[3].project_id == "PRJ-NB-C"
        assert queued_all[3].context["project"]["health"] == "red"

        async def all_sent() -> list[tuple[str, float]] | None:
            sent = [json.loads(body)["data"] for _, body in receiver.received]
            found = [(data["project_id"], data["metrics"]["spi"]) for data in sent]
            return found if len(found) >= 4 else None

        sent = await eventually(all_sent, timeout=60, what="the four alerts delivered")
        assert sorted(sent) == sorted([*alerts, ("PRJ-NB-C", 0.73)])


def decided(
    batch: Batch, moment: datetime, request_id: str, granted: float, requested: float = 2.0
) -> Record:
    """Allocation's `resource-allocated` of a request, decided at `moment` (the event's time)."""
    record = batch.record(
        "resource-allocated",
        {
            "project_id": "PRJ-NR-A",
            "request_id": request_id,
            "skill": "architect",
            "fte_granted": granted,
            "fte_requested": requested,
            "weeks": ["2026-W48"],
            "status": "partial" if granted < requested else "granted",
            "reason": "capacity",
        },
    )
    envelope = json.loads(record.value)
    record.value = json.dumps({**envelope, "time": moment.isoformat()}).encode()
    return record


async def test_a_batch_of_allocation_decisions_keeps_the_newest_per_request_in_one_call(
    start_service: ServiceStarter,
    settings: Settings,
    spans: InMemorySpanExporter,
) -> None:
    """Allocation publishes a `resource-allocated` per request decided: a backlog of requests is
    as big a backlog of these, taken per batch as one at a time would (the newest decision per
    request by its time, of equal times the last to come; an older one arriving late changes
    nothing, nor does one older than the row kept)."""
    service = await start_service("notifications", **QUICK)
    decided_at = datetime.now(UTC).replace(microsecond=0)
    await execute(
        service,
        "INSERT INTO notifications.resource_request (request_id, project_id, skill, "
        "fte_requested, fte_granted, decided_at) VALUES "
        "('REQ-NR-3', 'PRJ-NR-A', 'architect', 2.0, 1.5, :kept)",
        kept=decided_at + timedelta(seconds=10),
    )
    batch = Batch(settings)
    records = [
        decided(batch, decided_at, "REQ-NR-1", 1.0),
        decided(batch, decided_at, "REQ-NR-2", 0.5, 1.0),
        decided(batch, decided_at + timedelta(seconds=2), "REQ-NR-1", 2.0),
        # Decided before the one above, arriving after it: changes nothing.
        decided(batch, decided_at + timedelta(seconds=1), "REQ-NR-1", 0.0),
        # The same time as REQ-NR-2's first: the later one stands, as one at a time.
        decided(batch, decided_at, "REQ-NR-2", 0.75, 1.0),
        # Older than what is kept for REQ-NR-3: changes nothing.
        decided(batch, decided_at + timedelta(seconds=5), "REQ-NR-3", 0.0),
        decided(batch, decided_at, "REQ-NR-4", 0.0, 1.0),
    ]
    spans.clear()
    await service.runtime.consumer.process(records)
    handled = handler_passes(spans)
    assert handled == [("handle batch pmo.resource-allocated", "optimistic")]

    def kept() -> str:
        return (
            "SELECT request_id, fte_requested, fte_granted, decided_at "
            "FROM notifications.resource_request WHERE request_id LIKE 'REQ-NR-%' "
            "ORDER BY request_id"
        )

    expected = [
        ("REQ-NR-1", 2.0, 2.0, decided_at + timedelta(seconds=2)),
        ("REQ-NR-2", 1.0, 0.75, decided_at),
        ("REQ-NR-3", 2.0, 1.5, decided_at + timedelta(seconds=10)),
        ("REQ-NR-4", 1.0, 0.0, decided_at),
    ]
    assert [tuple(row) for row in await rows(service, kept())] == expected

    # A later batch with a newer decision for one request and the first batch's events again
    # (a redelivery): the newer one stands, the redelivered ones are duplicates.
    newer = decided(batch, decided_at + timedelta(seconds=3), "REQ-NR-2", 1.0, 1.0)
    await service.runtime.consumer.process([*records, newer])
    expected[1] = ("REQ-NR-2", 1.0, 1.0, decided_at + timedelta(seconds=3))
    assert [tuple(row) for row in await rows(service, kept())] == expected
    assert await duplicates(service, records) == len(records)
