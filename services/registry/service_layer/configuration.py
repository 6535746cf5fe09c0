"""The registry's configuration (stage models, prioritization policy), from the instance's settings.

Handlers read it from their unit of work's settings, the HTTP API from the runtime's; the stage
model file is read once per path.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from services.registry.domain.portfolio import PrioritizationPolicy
from services.registry.domain.stage_models import (
    StageModelFileError,
    StageModels,
    parse_stage_models,
)
from shared.messaging.unit_of_work import UnitOfWork
from shared.runtime import ServiceRuntime
from shared.settings import ConfigurationError, Settings

SHIPPED_STAGE_MODELS = Path(__file__).resolve().parents[1] / "stage_models.json"


@dataclass(frozen=True)
class RegistryConfiguration:
    stage_models: StageModels
    policy: PrioritizationPolicy


@functools.lru_cache(maxsize=16)
def _stage_models(path: str) -> StageModels:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"PMO_REGISTRY_STAGE_MODELS_FILE: cannot read {path}: {error.strerror or error}"
        ) from error
    try:
        return parse_stage_models(text, path)
    except StageModelFileError as error:
        raise ConfigurationError(f"PMO_REGISTRY_STAGE_MODELS_FILE: {error}") from error


def configuration_from(settings: Settings) -> RegistryConfiguration:
    """Read the settings' stage model file (cached per path) and prioritization policy."""
    return RegistryConfiguration(
        stage_models=_stage_models(
            settings.registry_stage_models_file or str(SHIPPED_STAGE_MODELS)
        ),
        policy=PrioritizationPolicy(
            key_project_bonus=settings.registry_key_project_bonus,
            accelerate_top_share=settings.registry_accelerate_top_share,
            accelerate_min_score=settings.registry_accelerate_min_score,
            pause_bottom_share=settings.registry_pause_bottom_share,
            terminate_below_score=settings.registry_terminate_below_score,
        ),
    )


def check(runtime: ServiceRuntime) -> None:
    """Read the configuration as the service starts: a broken stage model file stops the start
    with the reason, rather than failing event after event."""
    configuration_from(runtime.settings)


def configuration_for(runtime: ServiceRuntime) -> RegistryConfiguration:
    return configuration_from(runtime.settings)


def configuration_of(uow: UnitOfWork) -> RegistryConfiguration:
    """The configuration of the instance whose unit of work this is."""
    return configuration_from(uow.settings)
