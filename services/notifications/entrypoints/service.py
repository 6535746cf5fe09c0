"""The notifications service as the runtime starts it."""

from services.notifications.domain.redaction import install_scrubber
from services.notifications.entrypoints import api
from services.notifications.entrypoints.api import router
from services.notifications.service_layer import clock, delivery, handlers, queue
from services.notifications.service_layer.clock import run_clock
from services.notifications.service_layer.delivery import deliver_notifications
from services.notifications.service_layer.handlers import (
    on_allocation_changed,
    on_gate_reviewed,
    on_intervention,
    on_lessons_suggested,
    on_portfolio_reprioritized,
    on_project_at_risk,
    on_project_health_assessed,
    on_project_lifecycle_changed,
    on_project_recovered,
    on_project_registered,
    on_resource_allocated,
    on_resource_conflict_resolved,
)
from shared.messaging.consumer import per_batch
from shared.runtime import ServiceDefinition

# Log lines never show a webhook's or Slack's URL beyond scheme and host, nor a configured
# secret: ours, and httpx's own (it logs every request's URL at INFO).
install_scrubber(
    [
        "httpx",
        "httpcore",
        "aiosmtplib",
        *(module.__name__ for module in (api, clock, delivery, handlers, queue)),
    ]
)

notifications = ServiceDefinition(
    name="notifications",
    summary=(
        "PMO notices (at-risk, recovered, escalations, conflicts, allocation, lifecycle, "
        "reprioritization, PMO interventions, gate reviews, suggested lessons learned, the "
        "weekly portfolio digest) delivered by e-mail, signed webhook and Slack: once per "
        "subscription, retried, throttled."
    ),
    handlers={
        "project-registered": on_project_registered,
        "project-lifecycle-changed": on_project_lifecycle_changed,
        "portfolio-reprioritized": on_portfolio_reprioritized,
        "project-at-risk": per_batch(on_project_at_risk),
        "project-recovered": per_batch(on_project_recovered),
        "lessons-suggested": on_lessons_suggested,
        "gate-reviewed": on_gate_reviewed,
        "project-health-assessed": per_batch(on_project_health_assessed),
        "resource-allocated": per_batch(on_resource_allocated),
        "resource-conflict-resolved": on_resource_conflict_resolved,
        "allocation-changed": on_allocation_changed,
        "intervention-proposed": on_intervention,
        "intervention-accepted": on_intervention,
        "intervention-declined": on_intervention,
        "intervention-ended": on_intervention,
    },
    publishes=(),
    # Alerts have their own consumer group (pmo-notifications-alerts): at 500 status reports
    # a second the others' backlog (a project-health-assessed each) would hold them seconds.
    lanes={"alerts": ("project-at-risk", "project-recovered")},
    routers=(router,),
    workers=(deliver_notifications, run_clock),
)
