"""The allocation service as the runtime starts it."""

from services.allocation.entrypoints.api import router
from services.allocation.service_layer.handlers import on_resource_requested
from shared.runtime import ServiceDefinition

allocation = ServiceDefinition(
    name="allocation",
    summary="Capacity and resource requests; conflicts resolved by strategic priority.",
    handlers={"resource-requested": on_resource_requested},
    publishes=(),
    routers=(router,),
)
