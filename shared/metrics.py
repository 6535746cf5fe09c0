"""Prometheus metrics of one service: throughput, processing time, lag, dead letters, outbox."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    """The metrics a service exposes on `/metrics`.

    Each service gets its own registry so that services sharing a process (the test harness)
    keep separate figures, exactly as separate pods would.
    """

    def __init__(self, service: str, registry: CollectorRegistry | None = None) -> None:
        self.service = service
        self.registry = registry or CollectorRegistry()
        labels = ["service", "topic"]
        self.events_consumed = Counter(
            "pmo_events_consumed",
            "Events taken from Kafka, by outcome (processed, parked, dead_lettered, duplicate)",
            [*labels, "outcome"],
            registry=self.registry,
        )
        self.events_produced = Counter(
            "pmo_events_produced",
            "Events published to Kafka by the outbox relay",
            labels,
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "pmo_dead_letters",
            "Messages sent to a dead-letter topic",
            labels,
            registry=self.registry,
        )
        self.event_processing_seconds = Histogram(
            "pmo_event_processing_seconds",
            "Time to handle one event, inside its batch transaction",
            labels,
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.batch_seconds = Histogram(
            "pmo_batch_processing_seconds",
            "Time from receiving a batch to committing its transaction",
            ["service"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "pmo_batch_size",
            "Events per transaction (a consumed batch, or part of it after a rollback)",
            ["service"],
            registry=self.registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
        )
        self.consumer_lag = Gauge(
            "pmo_consumer_lag",
            "Records behind the end of each partition after the latest batch, from the high "
            "watermark of the fetch responses (right on Apache Kafka and the embedded Tansu, "
            "whose ListOffsets answer, the last record batch's base offset + 1, undercounts)",
            [*labels, "partition"],
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "pmo_outbox_backlog",
            "Outbox messages not yet published",
            ["service"],
            registry=self.registry,
        )
        self.outbox_oldest_age_seconds = Gauge(
            "pmo_outbox_oldest_age_seconds",
            "Age of the oldest unpublished outbox message",
            ["service"],
            registry=self.registry,
        )
        self.outbox_failed = Gauge(
            "pmo_outbox_failed",
            "Outbox messages the broker refused for what they are, waiting to be re-queued by hand",
            ["service"],
            registry=self.registry,
        )
        self.parked_events = Gauge(
            "pmo_parked_events",
            "Events waiting for what they depend on (e.g. their project's start)",
            ["service"],
            registry=self.registry,
        )
        self.parked_oldest_age_seconds = Gauge(
            "pmo_parked_oldest_age_seconds",
            "How long the longest-waiting parked event has waited",
            ["service"],
            registry=self.registry,
        )
        self.alerts_delivered = Counter(
            "pmo_alerts_delivered",
            "Alerts delivered to a channel",
            ["service", "channel"],
            registry=self.registry,
        )
        self.alerts_failed = Counter(
            "pmo_alerts_failed",
            "Alert delivery attempts that failed",
            ["service", "channel"],
            registry=self.registry,
        )

    def prime(self, consumed_topics: list[str]) -> None:
        """Show every series at zero from the start, so rates and alerts work before traffic."""
        for topic in consumed_topics:
            for outcome in ("processed", "parked", "dead_lettered", "duplicate"):
                self.events_consumed.labels(self.service, topic, outcome)
            self.dead_letters.labels(self.service, topic)
        for gauge in (
            self.outbox_backlog,
            self.outbox_oldest_age_seconds,
            self.outbox_failed,
            self.parked_events,
            self.parked_oldest_age_seconds,
        ):
            gauge.labels(self.service).set(0)
