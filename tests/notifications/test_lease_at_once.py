"""An alert's deliveries leased in the consumer's transaction that queues them, and handed to the
process's delivery worker when it commits (`lease_at_once`), against the real PostgreSQL and
broker: sent once, without a claim transaction of the worker's; nothing handed over from a batch
rolled back; throttling as a claim decides it; the worker's sending slots respected; nothing
leased where no worker runs.

Each test hands the service's consumer a batch it composed (as `test_batch.py` does), so what
one transaction holds is known. The attempt opened with the lease is stamped with its
transaction's start (`now()`), as the delivery's creation is: the two times are equal only when
both rows were written by one transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import pytest

from services.notifications.entrypoints.service import notifications
from services.notifications.service_layer import delivery as delivery_module
from services.notifications.service_layer.clock import run_clock
from services.notifications.service_layer.delivery import DeliveryWorker, SendingSlots
from services.notifications.service_layer.handlers import on_project_at_risk
from shared.events.contracts import ProjectAtRisk
from shared.messaging.consumer import Delivery, per_batch
from shared.messaging.unit_of_work import UnitOfWork
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually, webhook_receiver
from tests.notifications.conftest import (
    QUICK,
    ApiFor,
    alerting_tool,
    answering_receiver,
    at_risk,
)
from tests.notifications.test_batch import Batch, rows

pytestmark = pytest.mark.e2e

HOUR_LONG_POLL = {**QUICK, "notification_poll_interval_s": 3600}
"""The worker's own claim runs only when a commit wakes it: what is sent was handed over."""


def worker_of(service: RunningService) -> DeliveryWorker:
    """The delivery worker running in the service's runtime."""
    found = delivery_module._running.get(service.runtime.engine)
    assert found is not None, "no delivery worker runs for this service"
    return found


async def deliveries_of(service: RunningService, subscription_id: str) -> list[Any]:
    """The subscription's deliveries, by id, with their attempts (number, start, outcome)."""
    return await rows(
        service,
        "SELECT d.id, d.project_id, d.state, d.attempts, d.lease_owner, d.locked_until, "
        "d.held_until, d.created_at, "
        "coalesce(array_agg(a.started_at ORDER BY a.number) "
        "FILTER (WHERE a.id IS NOT NULL), '{}') AS started, "
        "coalesce(array_agg(a.outcome ORDER BY a.number) "
        "FILTER (WHERE a.id IS NOT NULL), '{}') AS outcomes "
        "FROM notifications.delivery d "
        "LEFT JOIN notifications.delivery_attempt a ON a.delivery_id = d.id "
        "WHERE d.subscription_id = CAST(:subscription AS uuid) GROUP BY d.id ORDER BY d.id",
        subscription=subscription_id,
    )


async def until_delivered(service: RunningService, subscription_id: str) -> list[Any]:
    """The subscription's deliveries (`deliveries_of`) once there are some, all delivered."""

    async def all_delivered() -> list[Any] | None:
        found = await deliveries_of(service, subscription_id)
        return found if found and all(d.state == "delivered" for d in found) else None

    return await eventually(all_delivered, timeout=30, what="the alerts delivered")


