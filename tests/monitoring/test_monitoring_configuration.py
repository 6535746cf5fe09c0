"""Unusable health-rule settings stop monitoring at start, naming the variable to fix."""

from __future__ import annotations

import pytest

from services.monitoring.service_layer.configuration import default_thresholds
from shared.settings import ConfigurationError, Settings

pytestmark = pytest.mark.fast


def test_the_settings_give_the_default_thresholds() -> None:
    thresholds = default_thresholds(Settings(monitoring_spi_green_from=0.97))
    assert thresholds.spi_green_from == 0.97


def test_unusable_threshold_settings_are_refused_with_the_variable_named() -> None:
    with pytest.raises(ConfigurationError, match=r"PMO_MONITORING_\*: .*spi_amber_from"):
        default_thresholds(Settings(monitoring_spi_amber_from=0.99))
