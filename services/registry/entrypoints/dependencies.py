"""The registry's own route dependencies: its configuration and the stage models in force."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.registry.domain.stage_models import StageModels
from services.registry.service_layer.configuration import (
    RegistryConfiguration,
    configuration_for,
)
from shared.dependencies import RuntimeDep


def _configuration(runtime: RuntimeDep) -> RegistryConfiguration:
    return configuration_for(runtime)


ConfigurationDep = Annotated[RegistryConfiguration, Depends(_configuration)]
"""The registry's configuration (strategy, stage models) read from the running settings."""


def _stage_models(configuration: ConfigurationDep) -> StageModels:
    return configuration.stage_models


StageModelsDep = Annotated[StageModels, Depends(_stage_models)]
"""The stage models (methodologies) in force."""
