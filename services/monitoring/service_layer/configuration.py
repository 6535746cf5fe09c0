"""The health rules in force: the settings' defaults, overridden by a PMO administrator's."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

from pydantic import ValidationError

from services.monitoring.adapters.repository import ThresholdRepository
from services.monitoring.adapters.tables import ThresholdOverrideRow
from services.monitoring.domain.health import HealthThresholds
from shared.health_rules import SETTINGS_PREFIX
from shared.settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from services.monitoring.service_layer.unit_of_work import MonitoringUnitOfWork


log = logging.getLogger(__name__)


def default_thresholds(settings: Settings) -> HealthThresholds:
    """The health rules the settings give (`PMO_MONITORING_*`)."""
    values = {
        name: getattr(settings, SETTINGS_PREFIX + name) for name in HealthThresholds.model_fields
    }
    try:
        return HealthThresholds.model_validate(values)
    except ValidationError as error:
        problems = "; ".join(f"{_variable(e['loc'])}: {e['msg']}" for e in error.errors())
        raise ConfigurationError(
            f"Monitoring's health thresholds are not usable: {problems}"
        ) from error


def _variable(location: tuple[int | str, ...]) -> str:
    prefix = f"PMO_{SETTINGS_PREFIX.upper()}"
    return prefix + str(location[0]).upper() if location else prefix + "*"


@dataclass(frozen=True)
class RulesInForce:
    thresholds: HealthThresholds
    override: ThresholdOverrideRow | None


async def rules_in_force(thresholds: ThresholdRepository, settings: Settings) -> RulesInForce:
    """The settings' thresholds with the administrator's override (in `thresholds`) on top.

    The override is merged field by field over the defaults, so a rule added in a later
    version takes its default until an administrator sets it.
    """
    defaults = default_thresholds(settings)
    override = await thresholds.override()
    if override is None:
        return RulesInForce(defaults, None)
    try:
        merged = HealthThresholds.model_validate({**defaults.model_dump(), **override.thresholds})
    except ValidationError:
        log.exception("the stored threshold override is not valid any more; using the defaults")
        return RulesInForce(defaults, None)
    return RulesInForce(merged, override)


async def set_thresholds(
    work: MonitoringUnitOfWork, thresholds: HealthThresholds, *, by: str, at: datetime
) -> None:
    """Make `thresholds` the administrators' rules (all of them, replacing any set before);
    they apply from the next assessment (SPEC: thresholds are configurable by the PMO)."""
    await work.thresholds.put(thresholds.model_dump(mode="json"), by=by, at=at)


async def drop_thresholds(work: MonitoringUnitOfWork) -> None:
    """Drop the administrators' rules: the settings' defaults apply from the next assessment."""
    await work.thresholds.drop()


@dataclass(frozen=True)
class Moment:
    """When an assessment happens: the clock time, and the calendar day staleness counts in."""

    now: datetime

    @functools.cached_property
    def today(self) -> date:
        """Worked out once per moment: a batch assesses every report at one moment."""
        return self.now.astimezone(UTC).date()

    @classmethod
    def current(cls) -> Moment:
        return cls(datetime.now(UTC))
