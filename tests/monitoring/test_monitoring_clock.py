"""The staleness clock: several replicas, one alert per stale project; a report ends it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.monitoring.adapters.repository import claim_stale_projects
from services.monitoring.adapters.tables import MonitoredProjectRow
from shared.database import create_engine, session_factory
from shared.settings import Settings
from tests.conftest import ServiceStarter
from tests.harness import Enterprise, RunningService, eventually
from tests.monitoring.monitoring_support import MonitoringProbe, by_project, charter, report

pytestmark = pytest.mark.e2e

ROUNDS = "pmo_monitoring_staleness_rounds_total"


def rounds(replica: RunningService) -> float:
    value = replica.runtime.metrics.registry.get_sample_value(ROUNDS, {"service": "monitoring"})
    return value or 0.0


async def more_rounds(replicas: Sequence[RunningService], count: int) -> None:
    """Wait until every replica's clock has gone round `count` more times."""
    targets = [rounds(replica) + count for replica in replicas]

    async def done() -> bool:
        return all(rounds(r) >= target for r, target in zip(replicas, targets, strict=True))

    await eventually(done, timeout=60, what=f"{count} more clock rounds on every replica")


async def test_two_replicas_raise_one_alert_for_a_stale_project(
    start_service: ServiceStarter, enterprise: Enterprise, settings: Settings
) -> None:
    # Stale after 10 days here (default 14): the runtime's settings reach the clock.
    replicas = await asyncio.gather(
        *(
            start_service(
                "monitoring",
                monitoring_staleness_check_interval_s=0.2,
                monitoring_stale_after_days=10,
            )
            for _ in range(2)
        )
    )
    monitoring = MonitoringProbe(replicas[0], settings)
    try:
        today = datetime.now(UTC).date()
        start = today - timedelta(days=60)
        finish = start + timedelta(days=364)

        def on_plan(project_id: str, days_ago: int) -> dict[str, object]:
            elapsed = 60 - days_ago
            percent = 100 * elapsed / 364  # SPI(t) = 1
            return report(project_id, today - timedelta(days=days_ago), percent, 1000 * percent)

        for project_id in ("SILENT", "CHATTY"):
            await enterprise.send(
                "project-started", charter(project_id, start=start, finish=finish)
            )
        # SILENT last reported 12 days ago (more than 10): stale. CHATTY 3 days ago: not.
        await enterprise.send("status-changed", on_plan("SILENT", 12))
        await enterprise.send("status-changed", on_plan("CHATTY", 3))

        history = await monitoring.assessed("SILENT", 2)
        assert [(e["trigger"], e["health"], e["alert"]) for e in history] == [
            ("status-changed", "green", None),
            ("staleness-clock", "amber", "project-at-risk"),
        ]
        # Both clocks keep going round; neither raises the alert again.
        await more_rounds(replicas, 5)
        await monitoring.settled()
        alerts = by_project(await monitoring.published("project-at-risk", at_least=1))
        assert list(alerts) == ["SILENT"]
        (alert,) = alerts["SILENT"]
        assert alert["severity"] == "amber"
        (reason,) = alert["reasons"]
        assert reason["code"] == "stale_status"
        assert reason["numbers"] == {"days_without_report": 12, "stale_after_days": 10}
        assert len(await monitoring.history("SILENT")) == 2
        assert len(await monitoring.history("CHATTY")) == 1
        silent = await monitoring.health("SILENT")
        assert silent is not None
        assert silent["stale_since"] is not None

        # A report today ends the silence: recovered, once.
        await enterprise.send("status-changed", on_plan("SILENT", 0))
        history = await monitoring.assessed("SILENT", 3)
        assert (history[-1]["health"], history[-1]["alert"]) == ("green", "project-recovered")
        await more_rounds(replicas, 3)
        await monitoring.settled()
        assert len(await monitoring.published("project-at-risk", at_least=1)) == 1
        assert [e["project_id"] for e in await monitoring.published("project-recovered")] == [
            "SILENT"
        ]
    finally:
        await monitoring.close()


async def test_a_claimed_stale_project_is_skipped_by_other_clocks_then_no_longer_due(
    settings: Settings,
) -> None:
    engine = create_engine(settings.database_url_for("monitoring"), "monitoring", application="t")
    sessions = session_factory(engine)
    today = datetime.now(UTC).date()
    cutoff = today - timedelta(days=14)
    try:
        async with sessions() as session, session.begin():
            session.add(
                MonitoredProjectRow(
                    project_id="QUIET",
                    name="Quiet",
                    budget_at_completion=1.0,
                    start_date=today - timedelta(days=100),
                    planned_finish_date=today + timedelta(days=100),
                    status_expected_since=today - timedelta(days=30),
                )
            )
        async with sessions() as first, sessions() as second:
            async with first.begin():
                claimed = await claim_stale_projects(first, expected_before=cutoff, limit=10)
                assert [p.project_id for p in claimed] == ["QUIET"]
                # Another replica's clock meanwhile: skips the locked row, does not wait for it.
                async with second.begin():
                    others = await asyncio.wait_for(
                        claim_stale_projects(second, expected_before=cutoff, limit=10), 10
                    )
                    assert others == []
                claimed[0].stale_since = datetime.now(UTC)
            # Committed: the row is free again, but flagged, so no longer due.
            async with second.begin():
                assert await claim_stale_projects(second, expected_before=cutoff, limit=10) == []
    finally:
        await engine.dispose()
