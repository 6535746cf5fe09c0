"""Unusable health-rule settings stop monitoring at start, naming the variable to fix."""

from __future__ import annotations

import pytest

from services.monitoring.service_layer.configuration import default_thresholds
from shared.health_rules import SETTINGS_PREFIX, HealthThresholds
from shared.settings import ConfigurationError, Settings, load_settings

pytestmark = pytest.mark.fast


def test_the_settings_give_the_default_thresholds() -> None:
    thresholds = default_thresholds(Settings(monitoring_spi_green_from=0.97))
    assert thresholds.spi_green_from == 0.97


@pytest.mark.parametrize("index", ["SPI", "CPI"])
def test_an_amber_bound_above_green_is_refused_when_the_settings_load_naming_both(
    index: str,
) -> None:
    # It was refused only when monitoring started, with a traceback naming PMO_MONITORING_*.
    with pytest.raises(
        ConfigurationError,
        match=rf"^PMO_MONITORING_{index}_AMBER_FROM: expected at most "
        rf"PMO_MONITORING_{index}_GREEN_FROM \(0.95\) \(got '0.99'\)$",
    ):
        load_settings(**{f"monitoring_{index.lower()}_amber_from": 0.99})
    # Equal bounds are allowed (no value is amber then), as the rule allows them.
    assert load_settings(monitoring_cpi_amber_from=0.95).monitoring_cpi_amber_from == 0.95


def test_every_rule_is_a_setting_with_the_rules_bounds_and_meaning() -> None:
    # One source: a rule added to HealthThresholds without its PMO_MONITORING_* setting, or a
    # setting whose bounds drift from the rule's, fails here (and default_thresholds would fail).
    for rule, field in HealthThresholds.model_fields.items():
        setting = Settings.model_fields[SETTINGS_PREFIX + rule]
        assert (setting.annotation, setting.metadata) == (field.annotation, field.metadata), rule
        assert field.description, rule
        assert setting.description == field.description, rule
        assert setting.default is not None, rule


def test_a_threshold_setting_out_of_the_rules_bounds_is_refused_when_the_settings_load() -> None:
    # The bound is the rule's (TCPI at most 10), stated once in shared/health_rules.py.
    with pytest.raises(ConfigurationError, match=r"PMO_MONITORING_TCPI_RED_ABOVE: .*10"):
        load_settings(monitoring_tcpi_red_above=11)
