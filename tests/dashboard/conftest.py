"""The dashboard under test: the four services and the dashboard on the real broker and database,
a seeded portfolio, and Debian's Chromium driven by Playwright (no browser download).

One system per module (starting four services and seeding takes a while); each test gets its own
browser context, so sign-ins never leak between tests. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, BrowserContext, Page, Request, async_playwright

from pmo.embedded import free_port
from pmo.topics import create_topics
from services.dashboard.entrypoints.app import create_dashboard_app
from shared.settings import Settings
from tests.conftest import ADMIN_TOKEN, TEST_PARTITIONS, TOKEN_SECRET, ServiceStarter
from tests.harness import Enterprise, eventually, serve, stop_serving, with_database

CHROMIUM = os.environ.get("PMO_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "dashboard"

TODAY = date.today()
START, FINISH = TODAY - timedelta(days=150), TODAY + timedelta(days=150)
EARLIER = TODAY - timedelta(days=60)


def _project(pid: str, name: str, unit: str, budget: float, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": pid,
        "name": name,
        "business_unit": unit,
        "manager": f"{pid.lower()}@example.com",
        "start_date": START.isoformat(),
        "planned_finish_date": FINISH.isoformat(),
        "budget": budget,
        "currency": "EUR",
        "objectives": [{"objective_id": "grow-digital", "contribution": 0.8}],
        **extra,
    }


def _status(pid: str, as_of: date, percent: float, cost: float, **extra: Any) -> dict[str, Any]:
    return {
        "project_id": pid,
        "as_of": as_of.isoformat(),
        "percent_complete": percent,
        "actual_cost": cost,
        **extra,
    }


# Half-way through the plan (PV = half the budget): Atlas is far behind (SPI(t) 0.6, red) though
# its manager reports green; Boreas a little behind (0.92, amber); Cirrus on plan (green);
# Delta has sent no report yet; Echo is on plan but loses the architect to Atlas (red: shortfall).
# Atlas and Echo form the program DSH-MERGER.
PROJECTS = [
    _project(
        "DSH-ATLAS",
        "Atlas ERP rollout",
        "Digital",
        400_000,
        key_project=True,
        program_id="DSH-MERGER",
    ),
    _project(
        "DSH-BOREAS",
        "Boreas billing",
        "Finance",
        200_000,
        objectives=[{"objective_id": "cut-cost", "contribution": 0.9}],
    ),
    _project("DSH-CIRRUS", "Cirrus data platform", "Digital", 300_000),
    _project(
        "DSH-DELTA",
        "Delta warehouse",
        "Operations",
        100_000,
        objectives=[{"objective_id": "cut-cost", "contribution": 0.3}],
    ),
    _project("DSH-ECHO", "Echo mobile app", "Digital", 150_000, program_id="DSH-MERGER"),
]
REPORTS = [
    _status("DSH-ATLAS", EARLIER, 20, 70_000),
    _status("DSH-ATLAS", TODAY, 30, 150_000, reported_health="green"),
    _status("DSH-BOREAS", TODAY, 46, 92_000),
    _status("DSH-CIRRUS", EARLIER, 31, 90_000),
    _status("DSH-CIRRUS", TODAY, 52, 150_000),
    _status("DSH-ECHO", TODAY, 50, 75_000),
]
STRATEGY = {
    "strategy_version": 1,
    "effective_date": START.isoformat(),
    "objectives": [
        {"objective_id": "grow-digital", "name": "Grow digital revenue", "weight": 0.6},
        {"objective_id": "cut-cost", "name": "Cut operating cost", "weight": 0.4},
    ],
}
WEEK_START, WEEK_END = TODAY - timedelta(days=TODAY.weekday()), TODAY + timedelta(days=60)
# Atlas and Echo both want the one architect for the same weeks: a conflict.
REQUESTS = [
    {
        "request_id": "REQ-ATLAS-ARCH",
        "project_id": "DSH-ATLAS",
        "skill": "architect",
        "fte": 1.0,
        "start": WEEK_START.isoformat(),
        "end": WEEK_END.isoformat(),
    },
    {
        "request_id": "REQ-ECHO-ARCH",
        "project_id": "DSH-ECHO",
        "skill": "architect",
        "fte": 1.0,
        "start": WEEK_START.isoformat(),
        "end": WEEK_END.isoformat(),
    },
]
PEOPLE = [
    {"resource_id": "ana", "name": "Ana Architect", "skills": ["architect"], "capacity_fte": 1},
    {"resource_id": "dev", "name": "Dev Developer", "skills": ["developer"], "capacity_fte": 1},
]


@dataclass
class DashboardSystem:
    """The running system: the dashboard's URL, the services' URLs, the enterprise's producer."""

    url: str
    settings: Settings
    services: dict[str, str]
    enterprise: Enterprise
    browser: Browser
    admin_headers: dict[str, str] = field(
        default_factory=lambda: {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )


async def _seed(system: DashboardSystem) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        # A webhook nobody listens at: its at-risk notices end dead, for the operations page.
        response = await http.post(
            f"{system.services['notifications']}/subscriptions",
            json={
                "name": "Unreachable PMO tool",
                "channel": "webhook",
                "recipient": f"http://127.0.0.1:{free_port()}/hook",
                "secret": "webhook-secret-of-the-test",
                "event_types": ["project-at-risk"],
                "project_id": "DSH-ATLAS",
            },
            headers=system.admin_headers,
        )
        assert response.status_code == 201, response.text
        for person in PEOPLE:
            response = await http.post(
                f"{system.services['allocation']}/resources",
                json=person,
                headers=system.admin_headers,
            )
            assert response.status_code == 201, response.text
    await system.enterprise.send("strategy-changed", STRATEGY, key="1")
    for project in PROJECTS:
        await system.enterprise.send("project-started", project)
    for report in REPORTS:
        await system.enterprise.send("status-changed", report)
    for request in REQUESTS:
        await system.enterprise.send("resource-requested", request)
    # Something no service can read: dead-lettered with the reason, for the operations page.
    await system.enterprise.send_raw("status-changed", b"{not json", key="DSH-ATLAS")

    async with httpx.AsyncClient(timeout=30, headers=system.admin_headers) as http:

        async def assessed() -> bool:
            for pid, level in (("DSH-ATLAS", "red"), ("DSH-BOREAS", "amber"), ("DSH-ECHO", "red")):
                answer = await http.get(f"{system.services['monitoring']}/projects/{pid}/health")
                if answer.status_code != 200 or answer.json()["health"] != level:
                    return False
            cirrus = await http.get(f"{system.services['monitoring']}/projects/DSH-CIRRUS/health")
            return cirrus.status_code == 200 and cirrus.json()["as_of"] == TODAY.isoformat()

        async def ranked() -> bool:
            answer = await http.get(f"{system.services['registry']}/portfolio")
            return answer.status_code == 200 and len(answer.json()["projects"]) == len(PROJECTS)

        async def dead_delivery() -> bool:
            answer = await http.get(
                f"{system.services['notifications']}/deliveries", params={"state": "dead"}
            )
            return answer.status_code == 200 and len(answer.json()) > 0

        async def decided() -> bool:
            answer = await http.get(f"{system.services['allocation']}/conflicts")
            return answer.status_code == 200 and len(answer.json()) > 0

        await eventually(assessed, timeout=60, what="monitoring's assessment of the portfolio")
        await eventually(ranked, timeout=60, what="the ranked portfolio")
        await eventually(decided, timeout=60, what="the architect conflict")
        await eventually(dead_delivery, timeout=60, what="a dead webhook delivery")


@pytest.fixture(scope="module")
async def dashboard(
    kafka_bootstrap: str, postgres_url: str, template_database: str
) -> AsyncIterator[DashboardSystem]:
    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240 - once per module
        pytest.fail(
            f"No Chromium at {CHROMIUM}: `make test` installs Debian's chromium package "
            "(apt-get install chromium)."
        )
    name = f"pmo_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    settings = Settings(
        kafka_bootstrap_servers=kafka_bootstrap,
        database_url=with_database(postgres_url, name),
        topic_prefix=f"t{uuid.uuid4().hex[:10]}.",
        kafka_enable_idempotence=False,
        admin_token=ADMIN_TOKEN,
        token_secret=TOKEN_SECRET,
        consumer_batch_timeout_ms=20,
        consumer_session_timeout_ms=2_000,
        outbox_poll_interval_s=0.1,
        database_pool_size=3,
        log_json=False,
    )
    await create_topics(settings, partitions=TEST_PARTITIONS)
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    starter = ServiceStarter(settings, InMemorySpanExporter())
    producer = AIOKafkaProducer(**settings.kafka_client_options(), enable_idempotence=False)
    await producer.start()
    playwright = await async_playwright().start()
    browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
    dashboard_server = None
    try:
        registry, allocation, monitoring, notifications = await asyncio.gather(
            starter("registry"),
            starter("allocation"),
            starter("monitoring"),
            # One attempt per delivery: a webhook that does not answer ends dead at once.
            starter(
                "notifications",
                notification_max_attempts=1,
                notification_poll_interval_s=0.1,
                notification_throttle_window=timedelta(0),
            ),
        )
        dashboard_settings = Settings.model_validate(
            {
                **settings.model_dump(),
                "dashboard_registry_url": registry.base_url,
                "dashboard_allocation_url": allocation.base_url,
                "dashboard_monitoring_url": monitoring.base_url,
                "dashboard_notifications_url": notifications.base_url,
            }
        )
        port = free_port()
        app = create_dashboard_app(dashboard_settings)
        dashboard_server = await serve(app, port)
        system = DashboardSystem(
            url=f"http://127.0.0.1:{port}",
            settings=dashboard_settings,
            services={
                "registry": registry.base_url,
                "allocation": allocation.base_url,
                "monitoring": monitoring.base_url,
                "notifications": notifications.base_url,
            },
            enterprise=Enterprise(producer, settings.topic_prefix),
            browser=browser,
        )
        await _seed(system)
        yield system
    finally:
        if dashboard_server is not None:
            await stop_serving(*dashboard_server)
        await starter.stop_all()
        await browser.close()
        await playwright.stop()
        await producer.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test, so a failed test leaves a screenshot."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@dataclass
