"""`pmo demo`: a week in a minute: projects start, two slip, people clash, strategy moves."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import date, timedelta
from typing import Any

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request

from services.notifications.domain.alerts import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature_is_valid,
)
from shared.events import EventData, to_structured
from shared.events.contracts import (
    Directive,
    ObjectiveContribution,
    ProjectStarted,
    ResourceRequested,
    StatusChanged,
    StrategicObjective,
    StrategyChanged,
)
from shared.settings import Settings
from shared.topics import topic_name

SOURCE = "/demo/enterprise-erp"


def scenario(today: date, run: str) -> list[EventData]:
    """Four projects half-way through their plan; Atlas is late, Cirrus over budget.

    Project ids end with `run`, so each demo run is a fresh portfolio that raises its own alerts.
    """
    start, finish = today - timedelta(days=150), today + timedelta(days=150)

    def project(pid: str, name: str, unit: str, budget: float, key: bool = False) -> ProjectStarted:
        return ProjectStarted(
            project_id=f"{pid}-{run}",
            name=name,
            business_unit=unit,
            manager=f"{pid.lower()}.pm@example.com",
            sponsor="CFO office",
            start_date=start,
            planned_finish_date=finish,
            budget=budget,
            currency="EUR",
            objectives=[ObjectiveContribution(objective_id="grow-digital", contribution=0.6)],
            key_project=key,
        )

    def status(pid: str, percent: float, cost: float) -> StatusChanged:
        return StatusChanged(
            project_id=f"{pid}-{run}", as_of=today, percent_complete=percent, actual_cost=cost
        )

    return [
        project("PRJ-ATLAS", "Atlas ERP migration", "Finance", 1_200_000, key=True),
        project("PRJ-BEACON", "Beacon mobile app", "Digital", 400_000),
        project("PRJ-CIRRUS", "Cirrus data platform", "Technology", 800_000),
        project("PRJ-DELTA", "Delta supplier portal", "Operations", 300_000),
        # Half the time gone: Atlas did 30% (SPI 0.6); Cirrus spent 533k to earn 400k (CPI 0.75).
        status("PRJ-ATLAS", 30, 360_000),
        status("PRJ-BEACON", 52, 200_000),
        status("PRJ-CIRRUS", 50, 533_333),
        status("PRJ-DELTA", 49, 150_000),
        # Two projects want the one solution architect for the same weeks.
        ResourceRequested(
            request_id=f"REQ-ATLAS-ARCH-{run}",
            project_id=f"PRJ-ATLAS-{run}",
            skill="solution-architect",
            fte=1.0,
            start=today,
            end=today + timedelta(weeks=6),
            named_resource="res-maria",
        ),
        ResourceRequested(
            request_id=f"REQ-BEACON-ARCH-{run}",
            project_id=f"PRJ-BEACON-{run}",
            skill="solution-architect",
            fte=0.8,
            start=today + timedelta(weeks=1),
            end=today + timedelta(weeks=8),
            named_resource="res-maria",
        ),
        StrategyChanged(
            strategy_version=int(time.time()),
            effective_date=today,
            objectives=[
                StrategicObjective(
                    objective_id="grow-digital", name="Grow digital revenue", weight=0.7
                ),
                StrategicObjective(objective_id="cut-cost", name="Cut operating cost", weight=0.3),
            ],
            directives=[
                Directive(
                    action="pause",
                    project_id=f"PRJ-DELTA-{run}",
                    reason="Supplier consolidation comes first",
                ),
            ],
        ),
    ]


async def run_demo(settings: Settings, *, port: int, timeout: float) -> int:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    secret = (
        settings.alert_webhook_secret.get_secret_value() if settings.alert_webhook_secret else None
    )
    receiver = FastAPI()

    @receiver.post("/alerts")
    async def alert(request: Request) -> dict[str, str]:
        body = await request.body()
        # What a real receiver does: constant-time check of the HMAC, and a recent timestamp.
        verified = secret is not None and signature_is_valid(
            secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        await received.put({"verified": verified, **json.loads(body)})
        return {"status": "received"}

    server = uvicorn.Server(
        uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    producer = AIOKafkaProducer(
        **settings.kafka_client_options(), enable_idempotence=settings.kafka_enable_idempotence
    )
    try:
        await producer.start()
        run = secrets.token_hex(2).upper()
        events = scenario(date.today(), run)
        for event in events:
            value, headers = to_structured(event, source=SOURCE)
            await producer.send_and_wait(
                topic_name(event.event_name, settings.topic_prefix),
                value=value,
                key=event.key().encode(),
                headers=headers,
            )
            print(f"published {event.event_name:<20} {event.key()}", flush=True)
        print(f"\nwaiting for alerts on http://127.0.0.1:{port}/alerts ...", flush=True)
        expected = {f"PRJ-ATLAS-{run}", f"PRJ-CIRRUS-{run}"}
        seen: set[str] = set()
        try:
            async with asyncio.timeout(timeout):
                while not expected <= seen:
                    alert_body = await received.get()
                    data = alert_body["data"]
                    seen.add(data["project_id"])
                    mark = "signature verified" if alert_body["verified"] else "UNSIGNED"
                    print(
                        f"\nALERT {alert_body['event_type']} {data['project_id']} "
                        f"severity={data['severity']} ({mark})"
                    )
                    for reason in data["reasons"]:
                        print(f"  - {reason['code']}: {reason['message']}")
        except TimeoutError:
            print(
                f"\nno alert for {sorted(expected - seen)} within {timeout:.0f}s: "
                "is `pmo up` running?"
            )
            return 1
        print(
            "\ndemo complete: the slipping projects were flagged the moment their reports arrived."
        )
        return 0
    finally:
        await producer.stop()
        server.should_exit = True
        await serving
