"""The four services by name, for `pmo run` and the test harness; each imported when first asked.

`pmo run monitoring` needs only monitoring's code: importing all four (the allocation solver's
numerical libraries among them) cost each service process seconds of start-up and tens of MB of
memory it never used. `SERVICES[name]` imports that service's module on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from shared.settings import SERVICE_NAMES, ServiceName

if TYPE_CHECKING:
    from shared.runtime import ServiceDefinition


class _Catalog(Mapping[ServiceName, "ServiceDefinition"]):
    """Service name → its definition (`services.<name>.entrypoints.service.<name>`)."""

    def __getitem__(self, name: ServiceName) -> ServiceDefinition:
        if name not in SERVICE_NAMES:
            raise KeyError(name)
        module = importlib.import_module(f"services.{name}.entrypoints.service")
        definition: ServiceDefinition = getattr(module, name)
        return definition

    def __iter__(self) -> Iterator[ServiceName]:
        return iter(SERVICE_NAMES)

    def __len__(self) -> int:
        return len(SERVICE_NAMES)

    def __contains__(self, name: object) -> bool:
        return name in SERVICE_NAMES


SERVICES: Mapping[ServiceName, ServiceDefinition] = _Catalog()
