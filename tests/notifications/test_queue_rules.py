"""Which subscriptions a notice is queued for, on the fake unit of work (no broker, no
database): filters, channels, a replayed notice, a subscription with nothing to tell. The
audience rule itself is in `test_domain.py`; handlers' queuing end to end in `test_batch.py`."""

from __future__ import annotations

from typing import Any

import pytest

from services.notifications.adapters.tables import ENVIRONMENT_WEBHOOK_ID, SubscriptionRow
from services.notifications.domain.subscriptions import Notice
from services.notifications.service_layer.queue import Queued, queue_notices
from shared.settings import Settings
from tests.fakes.notifications import FakeNotificationsUnitOfWork

pytestmark = pytest.mark.fast

AT_RISK = Notice("project-at-risk", "amber", ("PRJ-1",), ("Digital",))


def subscription(name: str, **fields: Any) -> SubscriptionRow:
    defaults = {"channel": "email", "recipient": f"{name}@example.com"}
    return SubscriptionRow(name=name, **{"event_types": ["project-at-risk"], **defaults, **fields})


def notice(event_id: str, **context: Any) -> Queued:
    return Queued(AT_RISK, event_id, "pmo.project-at-risk", lambda _: dict(context), "PRJ-1")


async def test_a_notice_is_queued_once_for_each_subscription_that_wants_it_and_can_be_sent() -> (
    None
):
    wanting = [
        subscription("everything"),
        subscription("mine", project_id="PRJ-1"),
        subscription("unit", business_unit="Digital"),
    ]
    not_wanting = [
        subscription("other-project", project_id="PRJ-2"),
        subscription("red-only", min_severity="red"),
        subscription("other-types", event_types=["project-recovered"]),
        subscription("switched-off", enabled=False),
        # The environment's webhook has nowhere to send while PMO_ALERT_WEBHOOK_URL is unset.
        subscription("environment", id=ENVIRONMENT_WEBHOOK_ID, channel="webhook"),
    ]
    uow = FakeNotificationsUnitOfWork(
        subscriptions=[*wanting, *not_wanting], settings=Settings(alert_webhook_url=None)
    )

    assert await queue_notices(uow, [notice("event-1", reason="spi")], settings=uow.settings) == 3
    rows = uow.deliveries.rows
    assert {row.subscription_id for row in rows} == {s.id for s in wanting}
    assert {(row.state, row.throttle_key, row.severity) for row in rows} == {
        ("pending", "PRJ-1", "amber")
    }
    assert all(row.context == {"reason": "spi"} for row in rows)

    # A replay of the same event (parked and replayed, or redelivered) queues nothing new.
    assert await queue_notices(uow, [notice("event-1")], settings=uow.settings) == 0
    assert len(uow.deliveries.rows) == 3


async def test_a_subscription_with_nothing_to_tell_gets_no_delivery() -> None:
    uow = FakeNotificationsUnitOfWork(subscriptions=[subscription("quiet")])
    silent = Queued(AT_RISK, "event-2", "pmo.project-at-risk", lambda _: None, "PRJ-1")
    assert await queue_notices(uow, [silent], settings=uow.settings) == 0
    assert uow.deliveries.rows == []
