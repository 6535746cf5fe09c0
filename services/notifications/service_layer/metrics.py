"""Notifications' own metrics, beside the shared `pmo_alerts_delivered` / `pmo_alerts_failed`."""

from __future__ import annotations

from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.metrics import ServiceMetrics


class NotificationMetrics:
    """Dead deliveries and disabled subscriptions (what an operator alerts on), the backlog."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.deliveries_dead = Counter(
            "pmo_notification_deliveries_dead",
            "Deliveries that ended dead (attempts exhausted or refused for good), by channel",
            ["channel"],
            registry=registry,
        )
        self.subscriptions_disabled = Counter(
            "pmo_notification_subscriptions_disabled",
            "Subscriptions disabled because their receiver refused for good, by channel",
            ["channel"],
            registry=registry,
        )
        self.deliveries = Gauge(
            "pmo_notification_deliveries",
            "Deliveries by state, as the clock last counted them (all replicas)",
            ["state"],
            registry=registry,
        )
        self.digests_sent = Counter(
            "pmo_notification_digests",
            "Portfolio digest slots this replica claimed and queued",
            registry=registry,
        )
        self.escalations = Counter(
            "pmo_notification_escalations",
            "Projects escalated by this replica's clock",
            registry=registry,
        )


_by_registry: WeakKeyDictionary[CollectorRegistry, NotificationMetrics] = WeakKeyDictionary()


def notification_metrics(metrics: ServiceMetrics) -> NotificationMetrics:
    """The notification metrics registered on a service's registry (created on first use)."""
    found = _by_registry.get(metrics.registry)
    if found is None:
        found = _by_registry[metrics.registry] = NotificationMetrics(metrics.registry)
    return found
