"""Allocation's per-batch `resource-requested`: a batch of requests, as one by one, once.

The service runs as usual (its consumer on the broker, its re-resolution worker); the test hands
its one consumer batches it composed itself, as Kafka would deliver a backlog, so that what a
batch holds is known: several requests of one project, and a request id used twice in a batch.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.allocation.adapters.repository import PlannedBook, load_state
from services.allocation.domain.resolution import AllocationState, resolve
from services.allocation.service_layer import resolution
from services.allocation.service_layer.resolution import hold_resolution_lock
from shared.settings import Settings
from tests.allocation.test_allocation_flow import (
    END,
    START,
    given_portfolio,
    request,
    statuses,
    until,
)
from tests.harness import Enterprise, RunningService
from tests.notifications.test_batch import Batch

LATER = START + timedelta(weeks=6)
THREE = [("1", 0.25), ("2", 0.25), ("3", 0.5)]
"""Three requests of PRJ-A for Maria: suffix and FTE; together they fill her weeks."""


async def rows(service: RunningService, query: str) -> list[Any]:
    async with service.runtime.engine.connect() as connection:
        return list((await connection.execute(sa.text(query))).all())


def handled(spans: InMemorySpanExporter) -> list[tuple[str, Any]]:
    """The handling spans finished so far: name and pass (optimistic, or careful)."""
    return [
        (span.name, (span.attributes or {}).get("pmo.pass"))
        for span in spans.get_finished_spans()
        if span.name.startswith("handle ")
    ]


async def test_a_batch_of_one_projects_requests_is_one_call_with_the_effects_of_one_by_one(
    start_service: Any,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
    settings: Settings,
    spans: InMemorySpanExporter,
) -> None:
    service: RunningService = await start_service("allocation", allocation_resolution_poll_s=0.5)
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        await given_portfolio(api, enterprise, "PRJ-A")
        batch = Batch(settings)
        together = [
            batch.record("resource-requested", request(f"REQ-B{n}", "PRJ-A", fte=fte))
            for n, fte in THREE
        ]
        spans.clear()
        await service.runtime.consumer.process(together)
        assert handled(spans) == [("handle batch pmo.resource-requested", "optimistic")]
        # The same requests one by one, each in a transaction of its own, for weeks later on
        # (so that they do not compete with the batch's for Maria).
        later = {"start": LATER.isoformat(), "end": (LATER + (END - START)).isoformat()}
        spans.clear()
        for n, fte in THREE:
            one = batch.record(
                "resource-requested", request(f"REQ-S{n}", "PRJ-A", fte=fte, **later)
            )
            await service.runtime.consumer.process([one])
        assert len(handled(spans)) == len(THREE)

        kept = {
            row.request_id: row
            for row in await rows(
                service,
                "SELECT request_id, project_id, skill, fte, cardinality(weeks) AS weeks, "
                "named_resource FROM allocation.resource_request",
            )
        }
        assert len(kept) == 2 * len(THREE)
        for n, _ in THREE:
            assert kept[f"REQ-B{n}"][1:] == kept[f"REQ-S{n}"][1:]

        async def all_decided(api: httpx.AsyncClient) -> bool:
            found = await statuses(api)
            return len(found) == 2 * len(THREE) and "open" not in {s for s, _ in found.values()}

        await until(api, all_decided, "the six requests decided")
        decided = await statuses(api)
        assert [decided[f"REQ-B{n}"] for n, _ in THREE] == [
            ("granted", 0.25),
            ("granted", 0.25),
            ("granted", 0.5),
        ]
        assert [decided[f"REQ-S{n}"] for n, _ in THREE] == [decided[f"REQ-B{n}"] for n, _ in THREE]

        # A request id twice in one batch: the second is refused as a duplicate, the first kept.
        twice = [
            batch.record("resource-requested", request("REQ-D", "PRJ-A", fte=0.1)),
            batch.record("resource-requested", request("REQ-D", "PRJ-A", fte=0.1)),
        ]
        await service.runtime.consumer.process(twice)
        reasons = [
            row.reason
            for row in await rows(
                service, "SELECT reason FROM dead_letter WHERE consumer = 'allocation'"
            )
        ]
        assert len(reasons) == 1
        assert reasons[0].startswith("rejected: duplicate request 'REQ-D': already received")
        stored = await rows(
            service, "SELECT event_id FROM allocation.resource_request WHERE request_id = 'REQ-D'"
        )
        assert len(stored) == 1


async def test_a_backlog_of_batches_is_decided_each_request_once_as_a_full_solve_decides(
    start_service: Any,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    """Batch after batch while the worker re-solves (coalescing them, component by component):
    every request is decided, its first `resource-allocated` published once, and what is in
    force at the end is what a full solve of the whole book gives."""
    service: RunningService = await start_service(
        "allocation", allocation_resolution_poll_s=0.5, allocation_resolution_coalesce_s=0.3
    )
    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        await given_portfolio(api, enterprise, "PRJ-A", "PRJ-B")
        batch = Batch(settings)
        # Maria's component (named or by her skill, two projects, more than she can give) and
        # requests for a skill nobody has (each apart, denied).
        asks: list[dict[str, Any]] = [
            {"fte": 0.2},
            {"fte": 0.3, "named_resource": None},
            {"fte": 0.5, "named_resource": None, "skill": "cobol"},
        ]
        ids = []
        for number in range(8):
            records = []
            for n in range(15):
                request_id = f"REQ-K{number}-{n}"
                ids.append(request_id)
                project = ("PRJ-A", "PRJ-B")[n % 2]
                records.append(
                    batch.record("resource-requested", request(request_id, project, **asks[n % 3]))
                )
            await service.runtime.consumer.process(records)

        async def all_decided(api: httpx.AsyncClient) -> bool:
            undecided = await rows(
                service,
                "SELECT (SELECT count(*) FROM allocation.resource_request "
                "WHERE decided_at IS NULL) + (SELECT count(*) FROM allocation.resolution_pending)",
            )
            return bool(undecided[0][0] == 0)

        await until(api, all_decided, "the backlog decided")
        outbox = await rows(
            service, "SELECT value FROM allocation.outbox WHERE topic LIKE '%resource-allocated'"
        )
        published = [json.loads(row.value)["data"]["request_id"] for row in outbox]
        assert len(ids) == 120
        assert sorted(published) == sorted(ids)  # each once: nothing lost, nothing twice

        stored = {
            row.request_id: (row.status, row.fte_granted, row.reason)
            for row in await rows(
                service,
                "SELECT request_id, status, fte_granted, reason FROM allocation.resource_request",
            )
        }
        async with service.runtime.unit_of_work() as uow:
            state = await load_state(
                uow.session,
                today=datetime.now(UTC).date(),
                hours_per_fte_week=settings.allocation_hours_per_fte_week,
            )
        full = resolve(state, None, move_penalty=settings.allocation_move_penalty)
        assert full.allocations == state.allocations
        assert full.changed == ()
        assert {r: (o.status, o.fte_granted, o.reason) for r, o in full.outcomes.items()} == stored
        assert {s for s, _, _ in stored.values()} >= {"granted", "denied"}  # Maria is short


async def test_the_workers_book_reads_the_state_a_fresh_read_gives_after_every_kind_of_write(
    start_service: Any,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
    settings: Settings,
) -> None:
    """The re-resolution worker keeps its plans of the requests between runs (`PlannedBook`):
    after new requests, their decisions, a request asking less (as an intervention's release
    writes it, made undecided again) and a request received earlier committed later, loading
    with the book gives the state a fresh read gives, and the book plans again only the
    requests whose content changed."""
    service: RunningService = await start_service("allocation", allocation_resolution_poll_s=0.5)
    today = datetime.now(UTC).date()
    hours = settings.allocation_hours_per_fte_week
    book = PlannedBook()

    async def both(*writes: str) -> tuple[AllocationState, AllocationState]:
        """The state with the book and without, after `writes`, in one transaction holding
        the worker's lock (no re-resolution commits in between)."""
        async with service.runtime.unit_of_work() as uow:
            await hold_resolution_lock(uow.session)
            for statement in writes:
                await uow.session.exec(sa.text(statement))  # type: ignore[call-overload]
            kept = await load_state(uow.session, today=today, hours_per_fte_week=hours, book=book)
            fresh = await load_state(uow.session, today=today, hours_per_fte_week=hours)
            await uow.commit()
        return kept, fresh

    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        await given_portfolio(api, enterprise, "PRJ-A", "PRJ-B")
        batch = Batch(settings)
        await service.runtime.consumer.process(
            [
                batch.record("resource-requested", request(f"REQ-P{n}", "PRJ-A", fte=0.25))
                for n in range(4)
            ]
        )
        kept, fresh = await both()
        assert kept == fresh
        assert len(fresh.requests) == 4

        async def all_decided(api: httpx.AsyncClient) -> bool:
            undecided = await rows(
                service,
                "SELECT count(*) FROM allocation.resource_request WHERE decided_at IS NULL",
            )
            return bool(undecided[0][0] == 0)

        await until(api, all_decided, "the requests decided")
        kept, fresh = await both()
        assert kept == fresh
        assert all(request.decided for request in fresh.requests.values())
        planned = {request_id: plan for request_id, (_, plan) in book.rows.items()}

        # An intervention's release: the request asks 0 FTE from now on, undecided again.
        kept, fresh = await both(
            "UPDATE allocation.resource_request SET fte = 0, hours = NULL, decided_at = NULL "
            "WHERE request_id = 'REQ-P1'"
        )
        assert kept == fresh
        assert fresh.requests["REQ-P1"].fte == 0
        assert not fresh.requests["REQ-P1"].decided
        assert book.rows["REQ-P1"][1] is not planned["REQ-P1"]
        assert all(book.rows[r][1] is planned[r] for r in ("REQ-P0", "REQ-P2", "REQ-P3"))

        # A new request, received before the others but committed after them: it comes first.
        await service.runtime.consumer.process(
            [batch.record("resource-requested", request("REQ-P9", "PRJ-B", fte=0.5))]
        )
        kept, fresh = await both(
            "UPDATE allocation.resource_request SET received_at = received_at - interval '1 day' "
            "WHERE request_id = 'REQ-P9'"
        )
        assert kept == fresh
        assert fresh.requests["REQ-P9"].arrival == 0
        assert fresh.requests["REQ-P0"].arrival == 1


