"""Per-batch handlers (status-changed in monitoring and registry) against the real broker and DB.

The services run as usual (their consumers on the broker, their relays publishing); each test
then hands the service's one consumer a batch it composed itself, as Kafka would deliver a
backlog, so that what a batch holds is known: several projects interleaved, a redelivery, one
bad event among good ones.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.monitoring.adapters.repository import HISTORY_CHUNK
from services.monitoring.service_layer import handlers
from shared.messaging.tables import dead_letter, outbox
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually, structured_event
from tests.monitoring.monitoring_support import QUIET_CLOCK_S, charter, report

START = date(2026, 1, 1)

# What differs between two assessments of the same facts made at different moments.
MOMENT_FIELDS = {"assessed_at", "at_risk_since", "project_id"}


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
    """Builds records of one topic with increasing offsets, as one fetch would return them."""

    def __init__(self, settings: Settings, event_type: str) -> None:
        self.topic = f"{settings.topic_prefix}{event_type}"
        self.event_type = event_type
        self.offset = 10_000

    def record(self, data: dict[str, Any], event_id: str | None = None) -> Record:
        value, headers = structured_event(self.event_type, data, event_id=event_id)
        self.offset += 1
        return Record(self.topic, 0, self.offset, data["project_id"].encode(), value, headers)


def day(n: int) -> date:
    return START + timedelta(days=n)


async def rows(service: RunningService, query: Any) -> list[Any]:
    async with service.runtime.engine.connect() as connection:
        return list((await connection.execute(query)).all())


async def published(service: RunningService, project_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The events the service published about a project (dead letters aside), in order:
    (type, data)."""
    found = await rows(
        service,
        sa.select(outbox.c.value)
        .where(outbox.c.key == project_id.encode(), outbox.c.topic.not_like("%.dlq"))
        .order_by(outbox.c.seq),
    )
    events = [json.loads(bytes(row.value)) for row in found]
    return [(event["type"], event["data"]) for event in events]


def without_moments(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (kind, {name: value for name, value in data.items() if name not in MOMENT_FIELDS})
        for kind, data in events
    ]


async def monitoring_with(
    start_service: ServiceStarter, enterprise: Enterprise, project_ids: list[str]
) -> RunningService:
    service = await start_service("monitoring", monitoring_staleness_check_interval_s=QUIET_CLOCK_S)
    for project_id in project_ids:
        await enterprise.send("project-started", charter(project_id, start=START))

    async def all_known() -> bool:
        known = await rows(
            service,
            sa.text(
                "SELECT count(*) FROM monitored_project WHERE project_id = ANY(:ids)"
            ).bindparams(ids=project_ids),
        )
        return bool(known[0][0] == len(project_ids))

    await eventually(all_known, timeout=60, what=f"monitoring holding {project_ids}")
    return service


def reports_of(project_id: str) -> list[dict[str, Any]]:
    """A project's reports: on plan, slipping (at risk), then one older than the latest."""
    return [
        report(project_id, day(30), 8.0, 8_000),
        report(project_id, day(60), 4.0, 30_000),
        report(project_id, day(90), 5.0, 60_000),
        report(project_id, day(45), 12.0, 9_000),
    ]


