"""The fault suite's workload: inbound events from a seed, and every outbound event they cause.

The workload is designed so that what the system must publish does not depend on timing:

- *health projects* get status reports that alternate red (schedule far behind: SPI(t) ≈ 0.6) and
  green (ahead of plan, cost on budget), so every report changes the health and causes exactly one
  `project-at-risk` or `project-recovered`; each report has its own `percent_complete`, which the
  event's metrics repeat, so each alert is known by its meaning;
- *conflict groups* put two projects on one person for the same weeks: a key project's request is
  sent (and decided) first, then an ordinary project's, which loses the conflict whatever the
  batches were: one `resource-allocated` each (granted, denied), one `resource-conflict-resolved`,
  and one `project-at-risk` (red, resource shortfall) for the loser;
- *terminated projects* are named by a `terminate` directive of one strategy change: one
  `project-lifecycle-changed` (active → terminated) each and one `portfolio-reprioritized`.

Every project is registered once (`project-registered`). Nothing else may be published but
monitoring's `project-health-assessed`, one per change of a project's assessment: how many depends
on the order in which status reports and allocation decisions meet, so those are checked for no
effect twice (the same assessment under two ids) and through monitoring's final state.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from shared.events import EventData
from shared.events.contracts import (
    Directive,
    ObjectiveContribution,
    ProjectStarted,
    ResourceRequested,
    StatusChanged,
    StrategicObjective,
    StrategyChanged,
)

SOURCE = "/faults/enterprise"
BUDGET = 1_000_000.0
PLAN_DAYS_BEFORE = 200
PLAN_DAYS_AFTER = 200
OBJECTIVE = "fault-resilience"

UNPREDICTED: frozenset[str] = frozenset({"project-health-assessed"})
"""Outbound events whose number the workload cannot know in advance: checked for no effect twice
(one content, two ids), and through monitoring's final state, not for exactly once."""

Meaning = tuple[Any, ...]
"""What an outbound event says, without its id: (event name, the fields that identify it)."""


def meaning_of(event_name: str, data: Mapping[str, Any]) -> Meaning:
    """The meaning of an outbound event, by which copies and second effects are told apart.

    Two records with one CloudEvents id are one event sent twice (at-least-once); two ids with
    one meaning are one effect applied twice.
    """
    if event_name == "project-health-assessed":
        # Published on every change of the assessment, including those allocation decisions
        # cause, whose number depends on arrival order: known by content, never predicted.
        metrics = data.get("metrics") or {}
        codes = tuple(sorted(reason["code"] for reason in data.get("reasons") or []))
        return (
            event_name,
            data["project_id"],
            data.get("health"),
            data.get("as_of"),
            metrics.get("percent_complete"),
            codes,
        )
    if event_name in ("project-at-risk", "project-recovered"):
        metrics = data.get("metrics") or {}
        return (event_name, data["project_id"], metrics.get("percent_complete"))
    if event_name == "project-lifecycle-changed":
        return (event_name, data["project_id"], data["from"], data["to"])
    if event_name == "portfolio-reprioritized":
        return (event_name, data["strategy_version"])
    if event_name in ("resource-allocated", "allocation-changed"):
        return (event_name, data["request_id"], data.get("status"), data.get("fte_granted"))
    if event_name == "resource-conflict-resolved":
        winners = tuple(sorted(w["request_id"] for w in data["winners"]))
        losers = tuple(sorted(loser["request_id"] for loser in data["losers"]))
        return (event_name, data.get("resource_id"), winners, losers)
    if "project_id" in data:
        return (event_name, data["project_id"])
    return (event_name, repr(sorted(data.items())))


def statement_of(data: Mapping[str, Any]) -> str | None:
    """What an outbound event says in words: a decision's reason or a conflict's rationale.

    Two events of one meaning with different statements are a restatement (allocation publishes
    a decision again when its reason changes while its people stay), not one effect twice.
    """
    statement = data.get("reason", data.get("rationale"))
    return statement if isinstance(statement, str) else None


@dataclass
class Workload:
    """The inbound events of one run, in phases, and what the system must do with them."""

    seed: int
    projects: list[ProjectStarted] = field(default_factory=list)
    reports: list[StatusChanged] = field(default_factory=list)
    first_requests: list[ResourceRequested] = field(default_factory=list)
    second_requests: list[ResourceRequested] = field(default_factory=list)
    strategy: StrategyChanged | None = None
    resources: list[dict[str, Any]] = field(default_factory=list)
    expected: set[Meaning] = field(default_factory=set)
    final_health: dict[str, str] = field(default_factory=dict)
    """Monitoring's health of each watched project once everything is processed."""
    final_lifecycle: dict[str, str] = field(default_factory=dict)
    """The registry's stage of each project once everything is processed."""

    @property
    def inbound(self) -> list[EventData]:
        """Every inbound event, in the order sent."""
        tail: list[EventData] = [self.strategy] if self.strategy else []
        return [
            *self.projects,
            *self.reports,
            *self.first_requests,
            *self.second_requests,
            *tail,
        ]