async def test_a_request_committed_while_a_run_reads_is_decided_by_the_run_that_takes_its_row(
    start_service: Any,
    admin_headers: dict[str, str],
    enterprise: Enterprise,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A request (and its pending row) committed after a re-resolution read its pending rows
    and before it read the state, the interleaving that once had a run decide a request without
    taking its row (the next run then gave "new request ..." as its cause again): each run
    decides exactly the new requests whose rows it handles, each request's cause is in one run
    only, and each is published once."""
    service: RunningService = await start_service("allocation", allocation_resolution_poll_s=0.5)
    batch = Batch(settings)
    late = batch.record("resource-requested", request("REQ-LATE", "PRJ-A", fte=0.25))
    read_state = load_state
    committed = False

    async def a_request_commits_first(*args: Any, **kwargs: Any) -> AllocationState:
        nonlocal committed
        if not committed:
            committed = True
            # In a transaction of its own, on another connection, as the consumer's next batch.
            await service.runtime.consumer.process([late])
        return await read_state(*args, **kwargs)

    async with httpx.AsyncClient(base_url=service.base_url, headers=admin_headers) as api:
        await given_portfolio(api, enterprise, "PRJ-A")

        async def nothing_pending(api: httpx.AsyncClient) -> bool:
            left = await rows(service, "SELECT count(*) FROM allocation.resolution_pending")
            return bool(left[0][0] == 0)

        # The registration's and ranking's runs done: the next run is REQ-FIRST's.
        await until(api, nothing_pending, "the portfolio's re-resolutions done")
        monkeypatch.setattr(resolution, "load_state", a_request_commits_first)
        first = batch.record("resource-requested", request("REQ-FIRST", "PRJ-A", fte=0.25))
        await service.runtime.consumer.process([first])

        async def all_decided(api: httpx.AsyncClient) -> bool:
            undecided = await rows(
                service,
                "SELECT (SELECT count(*) FROM allocation.resource_request "
                "WHERE decided_at IS NULL) + (SELECT count(*) FROM allocation.resolution_pending)",
            )
            return committed and bool(undecided[0][0] == 0)

        await until(api, all_decided, "both requests decided")
        runs = await rows(service, "SELECT causes, decided FROM allocation.resolution_run")
        new = [[c for c in causes if c.startswith("new request ")] for causes, _ in runs]
        assert [len(causes) for causes in new] == [decided for _, decided in runs]
        causes = [cause for run in new for cause in run]
        assert sorted(causes) == [
            "new request REQ-FIRST from PRJ-A",
            "new request REQ-LATE from PRJ-A",
        ]
        outbox = await rows(
            service, "SELECT value FROM allocation.outbox WHERE topic LIKE '%resource-allocated'"
        )
        published = sorted(json.loads(row.value)["data"]["request_id"] for row in outbox)
        assert published == ["REQ-FIRST", "REQ-LATE"]


async def test_the_coalescing_hold_ends_once_the_consumer_has_caught_up() -> None:
    """The worker holds its next run for as long as its last one took only while the consumer
    is behind: `behind` is asked every `quiet` seconds and the hold ends at its first no, long
    before the hold's length (30 s here; the test's guard fails it at 20 s)."""
    answers = iter([True, True, False])
    asked = 0

    def behind() -> bool:
        nonlocal asked
        asked += 1
        return next(answers)

    wake = asyncio.Event()
    await asyncio.wait_for(
        resolution.coalesce(wake, bound=30.0, at_least=30.0, quiet=0.01, behind=behind), 20
    )
    assert asked == 3
