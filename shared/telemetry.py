"""Traces and logs: one trace follows an event across services; logs are JSON with its ids."""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.settings import otel_exporter_configured

# What the log lines of the event being handled carry, set by the consumer for each event.
current_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_event_id", default=None
)
current_project_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_project_id", default=None
)


def tracer_provider_for(
    service: str, extra_processors: Iterable[SpanProcessor] = ()
) -> TracerProvider:
    """A tracer provider naming the service; exports by OTLP when `OTEL_EXPORTER_OTLP_*` is set.

    One provider per service (not the global one) so several services can share a process in
    tests and still report under their own names.
    """
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: f"pmo-{service}"}))
    if otel_exporter_configured():
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    for processor in extra_processors:
        provider.add_span_processor(processor)
    return provider


def _headers_carrier(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in headers:
        lowered = name.lower()
        if lowered in ("traceparent", "tracestate", "baggage"):
            carrier[lowered] = value.decode("latin-1")
    return carrier


def event_trace_context(
    headers: Sequence[tuple[str, bytes]],
    extensions: Mapping[str, str],
    event_id: str,
    source: str,
) -> Context:
    """The trace an inbound event belongs to.

    In order: W3C context in the Kafka headers (what our relay and OpenTelemetry-aware producers
    send), the CloudEvents distributed-tracing extension, and last a trace id derived from the
    event's identity, so that every service handling an event from an untraced enterprise system
    still reports it under one and the same trace id.
    """
    carrier = _headers_carrier(headers)
    if "traceparent" not in carrier and "traceparent" in extensions:
        carrier = {k: v for k, v in extensions.items() if k in ("traceparent", "tracestate")}
    if "traceparent" in carrier:
        context = extract(carrier)
        if trace.get_current_span(context).get_span_context().is_valid:
            return context
    digest = hashlib.sha256(f"{source}\n{event_id}".encode()).digest()
    derived = SpanContext(
        trace_id=int.from_bytes(digest[:16], "big") or 1,
        span_id=int.from_bytes(digest[16:24], "big") or 1,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(derived))


def current_trace_headers(context: Context | None = None) -> dict[str, str]:
    """The W3C context (`traceparent`, `tracestate`) of `context`, by default the current one,
    to store beside a message."""
    carrier: dict[str, str] = {}
    inject(carrier, context=context)
    return carrier


def context_from_traceparent(traceparent: str | None, tracestate: str | None) -> Context | None:
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return extract(carrier)


def trace_database(engine: AsyncEngine, tracer: Tracer) -> None:
    """Spans for the SQL run inside a span (a handler's, the relay's publish, a delivery).

    Statements outside any span, such as the relay's and the workers' polling, are not traced:
    a trace per poll would bury the traces that matter. Per engine and per tracer, so services
    sharing a process keep their own spans.
    """
    sync_engine = engine.sync_engine
    database = sync_engine.url.database or ""

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _start(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if context is None or not trace.get_current_span().get_span_context().is_valid:
            return
        operation = statement.lstrip().split(None, 1)[0].upper() if statement.strip() else "SQL"
        context._pmo_span = tracer.start_span(
            operation,
            kind=SpanKind.CLIENT,
            attributes={
                "db.system": "postgresql",
                "db.name": database,
                "db.statement": statement[:2000],
            },
        )

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _end(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        span = getattr(context, "_pmo_span", None)
        if span is not None:
            span.end()

    @event.listens_for(sync_engine, "handle_error")
    def _failed(exception_context: Any) -> None:
        span = getattr(exception_context.execution_context, "_pmo_span", None)
        if span is not None:
            span.record_exception(exception_context.original_exception)
            span.set_status(
                Status(StatusCode.ERROR, type(exception_context.original_exception).__name__)
            )
            span.end()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line, with the trace, span, event and project the line is about."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        if (event_id := current_event_id.get()) is not None:
            entry["event_id"] = event_id
        if (project_id := current_project_id.get()) is not None:
            entry["project_id"] = project_id
        service = getattr(record, "service", None)
        if service:
            entry["service"] = service
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        elif record.exc_text:  # formatted (and scrubbed of secrets) by a filter already
            entry["error"] = record.exc_text
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonLogFormatter()
        if as_json
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiokafka logs every rebalance and retry at INFO: useful to operators at WARNING only.
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, root.level))
