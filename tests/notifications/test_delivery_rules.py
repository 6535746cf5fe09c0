"""The delivery worker's rules on the fake unit of work (no broker, no database): throttling,
retries with backoff, giving up, a receiver refusing for good, leases. The sending itself (HTTP,
SMTP) is tested against real receivers in `test_channels.py`, `test_reliability.py` and
`test_refusals.py`, through the real broker and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifications.adapters.tables import DeliveryRow, SubscriptionRow
from services.notifications.service_layer.delivery import (
    AttemptResult,
    ClaimedDelivery,
    claim_due,
    lease_deliveries,
    record_outcome,
    release_lease,
    slots_up_to,
)
from shared.settings import Settings
from tests.fakes.notifications import FakeNotificationsUnitOfWork

pytestmark = pytest.mark.fast

NOW = datetime(2026, 6, 30, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=1)
WORKER = "host/1/worker"
SETTINGS = Settings(
    notification_throttle_window=timedelta(minutes=30),
    notification_max_attempts=3,
    notification_retry_base_s=10.0,
    notification_retry_max_s=3600.0,
)


def subscription(name: str, **fields: Any) -> SubscriptionRow:
    webhook = {"channel": "webhook", "recipient": f"https://{name}.example.com/hook"}
    return SubscriptionRow(name=name, **{"event_types": [], **webhook, **fields})


def delivery(
    subscriber: SubscriptionRow,
    event_id: str,
    *,
    created: datetime = NOW,
    event_type: str = "pmo.project-at-risk",
    project_id: str = "PRJ-1",
    **fields: Any,
) -> DeliveryRow:
    """A delivery queued at `created` and due then."""
    return DeliveryRow(
        event_id=event_id,
        event_type=event_type,
        subscription_id=subscriber.id,
        project_id=project_id,
        channel=subscriber.channel,
        severity="amber",
        context={"project": {"project_id": project_id}},
        throttle_key=project_id,
        created_at=created,
        next_attempt_at=created,
        **fields,
    )


async def claim(uow: FakeNotificationsUnitOfWork, at: datetime = NOW) -> list[ClaimedDelivery]:
    return await claim_due(uow, at, limit=10, owner=WORKER, lease=LEASE)


async def test_a_second_notice_about_a_project_inside_the_throttle_window_is_held_not_sent() -> (
    None
):
    tool = subscription("tool")
    first = delivery(tool, "event-1", created=NOW - timedelta(minutes=5))
    second = delivery(tool, "event-2")
    other_project = delivery(tool, "event-3", project_id="PRJ-2")
    uow = FakeNotificationsUnitOfWork(
        subscriptions=[tool], deliveries=[first, second, other_project], settings=SETTINGS
    )

    claimed = await claim(uow)

    assert [c.event_id for c in claimed] == ["event-1", "event-3"]
    assert (second.state, second.held_until) == ("held", NOW + timedelta(minutes=25))
    assert second.attempts == 0
    assert second.lease_owner is None
    for sent in claimed:
        await record_outcome(uow, sent, AttemptResult(True, status_code=200), owner=WORKER, now=NOW)
    # Once the window has passed, a new notice about the project is sent again.
    later = delivery(tool, "event-4", created=NOW + timedelta(minutes=40))
    uow.deliveries.add(later)
    assert [c.event_id for c in await claim(uow, NOW + timedelta(minutes=40))] == ["event-4"]


async def test_unthrottled_notices_are_never_held_nor_open_a_window() -> None:
    tool = subscription("tool")
    minutes = [NOW - timedelta(minutes=n) for n in (5, 4, 3, 0)]
    queued = [
        delivery(tool, "at-risk-1", created=minutes[0]),
        # Inside the window the at-risk notice opened, but an escalation is never held ...
        delivery(tool, "escalation-1", created=minutes[1], event_type="pmo.project-escalated"),
        # ... nor does it open a window for what follows about its project.
        delivery(
            tool,
            "escalation-2",
            created=minutes[2],
            event_type="pmo.project-escalated",
            project_id="PRJ-2",
        ),
        delivery(tool, "at-risk-2", created=minutes[3], project_id="PRJ-2"),
    ]
    uow = FakeNotificationsUnitOfWork(subscriptions=[tool], deliveries=queued, settings=SETTINGS)

    claimed = await claim(uow)

    assert [c.event_id for c in claimed] == [row.event_id for row in queued]
    assert {row.state for row in uow.deliveries.rows} == {"pending"}


async def test_a_lease_at_once_follows_the_claims_rules_and_leases_at_most_its_limit() -> None:
    """What a batch just queued, leased by `lease_deliveries` as the claim leases what is due:
    a disabled or deleted subscription cancels, a throttle window holds (neither takes a
    sending slot), as many are leased with an attempt each as there are slots, the rest left
    due."""
    tool = subscription("tool")
    gone = subscription("gone", enabled=False, disabled_reason="HTTP 410 Gone")
    deleted = subscription("deleted")
    uow = FakeNotificationsUnitOfWork(subscriptions=[tool, gone], settings=SETTINGS)
    first = uow.deliveries.add(delivery(tool, "event-1"))
    to_gone = uow.deliveries.add(delivery(gone, "event-1"))
    to_deleted = uow.deliveries.add(delivery(deleted, "event-1"))
    second = uow.deliveries.add(delivery(tool, "event-2"))  # same project: in first's window
    other = uow.deliveries.add(delivery(tool, "event-3", project_id="PRJ-2"))
    last = uow.deliveries.add(delivery(tool, "event-4", project_id="PRJ-3"))
    queued = [
        (first, tool),
        (to_gone, gone),
        (to_deleted, None),
        (second, tool),
        (other, tool),
        (last, tool),
    ]

    leased = await lease_deliveries(
        uow, queued, now=NOW, owner=WORKER, lease=LEASE, take_slot=slots_up_to(2)
    )

    assert [c.id for c in leased] == [first.id, other.id]
    assert [(c.attempt, c.recipient) for c in leased] == [(1, tool.recipient)] * 2
    for sent in (first, other):
        assert (sent.lease_owner, sent.locked_until) == (WORKER, NOW + LEASE)
    assert (to_gone.state, to_gone.last_error) == (
        "cancelled",
        "its subscription is disabled: HTTP 410 Gone",
    )
    assert (to_deleted.state, to_deleted.last_error) == (
        "cancelled",
        "its subscription was deleted",
    )
    assert (second.state, second.held_until) == ("held", NOW + timedelta(minutes=30))
    # Beyond the limit: left as queued, for the worker's next claim.
    assert (last.state, last.attempts, last.lease_owner) == ("pending", 0, None)
    assert [a.delivery_id for a in uow.deliveries.attempts] == [first.id, other.id]
    [claimed] = await claim(uow)
    assert claimed.id == last.id


async def test_a_transient_failure_is_retried_later_with_a_growing_backoff() -> None:
    tool = subscription("tool")
    queued = delivery(tool, "event-1")
    uow = FakeNotificationsUnitOfWork(subscriptions=[tool], deliveries=[queued], settings=SETTINGS)
    failed = AttemptResult(False, status_code=503, error="HTTP 503")

    waits = []
    at = NOW
    for attempt in (1, 2):
        [claimed] = await claim(uow, at)
        assert (claimed.attempt, queued.lease_owner, queued.locked_until) == (
            attempt,
            WORKER,
            at + LEASE,
        )
        recorded = await record_outcome(uow, claimed, failed, owner=WORKER, now=at)
        assert recorded.state == "pending"
        assert queued.next_attempt_at is not None
        assert queued.lease_owner is None
        waits.append(queued.next_attempt_at - at)
        assert await claim(uow, queued.next_attempt_at - timedelta(seconds=1)) == []
        at = queued.next_attempt_at

    # retry_delay: half fixed, half random, of 10 s then 20 s.
    assert timedelta(seconds=5) <= waits[0] <= timedelta(seconds=10)
    assert timedelta(seconds=10) <= waits[1] <= timedelta(seconds=20)
    assert [(a.number, a.outcome, a.status_code) for a in uow.deliveries.attempts] == [
        (1, "failed", 503),
        (2, "failed", 503),
    ]
    assert queued.last_error == "HTTP 503"


async def test_after_the_last_attempt_a_delivery_is_dead_and_not_tried_again() -> None:
    tool = subscription("tool")
    queued = delivery(tool, "event-1", attempts=2)  # notification_max_attempts is 3
    uow = FakeNotificationsUnitOfWork(subscriptions=[tool], deliveries=[queued], settings=SETTINGS)

    [claimed] = await claim(uow)
    recorded = await record_outcome(
        uow, claimed, AttemptResult(False, status_code=500, error="HTTP 500"), owner=WORKER, now=NOW
    )

    assert (recorded.state, queued.state, queued.attempts) == ("dead", "dead", 3)
    assert await claim(uow, NOW + timedelta(days=1)) == []


async def test_a_410_disables_the_subscription_with_its_reason_and_tells_the_admins() -> None:
    tool = subscription("tool")
    admins = subscription(
        "admins",
        channel="email",
        recipient="pmo@example.com",
        event_types=["subscription-disabled"],
    )
    queued = delivery(tool, "event-1")
    uow = FakeNotificationsUnitOfWork(
        subscriptions=[tool, admins], deliveries=[queued], settings=SETTINGS
    )
    gone = AttemptResult(
        False, status_code=410, error="HTTP 410", permanent=True, gone="HTTP 410 Gone"
    )

    [claimed] = await claim(uow)
    recorded = await record_outcome(uow, claimed, gone, owner=WORKER, now=NOW)

    assert (recorded.state, recorded.disabled) == ("dead", "tool")
    assert (tool.enabled, tool.disabled_reason, tool.disabled_at) == (False, "HTTP 410 Gone", NOW)
    [notice] = uow.deliveries.of_type("pmo.subscription-disabled")
    assert (notice.subscription_id, notice.state) == (admins.id, "pending")
    assert notice.context["disabled"]["reason"] == "HTTP 410 Gone"
    assert notice.context["disabled"]["name"] == "tool"
    # The next delivery to the disabled subscription is cancelled, not sent.
    uow.deliveries.add(later := delivery(tool, "event-2", project_id="PRJ-2"))
    # (the notice was queued at the fake's real clock: claim after it)
    claimed_next = await claim(uow, datetime.now(UTC) + timedelta(seconds=1))
    assert [c.event_id for c in claimed_next] == [notice.event_id]
    assert later.state == "cancelled"
    assert later.last_error == "its subscription is disabled: HTTP 410 Gone"


async def test_a_released_lease_is_claimed_again_at_once_its_attempt_abandoned() -> None:
    tool = subscription("tool")
    queued = delivery(tool, "event-1")
    uow = FakeNotificationsUnitOfWork(subscriptions=[tool], deliveries=[queued], settings=SETTINGS)

    [claimed] = await claim(uow)
    await release_lease(uow, claimed, owner=WORKER, now=NOW)

    [again] = await claim(uow)
    assert again.attempt == 2
    assert [a.outcome for a in uow.deliveries.attempts] == ["abandoned", "in_flight"]
