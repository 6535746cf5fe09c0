"""Kafka topic names: the inbound contract, the services' outbound events and their dead letters."""

from __future__ import annotations

INBOUND_TOPICS: tuple[str, ...] = (
    "project-started",
    "status-changed",
    "resource-requested",
    "strategy-changed",
)
OUTBOUND_TOPICS: tuple[str, ...] = (
    "project-registered",
    "project-lifecycle-changed",
    "portfolio-reprioritized",
    "project-at-risk",
    "project-recovered",
    "resource-allocated",
    "resource-conflict-resolved",
    "allocation-changed",
    "project-health-assessed",
    "project-rebaselined",
    "gate-reviewed",
    "lessons-suggested",
    "project-program-changed",
    "intervention-proposed",
    "intervention-accepted",
    "intervention-declined",
    "intervention-ended",
)
DEAD_LETTER_SUFFIX = ".dlq"


def topic_name(event_name: str, prefix: str = "") -> str:
    """The topic an event travels on: its name, behind the deployment's prefix."""
    return f"{prefix}{event_name}"


def dead_letter_topic(topic: str) -> str:
    return f"{topic}{DEAD_LETTER_SUFFIX}"


def all_topics(prefix: str = "") -> list[str]:
    """Every topic the system uses, dead-letter topics included (what `pmo topics create` makes)."""
    names = [topic_name(event, prefix) for event in (*INBOUND_TOPICS, *OUTBOUND_TOPICS)]
    return [*names, *(dead_letter_topic(name) for name in names)]


def event_name_of(topic: str, prefix: str = "") -> str:
    """The event name a topic carries (the inverse of `topic_name`)."""
    return topic[len(prefix) :] if prefix and topic.startswith(prefix) else topic
