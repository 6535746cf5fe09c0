"""The clock: closes throttle windows, escalates long risks, sends the weekly portfolio digest.

Every duty is safe with several replicas: rows are claimed with `FOR UPDATE SKIP LOCKED` (held
deliveries, projects to escalate) or by a unique row inserted in the same transaction as the
deliveries it causes (`digest_run(slot)`), and deliveries are unique per (notice, subscription).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import jinja2
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from services.notifications.adapters.tables import (
    DeliveryRow,
    DigestRunRow,
    ProjectRow,
    ResourceRequestRow,
    SubscriptionRow,
)
from services.notifications.adapters.templates import TemplateCatalog
from services.notifications.adapters.wording import duration
from services.notifications.domain.portfolio import (
    NO_REPORT_YET,
    PortfolioLine,
    RequestOutcome,
    narrowed,
    portfolio_lines,
    portfolio_totals,
    shortfall,
)
from services.notifications.domain.subscriptions import SEVERITY_RANK, SUMMARY_TYPE, Notice
from services.notifications.domain.timing import ScheduleError, check_schedule, due_slot
from services.notifications.service_layer.delivery import worker_name
from services.notifications.service_layer.handlers import project_summary
from services.notifications.service_layer.metrics import notification_metrics
from services.notifications.service_layer.queue import queue_notice, subscriptions_wanting
from services.notifications.service_layer.unit_of_work import (
    NotificationsUnitOfWork,
    SqlNotificationsUnitOfWork,
)
from shared.events.cloudevents import TYPE_PREFIX
from shared.events.contracts import CLOSED_STAGES
from shared.rounds import repeat_rounds

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

FINISHED_LIFECYCLES = tuple(sorted(CLOSED_STAGES))


class NotificationClock:
    """One replica's clock; what it does at each tick is idempotent across replicas."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.owner = worker_name()
        self.templates = TemplateCatalog(
            self.settings.registry_public_url, dashboard_url=self.settings.dashboard_public_url
        )
        self.metrics = notification_metrics(runtime.metrics)
        self.digest_enabled = True
        try:
            check_schedule(self.settings.digest_schedule, self.settings.digest_timezone)
        except ScheduleError as error:
            # The other duties still run; the operator sees why no digest goes out.
            self.digest_enabled = False
            log.error("portfolio digest disabled: %s", error, extra={"service": runtime.name})

    async def run(self) -> None:
        """Tick every `notification_clock_interval_s` seconds until the service stops."""
        await repeat_rounds(
            lambda: self.tick(datetime.now(UTC)),
            what="notification clock tick",
            service=self.runtime.name,
            pause=self.settings.notification_clock_interval_s,
        )

    async def tick(self, now: datetime) -> None:
        duties = [self.close_throttle_windows, self.escalate, self.send_due_digest]
        for duty in duties:
            try:
                await duty(now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("clock duty %s failed", duty.__name__, extra={"service": "clock"})
        try:
            await self.count_deliveries()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("counting deliveries failed", extra={"service": self.runtime.name})

    # --- throttling -------------------------------------------------------------------------

    async def close_throttle_windows(self, now: datetime) -> int:
        """Send one summary per ended window of held deliveries; returns the summaries queued."""
        uow = self.runtime.unit_of_work()
        async with uow:
            summaries = await close_throttle_windows(
                SqlNotificationsUnitOfWork(uow), now, self.templates
            )
            await uow.commit()
        return summaries

    # --- escalation -------------------------------------------------------------------------

    async def escalate(self, now: datetime) -> int:
        """Escalate each project at risk for longer than the setting, once per episode."""
        uow = self.runtime.unit_of_work()
        async with uow:
            escalated = await escalate(SqlNotificationsUnitOfWork(uow), now)
            await uow.commit()
        for project_id, at_risk in escalated:
            log.info(
                "project %s escalated after %s at risk",
                project_id,
                duration(at_risk.total_seconds()),
                extra={"service": self.runtime.name},
            )
        if escalated:
            self.metrics.escalations.inc(len(escalated))
        return len(escalated)

    # --- weekly portfolio digest ------------------------------------------------------------

    async def send_due_digest(self, now: datetime) -> datetime | None:
        """Queue the digest of the slot due now, if no replica did; returns the slot if we did."""
        if not self.digest_enabled:
            return None
        slot = due_slot(
            self.settings.digest_schedule,
            self.settings.digest_timezone,
            now=now,
            catch_up=self.settings.digest_catch_up,
        )
        if slot is None:
            return None
        return await self.send_digest(slot)

    async def send_digest(self, slot: datetime) -> datetime | None:
        """Claim `slot` and queue its digest in one transaction: one digest per slot, whoever
        gets there first (a second replica's insert waits for the first, then does nothing)."""
        async with self.runtime.sessions() as session, session.begin():
            claimed = (
                await session.exec(
                    insert(DigestRunRow)
                    .values(slot=slot, claimed_by=self.owner, projects=0, deliveries=0)
                    .on_conflict_do_nothing(index_elements=["slot"])
                    .returning(col(DigestRunRow.slot))
                )
            ).first()
            if claimed is None:
                return None
            lines = await current_portfolio(session)
            notice = Notice(
                "portfolio-digest",
                "info",
                tuple(line.project_id for line in lines),
                tuple(sorted({line.business_unit for line in lines})),
            )
            label = slot.strftime("%a %d %b %Y %H:%M %Z")

            def context_for(subscription: SubscriptionRow) -> dict[str, Any]:
                mine = narrowed(
                    lines,
                    project_id=subscription.project_id,
                    business_unit=subscription.business_unit,
                )
                return {
                    "digest": {
                        "slot": slot.isoformat(),
                        "slot_label": label,
                        "time_zone": self.settings.digest_timezone,
                        "lines": [line.as_context() for line in mine],
                        "totals": portfolio_totals(mine),
                    }
                }

            queued = await queue_notice(
                session,
                notice,
                settings=self.settings,
                event_id=f"digest:{slot.isoformat()}",
                event_type=TYPE_PREFIX + "portfolio-digest",
                context_for=context_for,
                subscriptions=await subscriptions_wanting(session, notice),
            )
            run = await session.get(DigestRunRow, slot)
            assert run is not None
            run.projects = len(lines)
            run.deliveries = queued
            session.add(run)
        self.metrics.digests_sent.inc()
        log.info(
            "portfolio digest of %s queued: %d projects, %d deliveries",
            slot.isoformat(),
            len(lines),
            queued,
            extra={"service": self.runtime.name},
        )
        return slot

    # --- gauges ---------------------------------------------------------------------------

    async def count_deliveries(self) -> None:
        async with self.runtime.sessions() as session:
            counts = (
                await session.exec(
                    select(DeliveryRow.state, func.count()).group_by(col(DeliveryRow.state))
                )
            ).all()
        found = dict(counts)
        for state in ("pending", "delivered", "dead", "held", "summarized", "cancelled"):
            self.metrics.deliveries.labels(state).set(found.get(state, 0))


async def close_throttle_windows(
    uow: NotificationsUnitOfWork, now: datetime, templates: TemplateCatalog
) -> int:
    """Summarize each ended throttle window: the deliveries held for one (subscription,
    throttle key) whose window ended by `now` become `summarized`, and one summary notice
    (`SUMMARY_TYPE`, the worst severity among them, each held notice's title and reasons) is
    queued for that subscription; a deleted subscription's held deliveries are `cancelled`.
    Returns the summaries queued (a window summarized before queues none again)."""
    groups: dict[tuple[Any, str], list[DeliveryRow]] = defaultdict(list)
    for delivery in await uow.deliveries.held_until(now):
        groups[(delivery.subscription_id, delivery.throttle_key)].append(delivery)
    summaries = 0
    for members in groups.values():
        summaries += await _summarize(uow, members, templates)
    return summaries


async def _summarize(
    uow: NotificationsUnitOfWork, members: list[DeliveryRow], templates: TemplateCatalog
) -> int:
    first = members[0]
    subscription = (
        await uow.subscriptions.get(first.subscription_id) if first.subscription_id else None
    )
    if subscription is None:
        for member in members:
            member.state = "cancelled"
            member.last_error = "its subscription was deleted"
        return 0
    window = (
        (first.held_until - first.created_at)
        if first.held_until and first.created_at
        else uow.settings.notification_throttle_window
    )
    items = []
    for member in members:
        notice_type = member.event_type.removeprefix(TYPE_PREFIX)
        try:
            title = templates.title(member.channel, notice_type, member.context)
        except jinja2.TemplateError:
            title = notice_type
        event = member.context.get("event") or {}
        items.append(
            {
                "event_type": member.event_type,
                "time": member.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
                if member.created_at
                else "",
                "title": title,
                "severity": member.severity,
                # The reasons of an at-risk notice, so every channel's summary names them
                # (a second alert in a window often adds one, e.g. cost after schedule).
                "reasons": [
                    reason.get("code")
                    for reason in (event.get("data") or {}).get("reasons") or []
                    if isinstance(reason, dict)
                ],
                "delivery_id": member.id,
            }
        )
    severity = max((m.severity or "info" for m in members), key=lambda s: SEVERITY_RANK[s])
    context = {
        "project_id": first.project_id,
        "project": first.context.get("project"),
        "summary": {
            "count": len(members),
            "window_s": window.total_seconds(),
            "window_minutes": max(round(window.total_seconds() / 60), 1),
            "items": items,
        },
    }
    event_id = f"summary:{first.throttle_key}:{first.id}"
    queued = await queue_notice(
        uow,
        Notice(SUMMARY_TYPE, severity),
        settings=uow.settings,
        event_id=event_id,
        event_type=TYPE_PREFIX + SUMMARY_TYPE,
        project_id=first.project_id,
        context_for=lambda _: context,
        subscriptions=[subscription],
    )
    summary_id = await uow.deliveries.id_of(event_id, subscription.id)
    for member in members:
        member.state = "summarized"
        member.summary_id = summary_id
    return queued


async def escalate(uow: NotificationsUnitOfWork, now: datetime) -> list[tuple[str, timedelta]]:
    """Escalate each running project at risk for `notification_escalate_after` or longer, once
    per episode (an episode is named by its `at_risk_since`; `escalated_at` is set): a
    `project-escalated` notice of the project's severity (amber if it has none) goes to the
    subscriptions that want it, escalation targets included. At most 100 per call, the
    longest at risk first. Returns (project id, time at risk) of each one escalated."""
    after = uow.settings.notification_escalate_after
    escalated: list[tuple[str, timedelta]] = []
    for project in await uow.projects.to_escalate(
        now - after, finished=FINISHED_LIFECYCLES, limit=100
    ):
        assert project.at_risk_since is not None
        project.escalated_at = now
        at_risk = now - project.at_risk_since
        context = {
            "project_id": project.project_id,
            "project": project_summary(project),
            "escalation": {
                "at_risk_since": project.at_risk_since.isoformat(timespec="minutes"),
                "at_risk_s": at_risk.total_seconds(),
                "after_s": after.total_seconds(),
                # Kept for webhook receivers reading the first version's fields.
                "days_at_risk": round(at_risk.total_seconds() / 86400, 1),
                "after_days": round(after.total_seconds() / 86400, 1),
                "severity": project.health,
                "reasons": project.reasons,
                "metrics": project.metrics,
            },
        }
        await queue_notice(
            uow,
            Notice(
                "project-escalated",
                project.health if project.health in SEVERITY_RANK else "amber",
                (project.project_id,),
                (project.business_unit,),
            ),
            settings=uow.settings,
            # One escalation per episode: the episode is named by its start.
            event_id=f"escalation:{project.project_id}:{project.at_risk_since.isoformat()}",
            event_type=TYPE_PREFIX + "project-escalated",
            project_id=project.project_id,
            context_for=lambda _, context=context: context,  # type: ignore[misc]
        )
        escalated.append((project.project_id, at_risk))
    return escalated


async def current_portfolio(session: AsyncSession) -> list[PortfolioLine]:
    """The digest's lines as of now: running projects with monitoring's newest assessment
    (health, SPI, SPI(t), CPI), rank and shortfall."""
    projects = (await session.exec(select(ProjectRow))).all()
    requests = (await session.exec(select(ResourceRequestRow))).all()
    by_project: dict[str, list[RequestOutcome]] = defaultdict(list)
    for request in requests:
        by_project[request.project_id].append(
            RequestOutcome(request.fte_requested, request.fte_granted)
        )
    return portfolio_lines(
        PortfolioLine(
            project_id=project.project_id,
            name=project.name,
            business_unit=project.business_unit,
            lifecycle=project.lifecycle,
            health=project.health if project.health_assessed_at is not None else NO_REPORT_YET,
            spi=_figure(project.metrics.get("spi")),
            cpi=_figure(project.metrics.get("cpi")),
            rank=project.rank,
            shortfall_fte=shortfall(by_project.get(project.project_id, [])),
            spi_t=_figure(project.metrics.get("spi_t")),
            health_as_of=project.health_as_of.isoformat() if project.health_as_of else None,
        )
        for project in projects
    )


def _figure(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


async def run_clock(runtime: ServiceRuntime) -> None:
    """The clock worker: runs beside the consumer for as long as the service does."""
    await NotificationClock(runtime).run()
