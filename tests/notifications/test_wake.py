"""The delivery worker sends a notice when the commit that queued it wakes it, not at its poll."""

from __future__ import annotations

from types import SimpleNamespace

from services.notifications.adapters.repository import DELIVERIES_QUEUED
from services.notifications.entrypoints.service import notifications
from services.notifications.service_layer.delivery import DeliveryWorker
from shared.runtime import ServiceRuntime
from shared.settings import Settings
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


def test_only_a_commit_that_queued_deliveries_wakes_the_worker() -> None:
    """Notifications commits hundreds of batches a second that queue nothing (one
    project-health-assessed per status report); each would otherwise start a claim round on the
    event loop the alerts' batches share."""
    # Nothing connects: a runtime reaches its database and broker only when started.
    settings = Settings(
        database_url="postgresql://nowhere.invalid/pmo",
        kafka_bootstrap_servers="nowhere.invalid:9092",
    )
    runtime = ServiceRuntime(notifications, settings)
    worker = DeliveryWorker(runtime)

    def commit(**info: bool) -> SimpleNamespace:
        uow = SimpleNamespace(
            published=0, published_alerts=0, session=SimpleNamespace(info=dict(info))
        )
        runtime._committed(uow)  # type: ignore[arg-type]
        return uow

    commit()
    assert not worker._wake.is_set()
    queued = commit(**{DELIVERIES_QUEUED: True})
    assert worker._wake.is_set()
    # Told once: a later commit of the same session queues nothing new by this mark.
    assert DELIVERIES_QUEUED not in queued.session.info
