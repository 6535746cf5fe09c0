"""The registry's per-batch `status-changed`: one project's reports in one batch, as one by one.

The test hands the running registry's consumer a batch it composed itself (as Kafka delivers a
backlog): several reports of one project, one of them older and arriving late, one moving the
project on hold; the project's status, its history and the kept reports must be what handling
them one at a time, in that order, gives.
"""

from __future__ import annotations

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.settings import Settings
from tests.allocation.test_batch import handled
from tests.harness import Enterprise, RunningService, eventually
from tests.notifications.test_batch import Batch
from tests.registry.conftest import charter, project_when, status


async def test_a_batch_of_one_projects_reports_keeps_the_newest_and_the_history_in_order(
    registry: RunningService,
    api: httpx.AsyncClient,
    enterprise: Enterprise,
    settings: Settings,
    spans: InMemorySpanExporter,
) -> None:
    await enterprise.send("project-started", charter("PRJ-BT"))
    await project_when(api, "PRJ-BT", "PRJ-BT registered", lifecycle="active")

    # The registry also takes its own `project-registered`: once it has, nothing else of its
    # own is handled while the test's batch is (it would otherwise land among its spans).
    async def own_registration_taken() -> bool:
        return ("handle pmo.project-registered", "optimistic") in handled(spans)

    await eventually(own_registration_taken, what="the registry taking its project-registered")
    batch = Batch(settings)
    reports = [
        status("PRJ-BT", as_of="2026-03-31", percent_complete=20),
        status("PRJ-BT", as_of="2026-04-30", percent_complete=30),
        status("PRJ-BT", as_of="2026-04-15", percent_complete=25),  # older, late: kept only
        status("PRJ-BT", as_of="2026-05-31", percent_complete=35, lifecycle="on_hold"),
        status("PRJ-BT", as_of="2026-06-30", percent_complete=40),
    ]
    records = [batch.record("status-changed", report) for report in reports]
    spans.clear()
    await registry.runtime.consumer.process(records)
    assert handled(spans) == [("handle batch pmo.status-changed", "optimistic")]

    project = (await api.get("/projects/PRJ-BT")).json()
    assert (project["status_as_of"], project["percent_complete"]) == ("2026-06-30", 40)
    assert project["lifecycle"] == "on_hold"
    history = (await api.get("/projects/PRJ-BT/history")).json()["items"]
    changes = [
        (entry["change"], (entry["after"] or {}).get("status_as_of") or entry["after"])
        for entry in history
        if entry["change"] in ("status", "lifecycle")
    ]
    assert [change for change, _ in changes] == [
        "status",
        "status",
        "status",
        "lifecycle",
        "status",
    ]
    assert [after for change, after in changes if change == "status"] == [
        "2026-03-31",
        "2026-04-30",
        "2026-05-31",
        "2026-06-30",
    ]
