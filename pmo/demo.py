"""`pmo demo`: a week in a minute: projects start, two slip, people clash, strategy moves."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
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
from shared.runtime import IDEMPOTENCE_REFUSED, idempotence_refusal
from shared.security import issue_token
from shared.settings import DEFAULT_HTTP_PORTS, ConfigurationError, ServiceName, Settings
from shared.topics import topic_name

SOURCE = "/demo/enterprise-erp"
SUBSCRIPTION_PREFIX = "pmo demo "
"""The demo's own webhook subscriptions are named so; one left by a killed run is removed."""
ARCHITECT_SKILL = "solution-architect"


def architect_id(run: str) -> str:
    """The demo run's solution architect: each run brings its own, so a re-run has a free one."""
    return f"res-architect-{run.lower()}"


def scenario(today: date, run: str, strategy_version: int) -> list[EventData]:
    """Four projects half-way through their plan; Atlas is late, Cirrus over budget.

    Project ids end with `run`, so each demo run is a fresh portfolio that raises its own alerts;
    `strategy_version` follows the last one the registry received, so it is never out of date.
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
        # Two projects want the one solution architect for the same weeks: Atlas, the key
        # project, comes first; Beacon gets what is left.
        ResourceRequested(
            request_id=f"REQ-ATLAS-ARCH-{run}",
            project_id=f"PRJ-ATLAS-{run}",
            skill=ARCHITECT_SKILL,
            fte=1.0,
            start=today,
            end=today + timedelta(weeks=6),
            priority="high",
            named_resource=architect_id(run),
        ),
        ResourceRequested(
            request_id=f"REQ-BEACON-ARCH-{run}",
            project_id=f"PRJ-BEACON-{run}",
            skill=ARCHITECT_SKILL,
            fte=0.8,
            start=today + timedelta(weeks=1),
            end=today + timedelta(weeks=8),
            priority="medium",
            named_resource=architect_id(run),
        ),
        StrategyChanged(
            strategy_version=strategy_version,
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


@dataclass(frozen=True)
class _System:
    """The running system's APIs as the demo reaches them."""

    urls: dict[ServiceName, str]
    headers: dict[str, str]


def _urls(settings: Settings, port_offset: int) -> dict[ServiceName, str]:
    host = settings.http_host
    return {
        name: f"http://{host}:{port + port_offset}" for name, port in DEFAULT_HTTP_PORTS.items()
    }


def _system(settings: Settings, urls: dict[ServiceName, str]) -> _System:
    if settings.admin_token is not None:
        token = settings.admin_token.get_secret_value()
    elif settings.token_secret is not None:
        token = issue_token(settings.token_secret.get_secret_value(), "pmo-demo", "pmo_admin")
    else:
        raise ConfigurationError(
            "the demo needs the administrators' token: set PMO_ADMIN_TOKEN (or PMO_TOKEN_SECRET) "
            "as for `pmo up`, or run it where `pmo up` runs"
        )
    return _System(urls, {"Authorization": f"Bearer {token}"})


async def _check_running(api: httpx.AsyncClient, urls: dict[ServiceName, str]) -> None:
    for name, url in urls.items():
        try:
            answer = await api.get(f"{url}/readyz")
        except httpx.TransportError:
            raise ConfigurationError(
                f"no PMO {name} answers at {url}: start the system with `pmo up` "
                "(and give `pmo demo` the same --port-offset)"
            ) from None
        if answer.status_code != 200:
            raise ConfigurationError(f"the PMO {name} at {url} is not ready yet: try again")


def _checked(answer: httpx.Response, doing: str) -> httpx.Response:
    if answer.status_code >= 400:
        raise ConfigurationError(f"{doing}: HTTP {answer.status_code} {answer.text[:200]}")
    return answer


async def _next_strategy_version(api: httpx.AsyncClient, system: _System) -> int:
    """One above every strategy version the registry has received, applied or not."""
    registry = system.urls["registry"]
    received = _checked(
        await api.get(f"{registry}/strategies", params={"limit": 500}, headers=system.headers),
        "reading the strategies",
    ).json()
    versions = [int(entry["strategy_version"]) for entry in received]
    current = await api.get(f"{registry}/objectives", headers=system.headers)
    if current.status_code == 200:
        versions.append(int(current.json()["strategy_version"]))
    return max(versions, default=0) + 1


async def _add_architect(api: httpx.AsyncClient, system: _System, run: str) -> None:
    _checked(
        await api.post(
            f"{system.urls['allocation']}/resources",
            json={
                "resource_id": architect_id(run),
                "name": f"Maria Rossi (demo {run})",
                "skills": [ARCHITECT_SKILL],
                "capacity_fte": 1.0,
            },
            headers=system.headers,
        ),
        "adding the demo's architect to the resource pool",
    )


