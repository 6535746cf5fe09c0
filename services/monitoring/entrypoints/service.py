"""The monitoring service as the runtime starts it."""

from services.monitoring.entrypoints.api import router
from services.monitoring.service_layer.handlers import on_project_started, on_status_changed
from shared.events.contracts import ProjectAtRisk
from shared.runtime import ServiceDefinition

monitoring = ServiceDefinition(
    name="monitoring",
    summary="Earned-value health of every project; alerts when a project slips.",
    handlers={
        "project-started": on_project_started,
        "status-changed": on_status_changed,
    },
    publishes=(ProjectAtRisk,),
    routers=(router,),
)