class Claims:
    """Counts the delivery worker's claim transactions (`DeliveryWorker.claim`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        claim = DeliveryWorker.claim

        async def counted(worker: DeliveryWorker, limit: int, slots: SendingSlots) -> Any:
            self.count += 1
            return await claim(worker, limit, slots)

        monkeypatch.setattr(DeliveryWorker, "claim", counted)


async def test_an_alert_leased_in_its_batch_is_sent_once_without_a_claim_of_the_worker(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    claims = Claims(monkeypatch)
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **HOUR_LONG_POLL)
        tool = await alerting_tool(
            service, api_for(service), enterprise, receiver.url, "PRJ-AT-ONCE"
        )

        async def first_round_claimed() -> bool:
            return claims.count > 0  # the worker's round at start-up

        await eventually(first_round_claimed, timeout=30, what="the worker's first claim")
        before = claims.count
        await service.runtime.consumer.process(
            [Batch(settings).record("project-at-risk", at_risk("PRJ-AT-ONCE"))]
        )

        [sent] = await until_delivered(service, tool["id"])
        assert len(receiver.received) == 1
        assert (sent.attempts, sent.outcomes) == (1, ["delivered"])
        # Its attempt was opened by the transaction that queued it, ...
        assert sent.started == [sent.created_at]
        # ... and the worker sent it with no claim of its own (nor was woken to make one).
        assert claims.count == before


async def test_a_batch_rolled_back_after_leasing_hands_nothing_over(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
) -> None:
    failures = [ConnectionError("the database went away before the commit")]

    async def fails_once_after_leasing(
        deliveries: Sequence[Delivery[ProjectAtRisk]], uow: UnitOfWork
    ) -> None:
        await on_project_at_risk(deliveries, uow)
        if failures:
            raise failures.pop()  # transient: the batch is rolled back, to be delivered again

    definition = dataclasses.replace(
        notifications,
        handlers={
            **notifications.handlers,
            "project-at-risk": per_batch(fails_once_after_leasing),
        },
    )
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", definition, **HOUR_LONG_POLL)
        tool = await alerting_tool(
            service, api_for(service), enterprise, receiver.url, "PRJ-ROLLED"
        )
        worker = worker_of(service)
        records = [Batch(settings).record("project-at-risk", at_risk("PRJ-ROLLED"))]
        with pytest.raises(ConnectionError):
            await service.runtime.consumer.process(records)
        # The handler leased the delivery; the rollback undid it, and nothing was handed over:
        # no row, no send started, every sending slot free again.
        assert await deliveries_of(service, tool["id"]) == []
        assert worker.in_flight == {}
        assert worker.free_slots() == service.runtime.settings.notification_concurrency

        await service.runtime.consumer.process(records)  # the batch delivered again

        [sent] = await until_delivered(service, tool["id"])
        assert (sent.attempts, sent.outcomes) == (1, ["delivered"])
        assert sent.started == [sent.created_at]
        assert len(receiver.received) == 1


async def test_two_alerts_of_a_project_in_one_batch_send_the_first_and_hold_the_second(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
) -> None:
    async with webhook_receiver() as receiver:
        service = await start_service("notifications", **HOUR_LONG_POLL)
        api = api_for(service)
        await alerting_tool(service, api, enterprise, receiver.url, "PRJ-TWICE")
        throttled = await api.subscribe(
            name="throttled tool",
            channel="webhook",
            recipient=receiver.url,
            secret="subscriber-secret-0123456789",
            event_types=["project-at-risk"],
            throttle_window_s=3600,
        )
        batch = Batch(settings)
        await service.runtime.consumer.process(
            [
                batch.record("project-at-risk", at_risk("PRJ-TWICE", spi=0.8)),
                batch.record("project-at-risk", at_risk("PRJ-TWICE", spi=0.7)),
            ]
        )

        async def first_delivered() -> list[Any] | None:
            found = await deliveries_of(service, throttled["id"])
            return found if found and found[0].state == "delivered" else None

        first, second = await eventually(first_delivered, timeout=30, what="the first alert")
        assert first.started == [first.created_at]
        # The second falls in the window the first opened: held until it ends (the clock then
        # sends one summary), never attempted, as a claim decides it.
        assert (second.state, second.attempts, second.outcomes) == ("held", 0, [])
        assert second.held_until == first.created_at + timedelta(hours=1)
        assert second.lease_owner is None


class Holding:
    """A receiver's `before_answer` that holds every request until `release` is set, and
    counts the requests it holds at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.now = 0
        self.most = 0

    async def __call__(self) -> None:
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await self.release.wait()
        finally:
            self.now -= 1


async def test_a_batch_leases_no_more_than_the_free_sending_slots_the_rest_is_claimed_later(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
) -> None:
    projects = [f"PRJ-SLOT-{n}" for n in range(5)]
    holding = Holding()
    async with answering_receiver() as receiver:
        receiver.before_answer = holding
        service = await start_service("notifications", **QUICK, notification_concurrency=2)
        tool = await alerting_tool(service, api_for(service), enterprise, receiver.url, *projects)
        batch = Batch(settings)
        try:
            await service.runtime.consumer.process(
                [batch.record("project-at-risk", at_risk(project)) for project in projects]
            )

            async def two_held() -> bool:
                return holding.now == 2

            await eventually(two_held, timeout=30, what="two sends held by the receiver")
            # Two leased with the batch (the worker's two slots), the other three left due: no
            # lease, no attempt; the worker has no slot to claim them while the two are held.
            queued = await deliveries_of(service, tool["id"])
            leased = [d for d in queued if d.lease_owner is not None]
            assert [d.project_id for d in leased] == projects[:2]
            assert all(d.started == [d.created_at] for d in leased)
            assert [(d.state, d.attempts, d.outcomes) for d in queued[2:]] == [
                ("pending", 0, [])
            ] * 3
            assert worker_of(service).free_slots() == 0
        finally:
            holding.release.set()

        sent = await until_delivered(service, tool["id"])
        assert [d.outcomes for d in sent] == [["delivered"]] * 5
        sent_about = [json.loads(body)["data"]["project_id"] for body in receiver.received]
        assert sorted(sent_about) == projects
        assert holding.most == 2


async def test_a_replica_without_a_delivery_worker_leases_nothing_a_replica_with_one_sends_it(
    start_service: ServiceStarter,
    enterprise: Enterprise,
    api_for: ApiFor,
    settings: Settings,
) -> None:
    async with webhook_receiver() as receiver:
        # A replica that only consumes (and ticks its clock): it runs no delivery worker.
        consuming = await start_service(
            "notifications",
            dataclasses.replace(notifications, workers=(run_clock,)),
            **QUICK,
        )
        tool = await alerting_tool(
            consuming, api_for(consuming), enterprise, receiver.url, "PRJ-NO-WORKER"
        )
        await consuming.runtime.consumer.process(
            [Batch(settings).record("project-at-risk", at_risk("PRJ-NO-WORKER"))]
        )
        [queued] = await deliveries_of(consuming, tool["id"])
        assert (queued.state, queued.attempts, queued.lease_owner, queued.outcomes) == (
            "pending",
            0,
            None,
            [],
        )

        # A replica with a worker claims it (its poll finds it due).
        sending = await start_service("notifications", **QUICK)

        [sent] = await until_delivered(sending, tool["id"])
        assert (sent.attempts, sent.outcomes) == (1, ["delivered"])
        assert len(receiver.received) == 1
