"""The allocation service as the runtime starts it."""

from services.allocation.entrypoints.api import router
from services.allocation.service_layer.handlers import (
    on_portfolio_reprioritized,
    on_project_lifecycle_changed,
    on_project_registered,
    on_resource_requested,
)
from services.allocation.service_layer.interventions import (
    intervention_clock,
    on_project_health_assessed,
)
from services.allocation.service_layer.resolution import resolution_worker
from shared.events.contracts import (
    AllocationChanged,
    InterventionAccepted,
    InterventionDeclined,
    InterventionEnded,
    InterventionProposed,
    ResourceAllocated,
    ResourceConflictResolved,
)
from shared.messaging.consumer import per_batch
from shared.runtime import ServiceDefinition

allocation = ServiceDefinition(
    name="allocation",
    summary=(
        "Capacity and resource requests; conflicts resolved by strategic priority; the PMO's "
        "experts proposed to key projects in trouble and on request."
    ),
    handlers={
        # The busiest topic (every project's requests): a batch's requests at once.
        "resource-requested": per_batch(on_resource_requested),
        "project-registered": on_project_registered,
        "project-lifecycle-changed": on_project_lifecycle_changed,
        "portfolio-reprioritized": on_portfolio_reprioritized,
        "project-health-assessed": on_project_health_assessed,
    },
    publishes=(
        ResourceAllocated,
        ResourceConflictResolved,
        AllocationChanged,
        InterventionProposed,
        InterventionAccepted,
        InterventionDeclined,
        InterventionEnded,
    ),
    routers=(router,),
    workers=(resolution_worker, intervention_clock),
)
