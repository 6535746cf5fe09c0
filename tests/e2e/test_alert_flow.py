"""End to end, from outside: enterprise events become a signed at-risk alert, in one trace."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import httpx
import pytest

from services.notifications.domain.alerts import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, webhook_receiver

pytestmark = pytest.mark.e2e

SECRET = "webhook-test-secret"

PROJECT = {
    "project_id": "PRJ-ORION",
    "name": "Orion customer portal",
    "business_unit": "Digital",
    "manager": "ada.lovelace@example.com",
    "start_date": "2026-01-01",
    "planned_finish_date": "2026-12-31",
    "budget": 100000,
    "currency": "EUR",
}
# Half of the year has elapsed (PV = 50,000) and 30% is done (EV = 30,000): SPI = 0.6.
SLIPPING = {
    "project_id": "PRJ-ORION",
    "as_of": "2026-07-02",
    "percent_complete": 30,
    "actual_cost": 30000,
}


async def test_status_report_with_spi_06_reaches_the_webhook_signed_and_in_one_trace(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    spans: object,
    admin_headers: dict[str, str],
) -> None:
    async with webhook_receiver() as receiver:
        _, _, notifications = await asyncio.gather(
            start_service("registry"),
            start_service("monitoring"),
            start_service(
                "notifications", alert_webhook_url=receiver.url, alert_webhook_secret=SECRET
            ),
        )

        await enterprise.send("project-started", PROJECT)
        status_id = await enterprise.send("status-changed", SLIPPING, binary=True)

        await eventually(
            lambda: _first(receiver.received), timeout=30, what="the at-risk alert at the webhook"
        )
        headers, body = receiver.received[0]
        assert headers[SIGNATURE_HEADER.lower()] == signature(
            SECRET, headers[TIMESTAMP_HEADER.lower()], body
        )
        alert = json.loads(body)
        assert alert["event_type"] == "pmo.project-at-risk"
        assert alert["data"]["project_id"] == "PRJ-ORION"
        assert alert["data"]["severity"] == "red"
        assert [reason["code"] for reason in alert["data"]["reasons"]] == ["schedule"]
        assert alert["data"]["metrics"]["spi"] == pytest.approx(0.6, abs=0.01)

        # One trace: the status report's handling in registry and monitoring, the at-risk event's
        # handling in notifications and the webhook call all carry the same trace id.
        finished = spans.get_finished_spans()  # type: ignore[attr-defined]
        by_service: dict[str, set[int]] = {}
        for span in finished:
            attributes = span.attributes or {}
            service = span.resource.attributes.get("service.name")
            if attributes.get("messaging.message.id") == status_id or (
                service == "pmo-notifications"
                and (
                    attributes.get("cloudevents.event_type") == "pmo.project-at-risk"
                    or span.name == "deliver alert webhook"
                )
            ):
                by_service.setdefault(str(service), set()).add(span.context.trace_id)
        assert set(by_service) == {"pmo-registry", "pmo-monitoring", "pmo-notifications"}
        trace_ids = set().union(*by_service.values())
        assert len(trace_ids) == 1, by_service
        trace_id = trace_ids.pop()
        assert headers["traceparent"].split("-")[1] == format(trace_id, "032x")
        # The handlers' reads are in that trace too (their writes are flushed together when the
        # batch commits, which belongs to no single event).
        assert {
            str(span.resource.attributes.get("service.name"))
            for span in finished
            if span.context.trace_id == trace_id
            and (span.attributes or {}).get("db.system") == "postgresql"
        } >= {"pmo-registry", "pmo-monitoring"}

        # The receiver has it; the delivery's outcome is recorded just after the answer.
        async with httpx.AsyncClient(
            base_url=notifications.base_url, headers=admin_headers
        ) as client:

            async def recorded() -> list[tuple[str, int]] | None:
                deliveries = (await client.get("/deliveries")).json()
                outcome = [(d["state"], d["attempts"]) for d in deliveries]
                return outcome if outcome == [("delivered", 1)] else None

            await eventually(recorded, what="the delivery recorded as delivered once")


async def _first(items: Sequence[object]) -> object | None:
    return items[0] if items else None