class BrowserSession:
    """One person's browser: a fresh context, and every request that tried to leave the machine."""

    context: BrowserContext
    page: Page
    base_url: str
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """Script errors and console errors of the pages: a page must have none."""

    async def sign_in(self, token: str) -> None:
        await self.page.goto(f"{self.base_url}/signin")
        await self.page.fill("#token", token)
        await self.page.click("#signin")
        await self.page.wait_for_load_state("networkidle")

    async def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        await self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
async def browser_session(
    dashboard: DashboardSystem, request: pytest.FixtureRequest
) -> AsyncIterator[BrowserSession]:
    """A browser with no network beyond this machine: any request elsewhere is refused and
    recorded, and the test fails if a page asked for one (everything must work offline)."""
    context = await dashboard.browser.new_context(viewport={"width": 1280, "height": 900})
    session = BrowserSession(context, await context.new_page(), dashboard.url)

    async def local_only(route: Any, request: Request) -> None:
        host = request.url.split("/")[2] if "://" in request.url else ""
        if request.url.startswith(("data:", "blob:")) or host.split(":")[0] in (
            "127.0.0.1",
            "localhost",
        ):
            await route.continue_()
        else:
            session.outside.append(request.url)
            await route.abort()

    await context.route("**/*", local_only)
    session.page.on("pageerror", lambda error: session.errors.append(str(error)))

    def console(message: Any) -> None:
        # A refused page (401, 403) is logged as a failed resource: the tests check those
        # statuses themselves; any other console error is a script's.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            session.errors.append(message.text)

    session.page.on("console", console)
    try:
        yield session
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            await session.screenshot(f"failed-{request.node.name}")
    finally:
        await context.close()
    assert session.outside == [], f"pages asked the internet for {session.outside}"
    assert session.errors == [], f"the pages' scripts failed: {session.errors}"
