"""Fixtures of the notifications tests: a real SMTP server, and helpers to drive the service."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, Request, Response

from pmo.embedded import free_port
from tests.harness import Enterprise, RunningService, eventually, serve, stop_serving


@dataclass
class MailSink:
    """What a real SMTP server (aiosmtpd, in its own thread) received."""

    port: int = 0
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    """Recipient -> the reply refusing it at RCPT TO, e.g. "550 5.1.1 no such mailbox"."""
    refused: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        with self._lock:
            reply = self.refuse.get(address)
            if reply is not None:
                self.refused.append(address)
                return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._lock:
            self.messages.append(parsed)
            self.envelopes.append((envelope.mail_from or "", list(envelope.rcpt_tos)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [message for message in self.messages if address in str(message["To"])]


@pytest.fixture
def smtp_server() -> Iterator[MailSink]:
    sink = MailSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def smtp_settings(sink: MailSink, *, managers: bool = False) -> dict[str, Any]:
    """Settings pointing the service at the test's SMTP server (plain: it is on loopback).

    The project managers' own subscriptions are off unless `managers`: the other tests count
    the messages of the subscriptions they make (test_managers.py tests the managers' ones).
    """
    return {
        "smtp_host": "127.0.0.1",
        "smtp_port": sink.port,
        "smtp_security": "none",
        "smtp_from": "PMO <pmo@example.com>",
        "notify_project_managers": managers,
    }


QUICK: dict[str, Any] = {
    "notification_poll_interval_s": 0.1,
    "notification_clock_interval_s": 0.2,
    "notification_retry_base_s": 0.2,
    "notification_retry_max_s": 1.0,
    "notification_send_timeout_s": 5.0,
    "notification_max_attempts": 3,
    "registry_public_url": "https://pmo.example.com/registry",
    "dashboard_public_url": "https://pmo.example.com/dashboard",
}
"""Small backoff and quick clocks, so tests see retries and windows close in seconds."""


def charter(project_id: str, *, name: str | None = None, unit: str = "Digital") -> dict[str, Any]:
    return {
        "project_id": project_id,
        "name": name or f"Project {project_id}",
        "business_unit": unit,
        "manager": "ada.lovelace@example.com",
        "start_date": "2026-01-01",
        "planned_finish_date": "2026-12-31",
        "budget": 100000,
        "currency": "EUR",
        "lifecycle": "active",
    }


def at_risk(project_id: str, *, severity: str = "red", spi: float = 0.6) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "severity": severity,
        "reasons": [
            {
                "code": "schedule",
                "message": f"SPI {spi:.2f} is below 0.90",
                "numbers": {"spi": spi, "threshold": 0.9},
            }
        ],
        "metrics": {"spi": spi, "cpi": 0.95},
    }


def assessed(
    project_id: str,
    health: str = "red",
    *,
    spi: float = 0.6,
    at_risk_since: datetime | None = None,
) -> dict[str, Any]:
    """Monitoring's project-health-assessed: the health the digest and escalations show.

    A project not green is at risk since `at_risk_since` (now if not given); `assessed_at` is
    now, so successive calls are successive assessments.
    """
    now = datetime.now(UTC)
    reasons = (
        []
        if health == "green"
        else [
            {
                "code": "schedule",
                "severity": health,
                "message": f"SPI {spi:.2f} is below 0.90",
                "numbers": {"spi": spi, "threshold": 0.9},
            }
        ]
    )
    return {
        "project_id": project_id,
        "health": health,
        "reasons": reasons,
        "metrics": {"spi": spi, "spi_t": spi, "cpi": 0.95},
        "as_of": now.date().isoformat(),
        "assessed_at": now.isoformat(),
        "at_risk_since": None if health == "green" else (at_risk_since or now).isoformat(),
        "trigger": "status-changed",
    }


@dataclass
class NotificationsApi:
    """The notifications HTTP API as an administrator uses it."""

    client: httpx.AsyncClient

    async def subscribe(self, **fields: Any) -> dict[str, Any]:
        response = await self.client.post("/subscriptions", json=fields)
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/deliveries", params=params)
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    async def delivery(self, delivery_id: int) -> dict[str, Any]:
        response = await self.client.get(f"/deliveries/{delivery_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


ApiFor = Callable[[RunningService], NotificationsApi]


@pytest.fixture
async def api_for(admin_headers: dict[str, str]) -> AsyncIterator[ApiFor]:
    """`api_for(service)`: an administrator's client of that service's API."""
    clients: list[httpx.AsyncClient] = []

    def make(service: RunningService) -> NotificationsApi:
        client = httpx.AsyncClient(base_url=service.base_url, headers=admin_headers, timeout=30)
        clients.append(client)
        return NotificationsApi(client)

    yield make
    for client in clients:
        await client.aclose()


async def register(enterprise: Enterprise, *project_ids: str, unit: str = "Digital") -> None:
    """Publish project-registered as the registry would, for each project."""
    for project_id in project_ids:
        await enterprise.send("project-registered", charter(project_id, unit=unit))


TOOL_SECRET = "subscriber-secret-0123456789"


async def alerting_tool(
    service: RunningService,
    api: NotificationsApi,
    enterprise: Enterprise,
    webhook_url: str,
    *project_ids: str,
) -> dict[str, Any]:
    """Subscribe a tool's webhook to every project-at-risk (unthrottled), register the
    projects, and wait until notifications knows them all; returns the subscription."""
    tool = await api.subscribe(
        name="tool",
        channel="webhook",
        recipient=webhook_url,
        secret=TOOL_SECRET,
        event_types=["project-at-risk"],
        throttle_window_s=0,
    )
    await register(enterprise, *project_ids)
    await until_known(service, *project_ids)
    return tool


async def until_known(service: RunningService, *project_ids: str) -> None:
    """Wait until notifications has taken in every one of `project_ids`' registrations (each
    project's own partition, so they may arrive in any order)."""

    async def all_known() -> bool:
        async with service.runtime.engine.connect() as connection:
            known = await connection.execute(
                sa.text(
                    "SELECT count(*) FROM notifications.project WHERE project_id = ANY(:ids)"
                ).bindparams(ids=list(project_ids))
            )
            return bool(known.scalar_one() == len(project_ids))

    await eventually(all_known, timeout=60, what=f"notifications knowing {project_ids}")


@dataclass
class AnsweringReceiver:
    """A real HTTP server answering every POST with `status` (and `headers`), counting them."""

    url: str = ""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    echo_url: bool = False
    """Quote the request's whole URL in the answer, as some receivers' error pages do."""
    before_answer: Callable[[], Awaitable[None]] | None = None
    """Run after a request is read and before it is answered (a fault at the worst moment)."""
    received: list[bytes] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{rest:path}")
        async def hook(request: Request, rest: str) -> Response:
            self.received.append(await request.body())
            if self.before_answer is not None:
                await self.before_answer()
            said = f"no hook at {request.url}" if self.echo_url else "answered by the test"
            return Response(said.encode(), self.status, headers=self.headers)

        return app


@contextlib.asynccontextmanager
async def answering_receiver(
    status: int = 200,
    *,
    path: str = "hook/x",
    headers: dict[str, str] | None = None,
    echo_url: bool = False,
) -> AsyncIterator[AnsweringReceiver]:
    """`AnsweringReceiver` on a free port; its URL's path is `path` (any path answers)."""
    receiver = AnsweringReceiver(status=status, headers=headers or {}, echo_url=echo_url)
    port = free_port()
    receiver.url = f"http://127.0.0.1:{port}/{path}"
    server, task = await serve(receiver.app(), port)
    try:
        yield receiver
    finally:
        await stop_serving(server, task)
