"""What notifications does with each event: queue the alert in the same transaction as the inbox."""

from __future__ import annotations

import json

from services.notifications.adapters.tables import Alert
from shared.events.contracts import ProjectAtRisk
from shared.messaging.consumer import EventMeta
from shared.messaging.unit_of_work import UnitOfWork
from shared.telemetry import current_trace_headers


async def on_project_at_risk(event: ProjectAtRisk, meta: EventMeta, uow: UnitOfWork) -> None:
    """Queue the alert; the delivery worker sends it: a slow receiver never holds the consumer."""
    trace_headers = current_trace_headers()
    body = {
        "event_id": meta.id,
        "event_type": meta.type,
        "source": meta.source,
        "time": meta.time.isoformat() if meta.time else None,
        "data": event.model_dump(mode="json", by_alias=True),
    }
    uow.session.add(
        Alert(
            event_id=meta.id,
            event_type=meta.type,
            project_id=event.project_id,
            payload=json.dumps(body).encode(),
            traceparent=trace_headers.get("traceparent"),
            tracestate=trace_headers.get("tracestate"),
        )
    )
