"""The allocation service as the runtime starts it."""

from services.allocation.entrypoints.api import router
from services.allocation.service_layer.handlers import (
    on_portfolio_reprioritized,
    on_project_lifecycle_changed,
    on_project_registered,
    on_resource_requested,
)
from services.allocation.service_layer.resolution import resolution_worker
from shared.events.contracts import AllocationChanged, ResourceAllocated, ResourceConflictResolved
from shared.runtime import ServiceDefinition

allocation = ServiceDefinition(
    name="allocation",
    summary="Capacity and resource requests; conflicts resolved by strategic priority.",
    handlers={
        "resource-requested": on_resource_requested,
        "project-registered": on_project_registered,
        "project-lifecycle-changed": on_project_lifecycle_changed,
        "portfolio-reprioritized": on_portfolio_reprioritized,
    },
    publishes=(ResourceAllocated, ResourceConflictResolved, AllocationChanged),
    routers=(router,),
    workers=(resolution_worker,),
)
