"""A service definition's lanes: their consumer groups and the definitions refused."""

from __future__ import annotations

import pytest

from services.notifications.entrypoints.service import notifications
from shared.runtime import ServiceDefinition, ServiceRuntime, consumer_groups
from shared.settings import Settings

pytestmark = pytest.mark.fast


def test_a_lane_is_its_own_group_and_the_service_group_reads_the_rest() -> None:
    groups = consumer_groups(notifications, "t.")
    assert groups["t.pmo-notifications-alerts"] == ["project-at-risk", "project-recovered"]
    rest = groups["t.pmo-notifications"]
    assert sorted(rest) == sorted(
        set(notifications.handlers) - {"project-at-risk", "project-recovered"}
    )


@pytest.mark.parametrize(
    ("lanes", "refusal"),
    [
        ({"alerts": ("project-escalated",)}, "does not handle"),
        ({"a": ("project-at-risk",), "b": ("project-at-risk",)}, "more than one lane"),
        ({"alerts": ()}, "without events"),
    ],
)
def test_lanes_naming_no_handled_event_or_one_twice_are_refused(
    lanes: dict[str, tuple[str, ...]], refusal: str
) -> None:
    with pytest.raises(ValueError, match=refusal):
        ServiceDefinition(
            name="notifications",
            summary="",
            handlers=notifications.handlers,
            publishes=(),
            lanes=lanes,
        )


def test_an_instance_of_some_lanes_joins_only_their_groups() -> None:
    """Notifications' alert lane may run in a process of its own (a replica joining that group
    only), the rest in another; a lane the service does not have is refused."""
    # Nothing connects: a runtime reaches its database and broker only when started.
    settings = Settings(
        topic_prefix="t.",
        database_url="postgresql://nowhere.invalid/pmo",
        kafka_bootstrap_servers="nowhere.invalid:9092",
    )
    alerts = ServiceRuntime(notifications, settings, lanes=("alerts",))
    assert alerts.consumer_groups == {
        "t.pmo-notifications-alerts": ["t.project-at-risk", "t.project-recovered"]
    }
    assert set(alerts.subscribers) == {"t.pmo-notifications-alerts"}
    rest = ServiceRuntime(notifications, settings, lanes=("",))
    assert set(rest.subscribers) == {"t.pmo-notifications"}
    assert set(ServiceRuntime(notifications, settings).subscribers) == {
        "t.pmo-notifications",
        "t.pmo-notifications-alerts",
    }
    with pytest.raises(ValueError, match="no consumer group"):
        ServiceRuntime(notifications, settings, lanes=("escalations",))
