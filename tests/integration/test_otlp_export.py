"""With OTEL_EXPORTER_OTLP_ENDPOINT set, a service's spans leave by OTLP/HTTP to that collector."""

from __future__ import annotations

import pytest
from fastapi import FastAPI, Request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from pmo.embedded import free_port
from shared.telemetry import tracer_provider_for
from tests.harness import serve, stop_serving


async def test_spans_are_exported_to_the_configured_otlp_endpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[ExportTraceServiceRequest] = []
    collector = FastAPI()

    @collector.post("/v1/traces")
    async def traces(request: Request) -> dict[str, str]:
        export = ExportTraceServiceRequest()
        export.ParseFromString(await request.body())
        received.append(export)
        return {}

    port = free_port()
    server, task = await serve(collector, port)
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
        provider = tracer_provider_for("monitoring")
        with provider.get_tracer("test").start_as_current_span("handle pmo.status-changed"):
            pass
        # The batch processor sends from its own thread; flush waits for it.
        assert provider.force_flush(timeout_millis=10_000)
        provider.shutdown()
    finally:
        await stop_serving(server, task)

    spans = [
        (resource.resource, span.name)
        for export in received
        for resource in export.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert [name for _, name in spans] == ["handle pmo.status-changed"]
    (resource, _), *_ = spans
    attributes = {a.key: a.value.string_value for a in resource.attributes}
    assert attributes["service.name"] == "pmo-monitoring"
