"""The registry service as the runtime starts it."""

from services.registry.entrypoints.api import router
from services.registry.service_layer.handlers import on_project_started, on_status_changed
from shared.events.contracts import ProjectRegistered
from shared.runtime import ServiceDefinition

registry = ServiceDefinition(
    name="registry",
    summary="The portfolio's projects, their lifecycle and where each stands.",
    handlers={
        "project-started": on_project_started,
        "status-changed": on_status_changed,
    },
    publishes=(ProjectRegistered,),
    routers=(router,),
)
