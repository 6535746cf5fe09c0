"""The health rules' thresholds: defined once, read from the settings, applied by monitoring.

`HealthThresholds` states each rule's meaning and bounds; the settings declare one
`PMO_MONITORING_*` variable a rule with `threshold_setting` (which copies the rule's field and
adds the default), and monitoring's rules and its `PUT /thresholds` validate with the same class,
so a bound or a meaning is never written twice.
"""

from __future__ import annotations

import copy
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

SETTINGS_PREFIX = "monitoring_"
"""A rule `x` is the setting `monitoring_x`, i.e. the variable `PMO_MONITORING_X`."""


class HealthThresholds(BaseModel):
    """The rules' numbers; defaults come from the settings, a PMO administrator may override."""

    # (Not in the docstring, which is the API's schema description:) construction raises
    # pydantic's ValidationError for a value out of its bounds, or amber above green.
    # Strict: an administrator's "0.9" or true is refused, not guessed at (issue 15, item 11).
    # The settings read environment strings, so they copy the fields but not this strictness.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        allow_inf_nan=False,
        strict=True,
        use_attribute_docstrings=True,
    )

    spi_green_from: float = Field(gt=0, le=10)
    """SPI(t) (or SPI where SPI(t) is undefined) at or above this is green."""
    spi_amber_from: float = Field(gt=0, le=10)
    """SPI(t) (or SPI) at or above this, below green, is amber; below it is red."""
    cpi_green_from: float = Field(gt=0, le=10)
    """CPI at or above this is green."""
    cpi_amber_from: float = Field(gt=0, le=10)
    """CPI at or above this, below green, is amber; below it is red."""
    tcpi_red_above: float = Field(gt=0, le=10)
    """TCPI above this is red: the rest of the work needs an efficiency the project lacks."""
    hysteresis_margin: float = Field(ge=0, le=1)
    """How far an index must clear a threshold to leave a worse level (no flapping)."""
    stale_after_days: int = Field(ge=1, le=3650)
    """A project without a status report for more than this many days is stale (amber)."""
    milestone_red_after_days: int = Field(ge=0, le=3650)
    """A milestone overdue by more than this many days is red (any overdue one is amber)."""
    resource_shortfall_red_from: float = Field(gt=0, le=1)
    """Share of the project's requested FTE not granted from which a shortfall is red."""

    @model_validator(mode="after")
    def _amber_below_green(self) -> Self:
        for index in AMBER_BELOW_GREEN:
            green, amber = (
                getattr(self, f"{index}_green_from"),
                getattr(self, f"{index}_amber_from"),
            )
            if amber > green:
                raise ValueError(
                    f"{index}_amber_from ({amber}) must not be above {index}_green_from ({green})"
                )
        return self


AMBER_BELOW_GREEN = ("spi", "cpi")
"""The indices whose amber bound must not be above their green bound (else no value is amber)."""


def threshold_setting(rule: str, default: float) -> Any:
    """The settings' field for `rule`: the rule's type, bounds and description, with `default`.

    Typed `Any` as pydantic's `Field()` is, so that it can stand as a settings attribute's
    default. Raises KeyError for a name that is not a rule (caught when the settings load).
    """
    field = copy.deepcopy(HealthThresholds.model_fields[rule])  # nothing shared with the rule
    field.default = default
    return field
