"""One strategy change, followed through all four services in one trace, and every metric there."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, structured_event, webhook_receiver

pytestmark = pytest.mark.e2e

ARCHITECT = {
    "resource_id": "res-maria",
    "name": "Maria Architect",
    "skills": ["solution-architect"],
    "capacity_fte": 1.0,
}


def project(project_id: str, objective: str) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "name": f"Project {project_id}",
        "business_unit": "Digital",
        "manager": "pm@example.com",
        "start_date": "2026-01-01",
        "planned_finish_date": "2027-12-31",
        "budget": 500000,
        "currency": "EUR",
        "objectives": [{"objective_id": objective, "contribution": 1.0}],
    }


def strategy(version: int, grow: float, cut: float) -> dict[str, Any]:
    return {
        "strategy_version": version,
        "effective_date": "2026-11-01",
        "objectives": [
            {"objective_id": "grow", "name": "Grow digital revenue", "weight": grow},
            {"objective_id": "cut", "name": "Cut operating cost", "weight": cut},
        ],
    }


def request(request_id: str, project_id: str) -> dict[str, Any]:
    # Future weeks: allocation never re-plans the past.
    start = datetime.now(UTC).date() + timedelta(weeks=2)
    return {
        "request_id": request_id,
        "project_id": project_id,
        "skill": "solution-architect",
        "fte": 1.0,
        "start": start.isoformat(),
        "end": (start + timedelta(weeks=3)).isoformat(),
        "named_resource": "res-maria",
    }


async def test_a_strategy_change_is_one_trace_across_the_four_services(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    spans: InMemorySpanExporter,
    admin_headers: dict[str, str],
) -> None:
    async with webhook_receiver() as receiver:
        registry, monitoring, allocation, notifications = (
            await start_service("registry"),
            await start_service("monitoring"),
            await start_service("allocation"),
            await start_service("notifications", alert_webhook_url=receiver.url),
        )
        async with httpx.AsyncClient(base_url=allocation.base_url, headers=admin_headers) as api:
            assert (await api.post("/resources", json=ARCHITECT)).status_code == 201

            # Strategy 1 favours PRJ-GROW, which gets the architect; PRJ-CUT waits.
            await enterprise.send("project-started", project("PRJ-GROW", "grow"))
            await enterprise.send("project-started", project("PRJ-CUT", "cut"))

            async def registered() -> bool:
                return len((await api.get("/projects")).json()) == 2

            await eventually(registered, timeout=60, what="allocation knowing both projects")
            await enterprise.send("strategy-changed", strategy(1, grow=1.0, cut=0.1), key="1")

            async def ranked() -> bool:
                projects = (await api.get("/projects")).json()
                return {p["project_id"] for p in projects if p.get("rank")} == {
                    "PRJ-GROW",
                    "PRJ-CUT",
                }

            await eventually(ranked, timeout=60, what="allocation knowing both ranks")
            await enterprise.send("resource-requested", request("REQ-GROW", "PRJ-GROW"))
            await enterprise.send("resource-requested", request("REQ-CUT", "PRJ-CUT"))

            async def decided() -> bool:
                requests = (await api.get("/requests")).json()
                return len(requests) == 2 and all(r.get("status") for r in requests)

            await eventually(decided, timeout=60, what="both requests decided")

        # Strategy 2 turns the tables: the inbound event carries its own trace context.
        trace_id = secrets.randbits(128)
        traceparent = f"00-{trace_id:032x}-{secrets.randbits(64):016x}-01"
        value, headers = structured_event("strategy-changed", strategy(2, grow=0.1, cut=1.0))
        await enterprise.send_raw(
            "strategy-changed",
            value,
            headers=[*headers, ("traceparent", traceparent.encode())],
            key="2",
        )

        async def alert_for_grow() -> list[dict[str, Any]]:
            bodies = [json.loads(body) for headers, body in receiver.received]
            return [
                body
                for (headers, _), body in zip(receiver.received, bodies, strict=True)
                if body["data"]["project_id"] == "PRJ-GROW"
                and headers.get("traceparent", "").split("-")[1:2] == [f"{trace_id:032x}"]
            ]

        (alert,) = await eventually(
            alert_for_grow, timeout=60, what="PRJ-GROW's shortfall alert in the strategy's trace"
        )
        assert any(r["code"] == "resource_shortfall" for r in alert["data"]["reasons"])

        in_trace = {
            str(span.resource.attributes.get("service.name"))
            for span in spans.get_finished_spans()
            if span.context.trace_id == trace_id
        }
        assert in_trace >= {
            "pmo-registry",
            "pmo-allocation",
            "pmo-monitoring",
            "pmo-notifications",
        }, in_trace

        # Each service shows every metric an operator watches.
        common = (
            "pmo_events_consumed_total",
            "pmo_events_produced_total",
            "pmo_event_processing_seconds",
            "pmo_consumer_lag",
            "pmo_dead_letters_total",
            "pmo_outbox_backlog",
            "pmo_outbox_oldest_age_seconds",
        )
        for service in (registry, monitoring, allocation, notifications):
            async with httpx.AsyncClient(base_url=service.base_url) as client:
                text = (await client.get("/metrics")).text
            missing = [name for name in common if f"# TYPE {name} " not in text]
            assert not missing, (service.runtime.name, missing)
        async with httpx.AsyncClient(base_url=notifications.base_url) as client:
            text = (await client.get("/metrics")).text
        assert 'pmo_alerts_delivered_total{channel="webhook",service="notifications"}' in text
        assert "# TYPE pmo_alerts_failed_total counter" in text
