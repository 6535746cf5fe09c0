"""The clock's rules on the fake unit of work: throttle windows summarized, long risks escalated
once per episode (no broker, no database). `test_clock.py` proves the same duties end to end,
through the real broker, PostgreSQL, SMTP and a webhook receiver."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.notifications.adapters.tables import DeliveryRow, ProjectRow, SubscriptionRow
from services.notifications.adapters.templates import TemplateCatalog
from services.notifications.service_layer.clock import close_throttle_windows, escalate
from shared.settings import Settings
from tests.fakes.notifications import FakeNotificationsUnitOfWork

pytestmark = pytest.mark.fast

NOW = datetime(2026, 6, 30, 9, 0, tzinfo=UTC)
SETTINGS = Settings(notification_escalate_after=timedelta(days=7))
TEMPLATES = TemplateCatalog(
    SETTINGS.registry_public_url, dashboard_url=SETTINGS.dashboard_public_url
)


def subscription(name: str, **fields: Any) -> SubscriptionRow:
    return SubscriptionRow(
        name=name, channel="email", recipient=f"{name}@example.com", **{"event_types": [], **fields}
    )


def held(
    subscriber: SubscriptionRow, project_id: str, severity: str, until: datetime
) -> DeliveryRow:
    """A delivery the throttle held until `until` (its window opened ten minutes before)."""
    return DeliveryRow(
        event_id=f"event-{project_id}-{until.isoformat()}-{severity}",
        event_type="pmo.project-at-risk",
        subscription_id=subscriber.id,
        project_id=project_id,
        channel=subscriber.channel,
        severity=severity,
        context={"project": {"project_id": project_id}},
        state="held",
        throttle_key=project_id,
        held_until=until,
        created_at=until - timedelta(minutes=10),
    )


def at_risk(project_id: str, since: timedelta, *, lifecycle: str = "active") -> ProjectRow:
    return ProjectRow(
        project_id=project_id,
        name=f"Project {project_id}",
        business_unit="Digital",
        lifecycle=lifecycle,
        health="red",
        at_risk_since=NOW - since,
    )


async def test_an_ended_window_becomes_one_summary_of_its_held_notices() -> None:
    tool = subscription("tool", event_types=["project-at-risk"])
    burst = [held(tool, "BURST", severity, NOW) for severity in ("amber", "red", "amber")]
    calm = held(tool, "CALM", "red", NOW + timedelta(minutes=1))  # its window is still open
    uow = FakeNotificationsUnitOfWork(
        subscriptions=[tool], deliveries=[*burst, calm], settings=SETTINGS
    )

    assert await close_throttle_windows(uow, NOW, TEMPLATES) == 1

    [summary] = uow.deliveries.of_type("pmo.notification-summary")
    assert (summary.subscription_id, summary.project_id, summary.state) == (
        tool.id,
        "BURST",
        "pending",
    )
    assert summary.severity == "red"  # the worst of the burst
    assert summary.context["summary"]["count"] == 3
    assert summary.context["summary"]["window_minutes"] == 10
    assert [item["delivery_id"] for item in summary.context["summary"]["items"]] == [
        delivery.id for delivery in burst
    ]
    assert [(d.state, d.summary_id) for d in burst] == [("summarized", summary.id)] * 3
    assert calm.state == "held"

    # The next tick finds nothing more to summarize.
    assert await close_throttle_windows(uow, NOW + timedelta(seconds=30), TEMPLATES) == 0
    assert len(uow.deliveries.of_type("pmo.notification-summary")) == 1


async def test_the_held_notices_of_a_deleted_subscription_are_cancelled() -> None:
    gone = subscription("gone")
    burst = [held(gone, "BURST", "red", NOW) for _ in range(2)]
    uow = FakeNotificationsUnitOfWork(deliveries=burst, settings=SETTINGS)

    assert await close_throttle_windows(uow, NOW, TEMPLATES) == 0
    assert [(d.state, d.last_error) for d in burst] == [
        ("cancelled", "its subscription was deleted")
    ] * 2
    assert uow.deliveries.of_type("pmo.notification-summary") == []


async def test_a_project_at_risk_longer_than_the_setting_is_escalated_to_escalation_targets() -> (
    None
):
    director = subscription("director", escalation_target=True)
    office = subscription("office", event_types=["project-at-risk"])
    late = at_risk("LATE", timedelta(days=8))
    uow = FakeNotificationsUnitOfWork(
        subscriptions=[director, office],
        projects=[
            late,
            at_risk("RECENT", timedelta(days=6)),  # not yet
            at_risk("DONE", timedelta(days=30), lifecycle="completed"),  # finished: never
        ],
        settings=SETTINGS,
    )

    assert await escalate(uow, NOW) == [("LATE", timedelta(days=8))]

    [escalation] = uow.deliveries.of_type("pmo.project-escalated")
    assert (escalation.subscription_id, escalation.project_id, escalation.severity) == (
        director.id,
        "LATE",
        "red",
    )
    details = escalation.context["escalation"]
    assert (details["days_at_risk"], details["after_days"], details["severity"]) == (
        8.0,
        7.0,
        "red",
    )
    assert late.escalated_at == NOW


async def test_an_escalation_happens_once_per_episode_and_again_in_the_next_one() -> None:
    director = subscription("director", escalation_target=True)
    late = at_risk("LATE", timedelta(days=8))
    uow = FakeNotificationsUnitOfWork(subscriptions=[director], projects=[late], settings=SETTINGS)
    await escalate(uow, NOW)

    assert await escalate(uow, NOW + timedelta(hours=1)) == []  # the same episode

    # Recovered (monitoring clears the episode), at risk again: escalated after the same delay.
    late.at_risk_since, late.escalated_at = NOW + timedelta(days=1), None
    assert await escalate(uow, NOW + timedelta(days=7)) == []
    assert await escalate(uow, NOW + timedelta(days=8)) == [("LATE", timedelta(days=7))]
    episodes = [d.event_id for d in uow.deliveries.of_type("pmo.project-escalated")]
    assert len(episodes) == len(set(episodes)) == 2
