"""What allocation does with each event."""

from __future__ import annotations

from services.allocation.adapters.tables import ResourceRequest
from services.allocation.domain.requests import weeks_between
from shared.events.contracts import ResourceRequested
from shared.messaging.consumer import EventMeta, Rejected
from shared.messaging.unit_of_work import UnitOfWork


async def on_resource_requested(event: ResourceRequested, meta: EventMeta, uow: UnitOfWork) -> None:
    """Record the request, spread over the ISO weeks it covers."""
    known = await uow.session.get(ResourceRequest, event.request_id)
    if known is not None:
        if known.event_id == meta.id:
            return
        raise Rejected(
            f"request {event.request_id!r} already exists (from event {known.event_id!r}); "
            "a request id names one request"
        )
    uow.session.add(
        ResourceRequest(
            request_id=event.request_id,
            project_id=event.project_id,
            skill=event.skill,
            fte=event.fte,
            hours=event.hours,
            start=event.start,
            end=event.end,
            weeks=weeks_between(event.start, event.end),
            priority=event.priority,
            named_resource=event.named_resource,
            event_id=meta.id,
        )
    )
