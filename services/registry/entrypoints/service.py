"""The registry service as the runtime starts it."""

from services.registry.entrypoints.api import router
from services.registry.service_layer.handlers import (
    on_intervention,
    on_project_health_assessed,
    on_project_registered,
    on_project_started,
    on_resource_allocated,
    on_resource_conflict_resolved,
    on_status_changed,
    on_strategy_changed,
)
from shared.events.contracts import (
    GateReviewed,
    LessonsSuggested,
    PortfolioReprioritized,
    ProjectLifecycleChanged,
    ProjectProgramChanged,
    ProjectRebaselined,
    ProjectRegistered,
)
from shared.messaging.consumer import per_batch
from shared.runtime import ServiceDefinition

registry = ServiceDefinition(
    name="registry",
    summary=(
        "The portfolio's projects on their stage models and in their programs, the "
        "strategy-ranked portfolio, every project's history and the portfolio status report."
    ),
    handlers={
        "project-started": on_project_started,
        # The hot path (every project's reports): a batch's reports at once.
        "status-changed": per_batch(on_status_changed),
        "strategy-changed": on_strategy_changed,
        "project-health-assessed": on_project_health_assessed,
        "resource-allocated": on_resource_allocated,
        "resource-conflict-resolved": on_resource_conflict_resolved,
        "intervention-proposed": on_intervention,
        "intervention-accepted": on_intervention,
        "intervention-declined": on_intervention,
        "intervention-ended": on_intervention,
        # Our own announcement, so a project proposed through the API releases its parked events.
        "project-registered": on_project_registered,
    },
    publishes=(
        ProjectRegistered,
        ProjectLifecycleChanged,
        PortfolioReprioritized,
        ProjectRebaselined,
        GateReviewed,
        LessonsSuggested,
        ProjectProgramChanged,
    ),
    routers=(router,),
)
