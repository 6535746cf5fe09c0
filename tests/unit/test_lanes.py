"""A service definition's lanes: their consumer groups and the definitions refused."""

from __future__ import annotations

import pytest

from services.notifications.entrypoints.service import notifications
from shared.runtime import ServiceDefinition, consumer_groups

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