def _project(project_id: str, today: date, contribution: float, key: bool) -> ProjectStarted:
    return ProjectStarted(
        project_id=project_id,
        name=f"Fault suite {project_id}",
        business_unit="Resilience",
        manager="faults.pm@example.com",
        start_date=today - timedelta(days=PLAN_DAYS_BEFORE),
        planned_finish_date=today + timedelta(days=PLAN_DAYS_AFTER),
        budget=BUDGET,
        currency="EUR",
        objectives=[ObjectiveContribution(objective_id=OBJECTIVE, contribution=contribution)],
        key_project=key,
    )


def build_workload(
    seed: int,
    *,
    health_projects: int,
    max_reports: int,
    conflict_groups: int,
    terminated: int,
    today: date | None = None,
) -> Workload:
    """The workload of `seed`: the same events (ids aside) and expectations on every run.

    `max_reports` (2..13) bounds the status reports per health project; each gets 2..max.
    """
    if not 2 <= max_reports <= 13:
        raise ValueError("max_reports must be 2..13 (reports stay within the staleness window)")
    rng = random.Random(seed)
    today = today or date.today()
    run = f"F{seed}"
    work = Workload(seed=seed)
    plan_days = PLAN_DAYS_BEFORE + PLAN_DAYS_AFTER

    for n in range(health_projects):
        pid = f"{run}-H{n:04d}"
        work.projects.append(_project(pid, today, round(rng.uniform(0.3, 1.0), 3), key=False))
        work.expected.add(("project-registered", pid))
        work.final_lifecycle[pid] = "active"
        count = rng.randint(2, max_reports)
        for k in range(count):
            # All within the last 13 days: the staleness clock (14 days) never flags them.
            as_of = today - timedelta(days=count - 1 - k)
            planned = 100.0 * (plan_days - PLAN_DAYS_AFTER - (count - 1 - k)) / plan_days
            red = k % 2 == 0
            # Red: 60% of the planned progress (SPI(t) ≈ 0.6). Green: 5 points ahead, clearing
            # the hysteresis margin. The hundredths make each report's figure its own.
            percent = round((planned * 0.6 if red else planned + 5.0) + k / 100, 2)
            work.reports.append(
                StatusChanged(
                    project_id=pid,
                    as_of=as_of,
                    percent_complete=percent,
                    actual_cost=round(BUDGET * percent / 100, 2),  # CPI 1: only time matters
                )
            )
            name = "project-at-risk" if red else "project-recovered"
            work.expected.add((name, pid, percent))
        work.final_health[pid] = "red" if count % 2 else "green"
    # Reports of different projects interleave; each project's stay in order (same key).
    rng.shuffle(work.reports)
    work.reports.sort(key=lambda report: report.as_of)

    start, end = today + timedelta(days=14), today + timedelta(days=55)
    for g in range(conflict_groups):
        resource, skill = f"{run}-RES{g:03d}", f"fault-skill-{g}"
        work.resources.append(
            {"resource_id": resource, "name": f"Person {g}", "skills": [skill], "capacity_fte": 1}
        )
        winner, loser = f"{run}-K{g:03d}", f"{run}-B{g:03d}"
        work.projects.append(_project(winner, today, 0.5, key=True))
        work.projects.append(_project(loser, today, 0.9, key=False))
        won, lost = f"{run}-REQ-K{g:03d}", f"{run}-REQ-B{g:03d}"
        for request_id, pid, bucket in ((won, winner, work.first_requests), (lost, loser, None)):
            request = ResourceRequested(
                request_id=request_id,
                project_id=pid,
                skill=skill,
                fte=1.0,
                start=start,
                end=end,
                named_resource=resource,
            )
            (bucket if bucket is not None else work.second_requests).append(request)
        work.expected |= {
            ("project-registered", winner),
            ("project-registered", loser),
            ("resource-allocated", won, "granted", 1.0),
            ("resource-allocated", lost, "denied", 0.0),
            ("resource-conflict-resolved", resource, (won,), (lost,)),
            ("project-at-risk", loser, None),
        }
        work.final_health |= {winner: "green", loser: "red"}
        work.final_lifecycle |= {winner: "active", loser: "active"}

    doomed = [f"{run}-T{n:03d}" for n in range(terminated)]
    for pid in doomed:
        work.projects.append(_project(pid, today, 0.2, key=False))
        work.expected |= {
            ("project-registered", pid),
            ("project-lifecycle-changed", pid, "active", "terminated"),
        }
        work.final_lifecycle[pid] = "terminated"
    version = 1000 + seed % 1_000_000
    work.strategy = StrategyChanged(
        strategy_version=version,
        effective_date=today,
        objectives=[StrategicObjective(objective_id=OBJECTIVE, name="Resilience", weight=1.0)],
        directives=[
            Directive(action="terminate", project_id=pid, reason="Fault suite: stop it")
            for pid in doomed
        ],
    )
    work.expected.add(("portfolio-reprioritized", version))
    rng.shuffle(work.projects)
    return work
