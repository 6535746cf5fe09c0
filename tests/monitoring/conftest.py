"""The monitoring tests' running service, with the staleness clock kept quiet."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.monitoring.monitoring_support import QUIET_CLOCK_S, MonitoringProbe


@pytest.fixture
async def monitoring(
    start_service: ServiceStarter, settings: Settings
) -> AsyncIterator[MonitoringProbe]:
    probe = MonitoringProbe(
        await start_service("monitoring", monitoring_staleness_check_interval_s=QUIET_CLOCK_S),
        settings,
    )
    yield probe
    await probe.close()
