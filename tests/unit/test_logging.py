"""Logs are JSON lines with the trace, span, event and project they are about, and no secret."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from shared.settings import Settings
from shared.telemetry import JsonLogFormatter, current_event_id, current_project_id

pytestmark = pytest.mark.fast


def test_a_log_line_carries_trace_span_event_and_project_ids() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    log = logging.getLogger("pmo.test.logging")
    log.addHandler(handler)
    log.propagate = False
    tracer = TracerProvider().get_tracer("test")
    try:
        with tracer.start_as_current_span("handle") as span:
            event = current_event_id.set("evt-42")
            project = current_project_id.set("PRJ-7")
            try:
                log.warning("project %s slipped", "PRJ-7", extra={"service": "monitoring"})
            finally:
                current_event_id.reset(event)
                current_project_id.reset(project)
    finally:
        log.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert line["message"] == "project PRJ-7 slipped"
    assert line["level"] == "WARNING"
    assert line["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert line["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (line["event_id"], line["project_id"], line["service"]) == (
        "evt-42",
        "PRJ-7",
        "monitoring",
    )


def test_settings_never_show_their_secrets() -> None:
    settings = Settings(
        admin_token="admin-secret-1",
        token_secret="token-secret-2-token-secret-2-token-secret-2",
        kafka_sasl_password="sasl-secret-3",
        alert_webhook_secret="hook-secret-4",
    )
    shown = f"{settings!r} {settings} {settings.model_dump()}"
    for secret in ("admin-secret-1", "token-secret-2", "sasl-secret-3", "hook-secret-4"):
        assert secret not in shown
