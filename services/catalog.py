"""The four services by name, for `pmo run` and the test harness."""

from services.allocation.entrypoints.service import allocation
from services.monitoring.entrypoints.service import monitoring
from services.notifications.entrypoints.service import notifications
from services.registry.entrypoints.service import registry
from shared.runtime import ServiceDefinition
from shared.settings import ServiceName

SERVICES: dict[ServiceName, ServiceDefinition] = {
    "registry": registry,
    "monitoring": monitoring,
    "allocation": allocation,
    "notifications": notifications,
}
