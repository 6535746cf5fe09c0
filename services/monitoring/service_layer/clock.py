"""The staleness clock: finds projects that have gone silent, which no incoming event can reveal.

Every replica runs it. Each round claims the due projects with `FOR UPDATE SKIP LOCKED` and, in
the same transaction, flags them stale, records the assessment and writes any alert to the
outbox: a project another replica has claimed is skipped, and once that replica commits the
project is no longer due. So one stale project raises one alert however many replicas run.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import NoOpTracer, Tracer
from prometheus_client import Counter

from services.monitoring.service_layer.assessments import reassess
from services.monitoring.service_layer.configuration import (
    Moment,
    default_thresholds,
    rules_in_force,
)
from services.monitoring.service_layer.unit_of_work import MonitoringUnitOfWork, monitoring_work
from shared.clock import run_every

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

TRIGGER = "staleness-clock"
CLAIM_BATCH = 100
"""Projects claimed per transaction; a round goes on until fewer are due."""


class ClockMetrics:
    def __init__(self, runtime: ServiceRuntime) -> None:
        registry = runtime.metrics.registry
        self.rounds = Counter(
            "pmo_monitoring_staleness_rounds",
            "Rounds of the staleness clock completed (failed ones included)",
            ["service"],
            registry=registry,
        ).labels(runtime.name)
        self.stale = Counter(
            "pmo_monitoring_stale_projects",
            "Projects this replica's clock found without a recent status report",
            ["service"],
            registry=registry,
        ).labels(runtime.name)


async def flag_stale_projects(
    work: MonitoringUnitOfWork,
    moment: Moment,
    *,
    limit: int = CLAIM_BATCH,
    tracer: Tracer | None = None,
) -> int:
    """Claim up to `limit` due projects (active, not flagged yet, last expected to report more
    than the rules' `stale_after_days` before `moment`) and assess them stale, in `work`
    (committed by the caller). Returns how many were claimed; `tracer` spans a round that
    found some (SPEC: a project without a status report for too long is amber)."""
    rules = await rules_in_force(work.thresholds, work.settings)
    cutoff = moment.today - timedelta(days=rules.thresholds.stale_after_days)
    # Outside any span: a round that finds nothing leaves no trace.
    projects = await work.projects.claim_stale(expected_before=cutoff, limit=limit)
    if not projects:
        return 0
    with (tracer or NoOpTracer()).start_as_current_span(
        "monitoring staleness clock", attributes={"pmo.stale_projects": len(projects)}
    ):
        for project in projects:
            await reassess(
                work,
                project,
                thresholds=rules.thresholds,
                moment=moment,
                trigger=TRIGGER,
                event_id=None,
                by_clock=True,
            )
    log.info(
        "%d project(s) without a status report for more than %d days",
        len(projects),
        rules.thresholds.stale_after_days,
        extra={"service": work.service},
    )
    return len(projects)


async def _flag_round(runtime: ServiceRuntime, moment: Moment) -> int:
    """One transaction of a round: `flag_stale_projects`, committed if it found any."""
    async with runtime.unit_of_work() as uow:
        found = await flag_stale_projects(monitoring_work(uow), moment, tracer=runtime.tracer)
        if found:
            await uow.commit()
        return found


async def _tick(runtime: ServiceRuntime, metrics: ClockMetrics) -> None:
    moment = Moment.current()
    while True:
        found = await _flag_round(runtime, moment)
        metrics.stale.inc(found)
        if found < CLAIM_BATCH:
            return


async def _run(runtime: ServiceRuntime) -> None:
    metrics = ClockMetrics(runtime)
    await run_every(
        runtime,
        runtime.settings.monitoring_staleness_check_interval_s,
        lambda: _tick(runtime, metrics),
        what="staleness clock",
        counted=metrics.rounds.inc,
    )


def staleness_clock(runtime: ServiceRuntime) -> Coroutine[Any, Any, None]:
    """The worker the runtime starts. Not a coroutine function on purpose: the runtime calls it
    synchronously at start, so unusable threshold settings stop the start with their names."""
    default_thresholds(runtime.settings)
    return _run(runtime)
