"""The monitoring service as the runtime starts it."""

from services.monitoring.entrypoints.api import router
from services.monitoring.service_layer.clock import staleness_clock
from services.monitoring.service_layer.handlers import (
    on_allocation_changed,
    on_project_lifecycle_changed,
    on_project_rebaselined,
    on_project_started,
    on_resource_allocated,
    on_resource_conflict_resolved,
    on_status_changed,
)
from shared.events.contracts import ProjectAtRisk, ProjectHealthAssessed, ProjectRecovered
from shared.messaging.consumer import per_batch
from shared.runtime import ServiceDefinition

monitoring = ServiceDefinition(
    name="monitoring",
    summary=(
        "Earned-value health of every project (SPI(t), CPI, TCPI, milestones, staleness, "
        "resources); alerts when a project slips, and when it recovers."
    ),
    handlers={
        "project-started": on_project_started,
        # The hot path (a PMO's reports, an ERP's month end): a batch's reports at once.
        "status-changed": per_batch(on_status_changed),
        "project-lifecycle-changed": on_project_lifecycle_changed,
        "project-rebaselined": on_project_rebaselined,
        "resource-allocated": on_resource_allocated,
        "resource-conflict-resolved": on_resource_conflict_resolved,
        "allocation-changed": on_allocation_changed,
    },
    publishes=(ProjectAtRisk, ProjectRecovered, ProjectHealthAssessed),
    routers=(router,),
    workers=(staleness_clock,),
)