async def test_a_batch_of_mixed_projects_keeps_each_ones_order_and_publishes_its_newest_health_once(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    service = await monitoring_with(
        start_service, enterprise, ["PRJ-BATCH-A", "PRJ-BATCH-B", "PRJ-ALONE-A"]
    )
    batch = Batch(settings, "status-changed")
    a, b = reports_of("PRJ-BATCH-A"), reports_of("PRJ-BATCH-B")
    # One batch, the two projects' reports interleaved.
    interleaved = [batch.record(data) for pair in zip(a, b, strict=True) for data in pair]
    await service.runtime.consumer.process(interleaved)
    # The same reports of a twin project, one event per transaction.
    for data in reports_of("PRJ-ALONE-A"):
        await service.runtime.consumer.process([batch.record(data)])

    history = await rows(
        service,
        sa.text(
            "SELECT project_id, as_of, applied, alert FROM health_assessment "
            "WHERE project_id LIKE 'PRJ-%' ORDER BY id"
        ),
    )
    for project_id in ("PRJ-BATCH-A", "PRJ-BATCH-B", "PRJ-ALONE-A"):
        assert [(r.as_of, r.applied, r.alert) for r in history if r.project_id == project_id] == [
            (day(30), True, None),
            (day(60), True, "project-at-risk"),
            (day(90), True, None),
            (day(45), False, None),  # older than the latest: kept, not applied
        ], project_id
    (latest,) = await rows(
        service,
        sa.text("SELECT latest_as_of FROM monitored_project WHERE project_id = 'PRJ-BATCH-A'"),
    )
    assert latest.latest_as_of == day(90)

    # One by one, each applied report that changes the views publishes its assessment.
    alone = await published(service, "PRJ-ALONE-A")
    assert [kind for kind, _ in alone] == [
        "pmo.project-health-assessed",
        "pmo.project-at-risk",
        "pmo.project-health-assessed",
        "pmo.project-health-assessed",
    ]
    # In one batch: the alert of the report that crossed into risk, and only the newest
    # assessment (the same as the last one published one by one).
    in_batch = await published(service, "PRJ-BATCH-A")
    assert [kind for kind, _ in in_batch] == ["pmo.project-at-risk", "pmo.project-health-assessed"]
    assert without_moments(in_batch) == without_moments([alone[1], alone[-1]])
    assert in_batch[-1][1]["as_of"] == day(90).isoformat()
    assert without_moments(await published(service, "PRJ-BATCH-B")) == without_moments(in_batch)


async def process_reports(
    service: RunningService, settings: Settings, reports: list[dict[str, Any]]
) -> None:
    """Hand the service's consumer these status reports as one batch."""
    batch = Batch(settings, "status-changed")
    await service.runtime.consumer.process([batch.record(data) for data in reports])


async def test_a_project_at_risk_and_recovered_within_one_batch_raises_both_alerts(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    service = await monitoring_with(start_service, enterprise, ["PRJ-DIP"])
    on_plan, slipping, ahead = (  # green, red, green again
        report("PRJ-DIP", day(30), 8.0, 8_000),
        report("PRJ-DIP", day(60), 4.0, 30_000),
        report("PRJ-DIP", day(90), 30.0, 30_000),
    )
    await process_reports(service, settings, [on_plan, slipping, ahead])
    events = await published(service, "PRJ-DIP")
    assert [kind for kind, _ in events] == [
        "pmo.project-at-risk",
        "pmo.project-recovered",
        "pmo.project-health-assessed",
    ]
    newest = events[-1][1]
    assert (newest["health"], newest["as_of"], newest["at_risk_since"]) == (
        "green",
        day(90).isoformat(),
        None,
    )
    (kept,) = await rows(
        service,
        sa.text("SELECT health, assessed_at FROM monitored_project WHERE project_id = 'PRJ-DIP'"),
    )
    assert (kept.health, kept.assessed_at) == (
        "green",
        datetime.fromisoformat(newest["assessed_at"]),
    )
    # The history keeps every report's assessment, the last one the same as the published one.
    history = await rows(
        service,
        sa.text(
            "SELECT health, alert, assessed_at, metrics FROM health_assessment "
            "WHERE project_id = 'PRJ-DIP' ORDER BY id"
        ),
    )
    assert [(row.health, row.alert) for row in history] == [
        ("green", None),
        ("red", "project-at-risk"),
        ("green", "project-recovered"),
    ]
    assert (history[-1].assessed_at, history[-1].metrics) == (kept.assessed_at, newest["metrics"])


async def test_a_redelivered_batch_has_one_effect(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    service = await monitoring_with(start_service, enterprise, ["PRJ-R1", "PRJ-R2"])
    batch = Batch(settings, "status-changed")
    records = [
        batch.record(data)
        for pair in zip(reports_of("PRJ-R1"), reports_of("PRJ-R2"), strict=True)
        for data in pair
    ]
    await service.runtime.consumer.process(records)
    count = sa.text(
        "SELECT count(*) FROM health_assessment WHERE project_id IN ('PRJ-R1', 'PRJ-R2')"
    )
    effects = ((await rows(service, count))[0][0], await published(service, "PRJ-R1"))

    await service.runtime.consumer.process(records)  # Kafka delivers the batch again

    assert ((await rows(service, count))[0][0], await published(service, "PRJ-R1")) == effects
    duplicates = await rows(
        service,
        sa.select(dead_letter.c.reason).where(dead_letter.c.reason.startswith("duplicate")),
    )
    assert len(duplicates) == len(records)


async def test_an_unknown_project_in_a_batch_waits_while_the_others_commit(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    service = await monitoring_with(start_service, enterprise, ["PRJ-K1"])
    await process_reports(
        service,
        settings,
        [
            report("PRJ-K1", day(30), 8.0, 8_000),
            report("PRJ-NOT-YET", day(30), 8.0, 8_000),
            report("PRJ-K1", day(60), 16.0, 16_000),
        ],
    )
    parked = await rows(service, sa.text("SELECT waits_for FROM parked_event"))
    assert [row.waits_for for row in parked] == ["PRJ-NOT-YET"]
    history = await rows(
        service,
        sa.text("SELECT as_of FROM health_assessment WHERE project_id = 'PRJ-K1' ORDER BY id"),
    )
    assert [row.as_of for row in history] == [day(30), day(60)]


def long_run(project_ids: list[str], per_project: int) -> list[dict[str, Any]]:
    """`per_project` reports of each project, a day apart, the projects interleaved: a batch
    longer than one chunk of the history (`HISTORY_CHUNK`)."""
    return [
        report(project_id, day(n + 1), 0.25 * n, 900.0 * n)
        for n in range(per_project)
        for project_id in project_ids
    ]


async def history_of(service: RunningService, project_ids: list[str]) -> list[tuple[str, date]]:
    """(project id, as-of date) of the projects' history rows, in the order of their ids."""
    found = await rows(
        service,
        sa.text(
            "SELECT project_id, as_of FROM health_assessment WHERE project_id = ANY(:ids) "
            "ORDER BY id"
        ).bindparams(ids=project_ids),
    )
    return [(row.project_id, row.as_of) for row in found]


async def test_a_batch_longer_than_a_history_chunk_keeps_every_report_in_order_once(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    project_ids = ["PRJ-LONG-1", "PRJ-LONG-2"]
    service = await monitoring_with(start_service, enterprise, project_ids)
    reports = long_run(project_ids, per_project=HISTORY_CHUNK + HISTORY_CHUNK // 4)
    await process_reports(service, settings, reports)

    assert await history_of(service, project_ids) == [
        (data["project_id"], date.fromisoformat(data["as_of"])) for data in reports
    ]
    kept = await rows(
        service,
        sa.text(
            "SELECT latest_as_of FROM monitored_project WHERE project_id = ANY(:ids)"
        ).bindparams(ids=project_ids),
    )
    assert [row.latest_as_of for row in kept] == [date.fromisoformat(reports[-1]["as_of"])] * 2


async def test_a_report_failing_after_a_history_chunk_was_sent_is_dead_lettered_alone(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    project_ids = ["PRJ-CHUNK-1", "PRJ-CHUNK-2"]
    service = await monitoring_with(start_service, enterprise, project_ids)
    reports = long_run(project_ids, per_project=HISTORY_CHUNK)
    breaking = reports[HISTORY_CHUNK + 10]  # after the first chunk's statement was sent
    take_report = handlers._take_report

    def failing(project: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
        if (event.project_id, event.as_of.isoformat()) == (
            breaking["project_id"],
            breaking["as_of"],
        ):
            raise RuntimeError("a bug in the rules")
        return take_report(project, event, *args, **kwargs)

    monkeypatch.setattr(handlers, "_take_report", failing)
    await process_reports(service, settings, reports)

    (dead,) = await rows(service, sa.select(dead_letter.c.reason))
    assert dead.reason == "handler error: RuntimeError: a bug in the rules"
    # The optimistic pass's chunks were rolled back with it: each other report once, in order.
    assert await history_of(service, project_ids) == [
        (data["project_id"], date.fromisoformat(data["as_of"]))
        for data in reports
        if data is not breaking
    ]


async def test_one_rejected_report_in_a_registry_batch_is_dead_lettered_and_the_rest_commit(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    service = await start_service("registry")
    for project_id in ("PRJ-G1", "PRJ-G2"):
        await enterprise.send("project-started", charter(project_id, start=START))

    async def registered() -> bool:
        found = await rows(service, sa.text("SELECT count(*) FROM project"))
        return bool(found[0][0] == 2)

    await eventually(registered, timeout=60, what="both projects registered")
    batch = Batch(settings, "status-changed")
    bad_id = str(uuid.uuid4())
    await service.runtime.consumer.process(
        [
            batch.record(report("PRJ-G1", day(30), 10.0, 8_000)),
            batch.record(report("PRJ-G2", day(30), 20.0, 8_000)),
            batch.record(report("PRJ-G1", day(35), 11.0, 8_500, lifecycle="on_hold")),
            # From on hold straight to completed: not a move of the standard stage model.
            batch.record(report("PRJ-G1", day(40), 12.0, 9_000, lifecycle="completed"), bad_id),
            batch.record(report("PRJ-G2", day(60), 25.0, 9_000)),
        ]
    )

    (dead,) = await rows(service, sa.select(dead_letter.c.event_id, dead_letter.c.reason))
    assert dead.event_id == bad_id
    assert dead.reason.startswith("rejected: PRJ-G1: on_hold -> completed"), dead.reason
    kept = await rows(
        service, sa.text("SELECT project_id, as_of FROM status_report ORDER BY project_id, as_of")
    )
    assert [(r.project_id, r.as_of) for r in kept] == [
        ("PRJ-G1", day(30)),
        ("PRJ-G1", day(35)),
        ("PRJ-G2", day(30)),
        ("PRJ-G2", day(60)),
    ]
    projects = await rows(
        service,
        sa.text(
            "SELECT project_id, status_as_of, percent_complete, lifecycle FROM project "
            "ORDER BY project_id"
        ),
    )
    assert [tuple(r) for r in projects] == [
        ("PRJ-G1", day(35), 11.0, "on_hold"),
        ("PRJ-G2", day(60), 25.0, "active"),
    ]
    history = await rows(
        service,
        sa.text(
            "SELECT project_id, change, after FROM project_history "
            "WHERE change IN ('status', 'lifecycle') ORDER BY id"
        ),
    )
    assert [(r.project_id, r.change, r.after.get("status_as_of")) for r in history] == [
        ("PRJ-G1", "status", day(30).isoformat()),
        ("PRJ-G2", "status", day(30).isoformat()),
        ("PRJ-G1", "status", day(35).isoformat()),
        ("PRJ-G1", "lifecycle", None),
        ("PRJ-G2", "status", day(60).isoformat()),
    ]
    moves = [data for kind, data in await published(service, "PRJ-G1") if "lifecycle" in kind]
    assert [(m["from"], m["to"]) for m in moves] == [("active", "on_hold")]
