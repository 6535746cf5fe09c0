"""Delivers queued alerts to the alert webhook, signed, retried with backoff until delivered."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import httpx
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlmodel import col, select

from services.notifications.adapters.tables import Alert
from services.notifications.domain.alerts import (
    MAX_ATTEMPTS,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    retry_delay,
    signature,
)
from shared.telemetry import context_from_traceparent

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)
POLL_INTERVAL_S = 0.25


async def deliver_alerts(runtime: ServiceRuntime) -> None:
    """The delivery worker: runs beside the consumer for as long as the service does."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        while True:
            try:
                delivered = await deliver_due(runtime, client)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert delivery round failed", extra={"service": runtime.name})
                delivered = 0
            if not delivered:
                await asyncio.sleep(POLL_INTERVAL_S)


async def deliver_due(runtime: ServiceRuntime, client: httpx.AsyncClient, limit: int = 20) -> int:
    """Attempt the alerts that are due; `SKIP LOCKED` lets replicas share the work."""
    settings = runtime.settings
    async with runtime.sessions() as session, session.begin():
        due = (
            await session.exec(
                select(Alert)
                .where(Alert.state == "pending", col(Alert.next_attempt_at) <= datetime.now(UTC))
                .order_by(col(Alert.id))
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        for alert in due:
            if not settings.alert_webhook_url:
                alert.state = "no_channel"
                alert.last_error = "PMO_ALERT_WEBHOOK_URL is not set"
                continue
            await _attempt(runtime, client, alert, settings.alert_webhook_url)
    return len(due)


async def _attempt(
    runtime: ServiceRuntime, client: httpx.AsyncClient, alert: Alert, url: str
) -> None:
    secret = runtime.settings.alert_webhook_secret
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp}
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret.get_secret_value(), timestamp, alert.payload)
    parent = context_from_traceparent(alert.traceparent, alert.tracestate)
    with runtime.tracer.start_as_current_span(
        "deliver alert webhook",
        context=parent,
        kind=SpanKind.CLIENT,
        attributes={"pmo.event_id": alert.event_id, "pmo.project_id": alert.project_id or ""},
    ) as span:
        inject(headers)
        alert.attempts += 1
        try:
            response = await client.post(url, content=alert.payload, headers=headers)
            response.raise_for_status()
        except httpx.HTTPError as error:
            span.set_status(Status(StatusCode.ERROR, str(error)))
            runtime.metrics.alerts_failed.labels(runtime.name, "webhook").inc()
            alert.last_error = f"{type(error).__name__}: {error}"[:2000]
            if alert.attempts >= MAX_ATTEMPTS:
                alert.state = "dead"
                log.error(
                    "alert %s dead after %d attempts: %s",
                    alert.event_id,
                    alert.attempts,
                    alert.last_error,
                    extra={"service": runtime.name},
                )
            else:
                alert.next_attempt_at = datetime.now(UTC) + retry_delay(alert.attempts)
            return
        alert.state = "delivered"
        alert.delivered_at = datetime.now(UTC)
        runtime.metrics.alerts_delivered.labels(runtime.name, "webhook").inc()
