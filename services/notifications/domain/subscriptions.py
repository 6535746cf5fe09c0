"""Which subscriptions want a notice: by event type, severity, project and business unit."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, get_args

NoticeType = Literal[
    "project-at-risk",
    "project-recovered",
    "project-escalated",
    "resource-conflict-resolved",
    "allocation-changed",
    "gate-reviewed",
    "lessons-suggested",
    "project-lifecycle-changed",
    "portfolio-reprioritized",
    "portfolio-digest",
    "subscription-disabled",
    "intervention-proposed",
    "intervention-accepted",
    "intervention-declined",
    "intervention-ended",
]
"""What a subscription may ask for: PMO events, escalations, the weekly portfolio digest, and
(for administrators) `subscription-disabled`: a receiver refused another subscription for good."""
NOTICE_TYPES: tuple[NoticeType, ...] = get_args(NoticeType)

SUBSCRIPTION_DISABLED = "subscription-disabled"
"""About the notification system itself, not a project: severity, project and unit filters
do not apply to it."""

SUMMARY_TYPE = "notification-summary"
"""The message that closes a throttled burst; it goes to the subscription the burst was for."""

Channel = Literal["email", "webhook", "slack"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

NoticeSeverity = Literal["info", "amber", "red"]
"""`info` for news, `amber`/`red` for a project's health (the at-risk severities)."""
SEVERITY_RANK: dict[str, int] = {"info": 0, "amber": 1, "red": 2}

UNTHROTTLED: frozenset[str] = frozenset(
    {"project-escalated", "portfolio-digest", SUBSCRIPTION_DISABLED, SUMMARY_TYPE}
)
"""Notices that are never held back: each is already one message about many things, or rare."""


@dataclass(frozen=True)
class Audience:
    """A subscription's filters. Empty filters (None) mean "any"."""

    event_types: frozenset[str]
    min_severity: str = "info"
    project_id: str | None = None
    business_unit: str | None = None
    escalation_target: bool = False


@dataclass(frozen=True)
class Notice:
    """Something to tell: its type, how severe, and the projects (and their units) it is about."""

    notice_type: str
    severity: str = "info"
    project_ids: tuple[str, ...] = ()
    business_units: tuple[str, ...] = ()


def wants(audience: Audience, notice: Notice) -> bool:
    """Whether a subscription with `audience` should receive `notice`.

    Escalations go to escalation targets whatever their event types (being a target is the
    subscription to them). The portfolio digest ignores severity, and its project and business
    unit filters narrow its lines rather than decide whether it is sent. A disabled
    subscription is news for its administrators whatever their filters.
    """
    if notice.notice_type == "project-escalated":
        if not audience.escalation_target:
            return False
    elif notice.notice_type not in audience.event_types:
        return False
    if notice.notice_type in ("portfolio-digest", SUBSCRIPTION_DISABLED):
        return True
    if SEVERITY_RANK.get(notice.severity, 0) < SEVERITY_RANK.get(audience.min_severity, 0):
        return False
    if audience.project_id is not None and audience.project_id not in notice.project_ids:
        return False
    return audience.business_unit is None or audience.business_unit in notice.business_units


def audience_of(
    event_types: Iterable[str],
    min_severity: str,
    project_id: str | None,
    business_unit: str | None,
    escalation_target: bool,
) -> Audience:
    return Audience(
        event_types=frozenset(event_types),
        min_severity=min_severity,
        project_id=project_id,
        business_unit=business_unit,
        escalation_target=escalation_target,
    )
