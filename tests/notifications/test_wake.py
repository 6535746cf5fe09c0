"""The delivery worker sends a notice when the commit that queued it wakes it, not at its poll."""

from __future__ import annotations

from tests.conftest import ServiceStarter
from tests.harness import Enterprise, eventually, webhook_receiver
from tests.notifications.conftest import QUICK, ApiFor, at_risk, register


async def test_the_commit_that_queues_a_delivery_wakes_the_worker_within_an_hour_long_poll(
    start_service: ServiceStarter, enterprise: Enterprise, api_for: ApiFor
) -> None:
    # An hour between the worker's polls: the at-risk webhook arrives within the test only
    # because the consumer's commit that queued its delivery woke the worker in this process.
    async with webhook_receiver() as receiver:
        service = await start_service(
            "notifications", **{**QUICK, "notification_poll_interval_s": 3600}
        )
        await api_for(service).subscribe(
            name="tool",
            channel="webhook",
            recipient=receiver.url,
            secret="subscriber-secret-0123456789",
            event_types=["project-at-risk"],
            throttle_window_s=0,
        )
        await register(enterprise, "PRJ-WAKE")
        await enterprise.send("project-at-risk", at_risk("PRJ-WAKE"))

        async def received() -> bool:
            return bool(receiver.received)

        await eventually(received, timeout=60, what="the at-risk webhook")
        assert len(receiver.received) == 1
