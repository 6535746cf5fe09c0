"""Allocation's per-batch `resource-requested`: a batch of requests, as one by one, once.

The service runs as usual (its consumer on the broker, its re-resolution worker); the test hands
its one consumer batches it composed itself, as Kafka would deliver a backlog, so that what a
batch holds is known: several requests of one project, and a request id used twice in a batch.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
