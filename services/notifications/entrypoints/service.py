"""The notifications service as the runtime starts it."""

from services.notifications.entrypoints.api import router
from services.notifications.service_layer.delivery import deliver_alerts
from services.notifications.service_layer.handlers import on_project_at_risk
from shared.runtime import ServiceDefinition

notifications = ServiceDefinition(
    name="notifications",
    summary="PMO alerts delivered to their channels, once each.",
    handlers={"project-at-risk": on_project_at_risk},
    publishes=(),
    routers=(router,),
    workers=(deliver_alerts,),
)
