"""Monitoring's service-layer rules on the fake unit of work (no broker, no database): the
staleness clock, reassessment (hysteresis state kept, one alert per episode, recovery),
lifecycle (on hold, closed) and the administrators' threshold override.
`test_monitoring_clock.py`, `test_monitoring_service.py` and `test_monitoring_api.py` prove
the events, the SQL and the routes end to end."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.monitoring.adapters.tables import MonitoredProjectRow
from services.monitoring.domain.health import HealthThresholds
from services.monitoring.service_layer.assessments import reassess
from services.monitoring.service_layer.clock import TRIGGER, flag_stale_projects
from services.monitoring.service_layer.configuration import (
    Moment,
    default_thresholds,
    drop_thresholds,
    rules_in_force,
    set_thresholds,
)
from services.monitoring.service_layer.handlers import (
    on_allocation_changed,
    on_project_lifecycle_changed,
    on_project_started,
    on_resource_allocated,
)
from shared.events.contracts import (
    AllocationChanged,
    AllocationSnapshot,
    ProjectAtRisk,
    ProjectHealthAssessed,
    ProjectLifecycleChanged,
    ProjectRecovered,
    ProjectStarted,
    ResourceAllocated,
)
from shared.messaging.consumer import EventMeta
from tests.fakes.monitoring import FakeMonitoringUnitOfWork, monitored_project

pytestmark = pytest.mark.fast

SILENT_SINCE = date(2026, 3, 1)
"""When the project in these tests was last expected to report."""


def day(days_after_silence: int) -> Moment:
    """Noon UTC, that many days after `SILENT_SINCE`."""
    return Moment(
        datetime.combine(SILENT_SINCE, datetime.min.time(), UTC)
        + timedelta(days=days_after_silence, hours=12)
    )


def silent(project_id: str = "PRJ-M1") -> tuple[FakeMonitoringUnitOfWork, MonitoredProjectRow]:
    project = monitored_project(project_id, expected_since=SILENT_SINCE)
    return FakeMonitoringUnitOfWork([project]), project


def meta(n: int = 1, *, time: datetime | None = None) -> EventMeta:
    return EventMeta(
        id=f"evt-{n}",
        source="/pmo/registry",
        type="test",
        time=time,
        topic="pmo.project-lifecycle-changed",
        partition=0,
        offset=n,
    )


def moved(project_id: str, from_stage: str, to_stage: str) -> ProjectLifecycleChanged:
    return ProjectLifecycleChanged.model_validate(
        {"project_id": project_id, "from": from_stage, "to": to_stage, "cause": "test"}
    )


def reported(project: MonitoredProjectRow, as_of: date, percent: float) -> None:
    """What a status report leaves on the project (`_take_report`), spending to plan (CPI 1)."""
    project.latest_as_of = as_of
    project.latest_percent_complete = percent
    project.latest_actual_cost = project.budget_at_completion * percent / 100
    project.status_expected_since = as_of


async def reassess_now(uow: FakeMonitoringUnitOfWork, project: MonitoredProjectRow) -> None:
    rules = await rules_in_force(uow.thresholds, uow.settings)
    assert project.latest_as_of is not None
    await reassess(
        uow,
        project,
        thresholds=rules.thresholds,
        moment=Moment(datetime.combine(project.latest_as_of, datetime.min.time(), UTC)),
        trigger="status-changed",
        event_id=None,
    )


async def test_the_clock_turns_a_silent_project_amber_once_and_never_claims_it_again() -> None:
    uow, project = silent()
    stale_after = default_thresholds(uow.settings).stale_after_days

    assert await flag_stale_projects(uow, day(stale_after)) == 0  # not more than the limit yet
    assert project.health == "green"
    assert uow.events == []

    assert await flag_stale_projects(uow, day(stale_after + 1)) == 1
    assert (project.health, [r["code"] for r in project.reasons]) == ("amber", ["stale_status"])
    assert project.stale_since == day(stale_after + 1).now
    [alert] = uow.published(ProjectAtRisk)
    assert (alert.project_id, alert.severity) == ("PRJ-M1", "amber")
    [view] = uow.published(ProjectHealthAssessed)
    assert (view.health, view.trigger) == ("amber", TRIGGER)
    [row] = uow.assessments.of("PRJ-M1")
    assert (row.trigger, row.health, row.alert) == (TRIGGER, "amber", "project-at-risk")

    # Still silent weeks later: the episode was reported, the clock claims it no more.
    assert await flag_stale_projects(uow, day(stale_after + 30)) == 0
    assert len(uow.events) == 2


async def test_only_the_clock_flags_silence_an_event_does_not() -> None:
    uow, project = silent()
    rules = await rules_in_force(uow.thresholds, uow.settings)
    await reassess(
        uow,
        project,
        thresholds=rules.thresholds,
        moment=day(60),
        trigger="resource-allocated",
        event_id="evt-1",
    )
    assert (project.health, project.stale_since, project.reasons) == ("green", None, [])
    assert uow.published(ProjectAtRisk) == []


async def test_a_report_after_the_flag_recovers_the_project() -> None:
    uow, project = silent()
    await flag_stale_projects(uow, day(30))
    reported(project, SILENT_SINCE + timedelta(days=31), percent=25.0)  # day 90 of 364: on plan
    await reassess_now(uow, project)
    assert (project.health, project.stale_since, project.at_risk_since) == ("green", None, None)
    [recovered] = uow.published(ProjectRecovered)
    assert recovered.project_id == "PRJ-M1"


async def test_hysteresis_state_is_kept_and_one_alert_per_episode_until_recovery() -> None:
    uow, project = silent()
    # The plan runs 2026-01-01 to 2026-12-31 (364 days), linear; SPI(t) = ES / AT.
    as_of = date(2026, 7, 1)  # day 181
    reported(project, as_of, percent=45.0)  # SPI(t) 0.905: amber
    await reassess_now(uow, project)
    assert (project.health, project.index_levels.get("schedule")) == ("amber", "amber")
    assert len(uow.published(ProjectAtRisk)) == 1

    reported(project, as_of + timedelta(days=1), percent=45.3)  # still amber: no news
    await reassess_now(uow, project)
    # SPI(t) 0.96 is above green (0.95) but not by the margin (0.02): held amber, no alert.
    reported(project, as_of + timedelta(days=2), percent=48.0)
    await reassess_now(uow, project)
    assert (project.health, project.index_levels.get("schedule")) == ("amber", "amber")
    assert len(uow.published(ProjectAtRisk)) == 1
    assert uow.published(ProjectRecovered) == []

    reported(project, as_of + timedelta(days=3), percent=50.5)  # SPI(t) 1.0: cleared
    await reassess_now(uow, project)
    assert project.health == "green"
    assert len(uow.published(ProjectRecovered)) == 1
    assert [row.alert for row in uow.assessments.of("PRJ-M1")] == [
        "project-at-risk",
        None,
        None,
        "project-recovered",
    ]


async def test_on_hold_stops_the_clock_and_resuming_restarts_it_from_today() -> None:
    uow, project = silent()
    await on_project_lifecycle_changed(moved("PRJ-M1", "active", "on_hold"), meta(), uow)
    assert (project.monitoring_state, project.lifecycle) == ("on_hold", "on_hold")
    assert await flag_stale_projects(uow, day(200)) == 0

    await on_project_lifecycle_changed(moved("PRJ-M1", "on_hold", "active"), meta(2), uow)
    assert project.monitoring_state == "active"
    today = Moment.current().today
    assert project.status_expected_since == max(SILENT_SINCE, today)
    stale_after = default_thresholds(uow.settings).stale_after_days
    resumed = Moment(datetime.combine(today, datetime.min.time(), UTC))
    assert await flag_stale_projects(uow, resumed) == 0
    assert await flag_stale_projects(uow, Moment(resumed.now + timedelta(stale_after + 1))) == 1


async def test_a_closed_project_leaves_the_clock_and_raises_nothing() -> None:
    uow, project = silent()
    await on_project_lifecycle_changed(moved("PRJ-M1", "active", "completed"), meta(), uow)
    assert project.monitoring_state == "closed"
    await on_project_lifecycle_changed(moved("PRJ-M1", "completed", "active"), meta(2), uow)
    assert (project.monitoring_state, project.lifecycle) == ("closed", "completed")  # it stays
    assert await flag_stale_projects(uow, day(365)) == 0

    reported(project, date(2026, 7, 1), percent=10.0)  # far behind: red
    await reassess_now(uow, project)
    assert project.health == "red"
    assert uow.published(ProjectAtRisk) == []


async def test_a_threshold_override_changes_the_verdict_and_dropping_it_restores_it() -> None:
    uow, project = silent()
    at = datetime(2026, 3, 1, tzinfo=UTC)
    relaxed = default_thresholds(uow.settings).model_dump() | {"stale_after_days": 60}
    await set_thresholds(uow, HealthThresholds.model_validate(relaxed), by="pmo-admin", at=at)
    assert (await rules_in_force(uow.thresholds, uow.settings)).thresholds.stale_after_days == 60
    assert await flag_stale_projects(uow, day(30)) == 0  # 30 days is not stale under 60
    assert project.health == "green"

    await drop_thresholds(uow)
    assert await flag_stale_projects(uow, day(30)) == 1  # the default (14 days) applies again
    assert project.health == "amber"


async def test_an_override_on_an_index_band_changes_the_verdict_of_the_same_report() -> None:
    uow, project = silent()
    reported(project, date(2026, 7, 1), percent=45.0)  # SPI(t) 0.905
    await reassess_now(uow, project)
    assert project.health == "amber"

    lenient = default_thresholds(uow.settings).model_dump() | {
        "spi_green_from": 0.90,
        "spi_amber_from": 0.85,
    }
    await set_thresholds(
        uow, HealthThresholds.model_validate(lenient), by="pmo-admin", at=datetime.now(UTC)
    )
    project.index_levels = {}  # as a re-baseline would: judge the same report afresh
    await reassess_now(uow, project)
    assert project.health == "green"


def allocated(project_id: str, granted: float, *, requested: float = 2.0) -> ResourceAllocated:
    return ResourceAllocated(
        project_id=project_id,
        request_id="REQ-1",
        skill="python",
        fte_granted=granted,
        fte_requested=requested,
        weeks=["2026-W10"],
        status="denied" if granted == 0 else "partial" if granted < requested else "granted",
        reason="test",
    )


async def test_a_shortfall_is_one_alert_and_a_later_full_grant_recovers_the_project() -> None:
    uow, project = silent()
    decided = datetime(2026, 3, 2, tzinfo=UTC)
    await on_resource_allocated(allocated("PRJ-M1", 0.0), meta(1, time=decided), uow)
    assert project.health == "red"  # nothing of 2 FTE granted: above the red share
    assert [r["code"] for r in project.reasons] == ["resource_shortfall"]
    assert len(uow.published(ProjectAtRisk)) == 1

    # The same decision brought again (another topic): kept once, no news.
    await on_resource_allocated(allocated("PRJ-M1", 0.0), meta(2, time=decided), uow)
    assert len(uow.published(ProjectAtRisk)) == 1

    change = AllocationChanged(
        project_id="PRJ-M1",
        request_id="REQ-1",
        before=AllocationSnapshot(fte_granted=0.0),
        after=AllocationSnapshot(fte_granted=2.0),
        cause="re-resolution",
    )
    await on_allocation_changed(change, meta(3, time=decided + timedelta(days=1)), uow)
    assert (project.health, project.reasons) == ("green", [])
    assert len(uow.published(ProjectRecovered)) == 1
    # An older change arriving late changes nothing.
    await on_allocation_changed(change, meta(4, time=decided - timedelta(days=1)), uow)
    assert uow.positions.rows["REQ-1"].event_id == "evt-3"


async def test_a_project_started_after_its_allocation_is_assessed_with_it_at_once() -> None:
    uow = FakeMonitoringUnitOfWork()
    await on_resource_allocated(allocated("PRJ-M2", 0.5), meta(1, time=datetime.now(UTC)), uow)
    assert uow.events == []  # no baseline yet: kept, assessed when it comes
    started = ProjectStarted(
        project_id="PRJ-M2",
        name="Project PRJ-M2",
        business_unit="Digital",
        manager="ada.lovelace@example.com",
        start_date=date(2026, 1, 1),
        planned_finish_date=date(2026, 12, 31),
        budget=100_000,
        currency="EUR",
    )
    await on_project_started(started, meta(2), uow)
    assert uow.released == ["PRJ-M2"]
    assert list(uow.baselines.kept) == [("PRJ-M2", 1)]
    project = await uow.projects.get("PRJ-M2")
    assert project is not None
    assert project.health == "red"  # 1.5 of 2 FTE short
    [alert] = uow.published(ProjectAtRisk)
    assert alert.reasons[0].code == "resource_shortfall"