@asynccontextmanager
async def _subscribed(
    api: httpx.AsyncClient, system: _System, run: str, url: str, secret: str
) -> AsyncIterator[None]:
    """Webhook subscriptions of the demo's receiver to its own projects, while the demo runs.

    Each is limited to one project of this run, so even one left behind by a killed demo never
    hears of anything else; the next demo removes it.
    """
    base = f"{system.urls['notifications']}/subscriptions"
    for old in _checked(
        await api.get(base, headers=system.headers), "listing the subscriptions"
    ).json():
        if str(old["name"]).startswith(SUBSCRIPTION_PREFIX):
            await api.delete(f"{base}/{old['id']}", headers=system.headers)
    wanted = {
        f"PRJ-ATLAS-{run}": ["project-at-risk", "resource-conflict-resolved"],
        f"PRJ-CIRRUS-{run}": ["project-at-risk"],
    }
    made: list[str] = []
    try:
        for project_id, event_types in wanted.items():
            answer = await api.post(
                base,
                json={
                    "name": f"{SUBSCRIPTION_PREFIX}{run}: {project_id}",
                    "channel": "webhook",
                    "recipient": url,
                    "secret": secret,
                    "event_types": event_types,
                    "project_id": project_id,
                    "throttle_window_s": 0,  # every notice at once: the demo is a burst
                },
                headers=system.headers,
            )
            made.append(_checked(answer, "subscribing the demo's receiver").json()["id"])
        yield
    finally:
        for subscription_id in made:
            await api.delete(f"{base}/{subscription_id}", headers=system.headers)


async def _producer(settings: Settings) -> AIOKafkaProducer:
    options: dict[str, Any] = {
        **settings.kafka_client_options(),
        "enable_idempotence": settings.kafka_enable_idempotence,
    }
    if options["enable_idempotence"] and (reason := await idempotence_refusal(options)):
        print(f"warning: {IDEMPOTENCE_REFUSED.format(reason=reason)}", flush=True)
        options["enable_idempotence"] = False
    producer = AIOKafkaProducer(**options)
    await producer.start()
    return producer


def _show(notice: dict[str, Any]) -> None:
    data, mark = notice["data"], "signature verified" if notice["verified"] else "UNSIGNED"
    if notice["event_type"] == "pmo.resource-conflict-resolved":
        print(f"\nCONFLICT {notice['title']} ({mark})")
        for side, decisions in (("won ", data["winners"]), ("lost", data["losers"])):
            for decision in decisions:
                print(
                    f"  {side} {decision['project_id']}: {decision['fte_granted']:g} of "
                    f"{decision['fte_requested']:g} FTE: {decision['why']}"
                )
        return
    print(
        f"\nALERT {notice['event_type']} {data['project_id']} severity={data['severity']} ({mark})"
    )
    for reason in data["reasons"]:
        print(f"  - {reason['code']}: {reason['message']}")


async def run_demo(settings: Settings, *, port_offset: int, port: int, timeout: float) -> int:
    """Publish the scenario to the running system and print the alerts and the conflict.

    Raises ConfigurationError (one line) when no system answers or the demo cannot act in it.
    """
    urls = _urls(settings, port_offset)
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    secret = secrets.token_urlsafe(24)
    receiver = FastAPI()

    @receiver.post("/alerts")
    async def alert(request: Request) -> dict[str, str]:
        body = await request.body()
        # What a real receiver does: constant-time check of the HMAC, and a recent timestamp.
        verified = signature_is_valid(
            secret,
            request.headers.get(TIMESTAMP_HEADER, ""),
            body,
            request.headers.get(SIGNATURE_HEADER, ""),
            now=time.time(),
        )
        await received.put({"verified": verified, **json.loads(body)})
        return {"status": "received"}

    async with httpx.AsyncClient(timeout=10.0) as api:
        await _check_running(api, urls)
        system = _system(settings, urls)
        run = secrets.token_hex(2).upper()
        version = await _next_strategy_version(api, system)
        await _add_architect(api, system, run)
        server = uvicorn.Server(
            uvicorn.Config(receiver, host="127.0.0.1", port=port, log_level="warning")
        )
        serving = asyncio.create_task(server.serve())
        url = f"http://127.0.0.1:{port}/alerts"
        try:
            async with _subscribed(api, system, run, url, secret):
                producer = await _producer(settings)
                try:
                    for event in scenario(date.today(), run, version):
                        value, headers = to_structured(event, source=SOURCE)
                        await producer.send_and_wait(
                            topic_name(event.event_name, settings.topic_prefix),
                            value=value,
                            key=event.key().encode(),
                            headers=headers,
                        )
                        print(f"published {event.event_name:<20} {event.key()}", flush=True)
                finally:
                    await producer.stop()
                print(f"\nwaiting for alerts on {url} ...", flush=True)
                return await _wait_for_notices(received, run, timeout)
        finally:
            server.should_exit = True
            await serving


async def _wait_for_notices(
    received: asyncio.Queue[dict[str, Any]], run: str, timeout: float
) -> int:
    """Print notices until both slipping projects are flagged and Atlas has won the architect."""
    atlas, beacon = f"PRJ-ATLAS-{run}", f"PRJ-BEACON-{run}"
    expected = {atlas, f"PRJ-CIRRUS-{run}"}
    seen: set[str] = set()
    conflict_shown = False
    try:
        async with asyncio.timeout(timeout):
            while not (expected <= seen and conflict_shown):
                notice = await received.get()
                _show(notice)
                data = notice["data"]
                if notice["event_type"] == "pmo.resource-conflict-resolved":
                    winners = {decision["project_id"] for decision in data["winners"]}
                    losers = {decision["project_id"] for decision in data["losers"]}
                    conflict_shown = conflict_shown or (atlas in winners and beacon in losers)
                else:
                    seen.add(data["project_id"])
    except TimeoutError:
        missing = sorted(expected - seen) + ([] if conflict_shown else ["the architect conflict"])
        print(f"\nnothing about {', '.join(missing)} within {timeout:.0f}s: see `pmo up`'s logs")
        return 1
    print(
        "\ndemo complete: the slipping projects were flagged the moment their reports arrived, "
        "and the key project got the architect."
    )
    return 0
