"""Kafka topic names: the inbound contract, the services' outbound events and their dead letters.

Each event travels on the topic of its name, so the topics are derived from the event catalog
(`shared.events.contracts`): an event added there has its topic, and `pmo topics create` makes it.
"""

from __future__ import annotations

from shared.events.contracts import INBOUND_EVENTS, OUTBOUND_EVENTS

INBOUND_TOPICS: tuple[str, ...] = tuple(INBOUND_EVENTS)
"""The inbound contract's topics: one per event the enterprise sends, named as the event."""
OUTBOUND_TOPICS: tuple[str, ...] = tuple(OUTBOUND_EVENTS)
"""The services' outbound topics: one per event they publish, named as the event."""
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
