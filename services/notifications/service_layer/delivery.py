"""The delivery worker: claims due deliveries with a lease, sends them concurrently, records.

No transaction or row lock is held while a receiver is called. A claim is a short transaction
that sets `locked_until` (the lease) on a few due rows (`SKIP LOCKED`, so replicas share the
work) and opens an attempt row; the sends then run concurrently, each bounded by a timeout; each
result is recorded in its own short transaction. A worker that dies mid-send leaves its lease to
expire, and the delivery is claimed again (the abandoned attempt is marked so). Retries are rows
with a `next_attempt_at`, so they survive a restart of the service.

An alert is leased at once: the consumer's transaction that queues its deliveries also leases
them to this process's worker, by the same rules as a claim (`lease_at_once`,
`lease_deliveries`), and the worker is handed them in memory when that transaction commits, so
it sends without a claim transaction of its own (about 5 round trips, on the event loop the
alerts' batches share). A transaction that rolls back hands nothing over (its leases are undone
with it); a process that dies after the commit leaves the leases to expire, when any replica's
claim takes them: at least once, as for a claim. Only a worker running in this process is
leased to, and never more than its free sending slots; what is left stays due for the next claim.

Throttling is decided here, when a delivery is first claimed (or leased at once): if the same
subscription already had a message about the same project within the throttle window, the
delivery is held until the window ends and the clock sends one summary of everything held.

A receiver that refuses for good (a redirect, 401/403/404/410, a mail server's "no such
mailbox") disables its subscription with the reason and the time, in the transaction that
records the attempt, and queues a `subscription-disabled` notice to the administrators who
subscribed to it; only an administrator enables it again.

An outcome that cannot be recorded (the database went away after the receiver answered) is
retried until the lease would run out: the delivery is sent again only when the database stays
away longer than that, the one repeat no sender can rule out (a receiver drops it by its
`X-PMO-Delivery` id).

The worker's rules (`claim_due` and `lease_deliveries`, `held_back`, `record_outcome`,
`disable_subscription`, `release_lease`) read and change rows only through notifications'
repositories, in a `NotificationsUnitOfWork`: the worker's own (SQL) one, or the tests' fake
one; the sending itself (HTTP, SMTP) stays in `DeliveryWorker`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import jinja2
from opentelemetry.propagate import inject
from opentelemetry.trace import SpanKind, Status, StatusCode
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import AsyncRetrying, RetryCallState, stop_after_delay, wait_exponential

from services.notifications.adapters.channels import (
    DeliveryFailed,
    email_message,
    post_signed_webhook,
    post_slack,
    send_email,
    slack_payload,
)
from services.notifications.adapters.repository import DELIVERIES_QUEUED
from services.notifications.adapters.tables import DeliveryRow, SubscriptionRow
from services.notifications.adapters.templates import RenderedMessage, TemplateCatalog
from services.notifications.adapters.wording import count
from services.notifications.domain.alerts import retry_delay
from services.notifications.domain.redaction import masked_url, remember_secrets, scrubbed
from services.notifications.domain.subscriptions import (
    SUBSCRIPTION_DISABLED,
    UNTHROTTLED,
    Notice,
)
from services.notifications.domain.timing import throttle_window
from services.notifications.service_layer.metrics import notification_metrics
from services.notifications.service_layer.queue import queue_notice
from services.notifications.service_layer.unit_of_work import (
    NotificationsUnitOfWork,
    SqlNotificationsUnitOfWork,
)
from shared.messaging.outbox import ALERT_EVENTS
from shared.messaging.unit_of_work import UnitOfWork
from shared.rounds import repeat_rounds
from shared.telemetry import context_from_traceparent

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

UNTHROTTLED_TYPES = tuple(f"pmo.{name}" for name in sorted(UNTHROTTLED))


def worker_name() -> str:
    """Who holds a lease: host, process and a random part (two workers in one process)."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to this worker, with what sending it needs."""

    id: int
    attempt_id: int
    attempt: int
    event_id: str
    event_type: str
    channel: str
    project_id: str | None
    context: dict[str, Any]
    subscription_id: uuid.UUID
    subscription_name: str
    recipient: str
    secret: str | None
    from_environment: bool
    traceparent: str | None
    tracestate: str | None

    @property
    def notice_type(self) -> str:
        return self.event_type.removeprefix("pmo.")


@dataclass(frozen=True)
class AttemptResult:
    delivered: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False
    no_channel: bool = False
    gone: str | None = None
    """Why the receiver refuses the subscription for good: it is disabled."""


@dataclass(frozen=True)
class Recorded:
    """What recording an attempt did: the delivery's state, and the subscription disabled."""

    state: str
    disabled: str | None = None
    """The subscription's name, when this attempt disabled it."""


class SendingSlots:
    """A `take_slot` (see `lease_deliveries`) on a worker's free sending slots: each slot it
    gives is the worker's until the claim or lease at once that took it ends."""

    def __init__(self, worker: DeliveryWorker) -> None:
        self.worker = worker
        self.taken = 0
        self.refused = False
        """Whether a delivery was left due for want of a slot."""

    def __call__(self) -> bool:
        if self.worker.free_slots() <= 0:
            self.refused = True
            return False
        self.taken += 1
        self.worker._reserved += 1
        return True


class DeliveryWorker:
    """One replica's sender; several replicas share the deliveries through leases."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.owner = worker_name()
        self.templates = TemplateCatalog(
            self.settings.registry_public_url, dashboard_url=self.settings.dashboard_public_url
        )
        timeout = self.settings.notification_send_timeout_s
        # An attempt (SMTP is several round trips, each with the timeout) ends well within it.
        self.lease = timedelta(seconds=max(60.0, timeout * 6))
        self.attempt_deadline_s = self.lease.total_seconds() * 0.8
        self.metrics = notification_metrics(runtime.metrics)
        self.in_flight: dict[int, asyncio.Task[None]] = {}
        self.client: httpx.AsyncClient | None = None
        # Set after each commit in this process that left deliveries due (queued and not
        # leased at once): the next round starts at once instead of after the poll interval,
        # which only catches what other replicas queued and retries coming due. Other commits
        # (notifications commits hundreds of batches a second that queue nothing) leave it be:
        # each round is a claim transaction on this process's event loop, ahead of the alert's.
        self._wake = asyncio.Event()
        self._leased: dict[AsyncSession, list[ClaimedDelivery]] = {}
        """Deliveries leased at once by transactions not ended yet, by their session: handed
        over when it commits, dropped when it rolls back."""
        self._reserved = 0
        """Slots taken by a claim or a lease at once under way, one per delivery it leases."""
        self._backlog = False
        """Whether more may be due than the last claim took: then a freed slot claims again."""
        self._context = contextvars.copy_context()
        runtime.on_commit(self._committed)

    def _committed(self, uow: UnitOfWork) -> None:
        """After a commit in this process: send what it leased at once, and wake the next
        round if it left deliveries due."""
        session = uow.session
        for claimed in self._leased.pop(session, ()):
            self._start(claimed)
        if session.info.pop(DELIVERIES_QUEUED, 0):
            self._wake.set()

    async def run(self) -> None:
        # The alerts' templates compiled before the first alert, which would otherwise wait.
        self.templates.compile(ALERT_EVENTS)
        async with httpx.AsyncClient(
            timeout=self.settings.notification_send_timeout_s, follow_redirects=False
        ) as client:
            self.client = client
            # The sends handed over at a commit run in the worker's context, not the consumer's.
            self._context = contextvars.copy_context()
            _running[self.runtime.engine] = self
            try:
                await repeat_rounds(
                    self.round,
                    what="delivery round",
                    service=self.runtime.name,
                    after_failure=self.settings.notification_poll_interval_s,
                )
            finally:
                if _running.get(self.runtime.engine) is self:
                    del _running[self.runtime.engine]
                await self.stop_in_flight()
                self.client = None

    async def round(self) -> None:
        """Fill the free sending slots with due deliveries, then wait for a commit in this
        process that left some due, a freed slot when more may be due, or the poll interval."""
        self._wake.clear()  # before claiming: a commit from here on wakes the next round
        free = self.free_slots()
        if free > 0:
            with self._taking_slots() as slots:
                claimed = await self.claim(free, slots)
            for delivery in claimed:
                self._start(delivery)
            # A claim that took fewer than it asked for and had a slot for each found nothing
            # else due: a slot freed by a send ending need not look again (the poll catches
            # retries coming due, and a commit here that leaves some due wakes the worker).
            self._backlog = len(claimed) >= free or slots.refused
        else:
            self._backlog = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._wake.wait(), timeout=self.settings.notification_poll_interval_s
            )

    def free_slots(self) -> int:
        """Sending slots not taken (of `notification_concurrency`): by sends in flight, by a
        claim or a lease at once under way, and by leases at once whose transaction has not
        ended (a session no longer in its transaction rolled back, or failed to commit: its
        leases are undone, or left to expire, and nothing is handed over)."""
        for session in [held for held in self._leased if not held.in_transaction()]:
            del self._leased[session]
        leased = sum(len(claimed) for claimed in self._leased.values())
        return (
            self.settings.notification_concurrency - len(self.in_flight) - self._reserved - leased
        )

    @contextlib.contextmanager
    def _taking_slots(self) -> Iterator[SendingSlots]:
        """Slots for a claim or a lease at once, taken one per delivery as it is leased (so
        that two under way at once share the free ones) and held until it ends: by then its
        deliveries are in flight or wait for their transaction's commit (`_leased`)."""
        slots = SendingSlots(self)
        try:
            yield slots
        finally:
            self._reserved -= slots.taken

    def _start(self, claimed: ClaimedDelivery) -> None:
        """Send a delivery leased to this worker, beside the others in flight."""
        if self.client is None:
            # Not running (stopped as the commit came): the lease runs out, a claim takes it.
            log.warning(
                "delivery %d leased to a stopped worker; sent when its lease ends",
                claimed.id,
                extra={"service": self.runtime.name},
            )
            return
        task = asyncio.create_task(
            self.send(claimed), name=f"delivery-{claimed.id}", context=self._context.copy()
        )
        self.in_flight[claimed.id] = task
        task.add_done_callback(self._forget)

    async def lease_queued(
        self, uow: UnitOfWork, queued: Sequence[tuple[DeliveryRow, SubscriptionRow]]
    ) -> None:
        """Lease deliveries `uow` just queued to this worker, in its transaction (see
        `lease_deliveries`; at most the free slots, the rest left due); they are handed over
        when it commits (`_committed`)."""
        if self.free_slots() <= 0:
            return
        session = uow.session
        with self._taking_slots() as slots:
            leased = await lease_deliveries(
                SqlNotificationsUnitOfWork(uow),
                queued,
                now=datetime.now(UTC),
                owner=self.owner,
                lease=self.lease,
                take_slot=slots,
            )
        if leased:
            self._leased.setdefault(session, []).extend(leased)
        # Leased, held or cancelled: none of these wakes the worker's claim at the commit.
        decided = sum(
            delivery.state != "pending" or delivery.lease_owner == self.owner
            for delivery, _ in queued
        )
        session.info[DELIVERIES_QUEUED] = session.info.get(DELIVERIES_QUEUED, 0) - decided

    def _forget(self, task: asyncio.Task[None]) -> None:
        for key, running in list(self.in_flight.items()):
            if running is task:
                del self.in_flight[key]
        if self._backlog:
            self._wake.set()  # a slot is free and more may be due
        # `send` handles its own errors; should one escape, it is logged, never left unread.
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error(
                "%s ended with an error: %s: %s",
                task.get_name(),
                type(error).__name__,
                error,
                exc_info=error,
                extra={"service": self.runtime.name},
            )

    async def stop_in_flight(self) -> None:
        tasks = list(self.in_flight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- claim ----------------------------------------------------------------------------

    def _work(self) -> UnitOfWork:
        """A unit of work for the worker's own writes. Unlike the runtime's, its commit does not
        wake the worker (nor the relay: it publishes nothing): every claim commits, and waking
        on it would start the next round at once, a busy loop."""
        return UnitOfWork(self.runtime.sessions, service=self.runtime.name, settings=self.settings)

    async def claim(self, limit: int, slots: SendingSlots) -> list[ClaimedDelivery]:
        """Lease up to `limit` due deliveries, one of `slots` each, in one short transaction
        (see `claim_due`)."""
        async with self._work() as uow:
            claimed = await claim_due(
                SqlNotificationsUnitOfWork(uow),
                datetime.now(UTC),
                limit=limit,
                owner=self.owner,
                lease=self.lease,
                take_slot=slots,
            )
            await uow.commit()
        return claimed

    # --- send -----------------------------------------------------------------------------

    async def send(self, claimed: ClaimedDelivery) -> None:
        """One attempt, in the trace of the event that caused it, then its record."""
        parent = context_from_traceparent(claimed.traceparent, claimed.tracestate)
        with self.runtime.tracer.start_as_current_span(
            f"deliver alert {claimed.channel}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={
                "pmo.delivery_id": claimed.id,
                "pmo.event_id": claimed.event_id,
                "pmo.project_id": claimed.project_id or "",
                "pmo.notification.channel": claimed.channel,
                "pmo.notification.attempt": claimed.attempt,
            },
        ) as span:
            try:
                async with asyncio.timeout(self.attempt_deadline_s):
                    result = await self.attempt(claimed)
            except TimeoutError:
                result = AttemptResult(
                    False, error=f"no answer within {self.attempt_deadline_s:.0f}s"
                )
            except asyncio.CancelledError:
                # The service is stopping: give the delivery back now rather than at lease end.
                await asyncio.wait_for(asyncio.shield(self.release(claimed)), timeout=5)
                raise
            except Exception as error:
                # Anything else (a URL httpx refuses, a template bug, a missing CA file) fails
                # the same way every time: record it as final rather than retry it forever.
                log.exception(
                    "delivery %d (%s, %s) could not be sent",
                    claimed.id,
                    claimed.event_type,
                    claimed.channel,
                    extra={"service": self.runtime.name},
                )
                result = AttemptResult(
                    False,
                    error=scrubbed(f"{type(error).__name__}: {error}", self._secrets(claimed))[
                        :2000
                    ],
                    permanent=True,
                )
            if not result.delivered:
                span.set_status(Status(StatusCode.ERROR, result.error or "failed"))
            await self.record(claimed, result)

    def _secrets(self, claimed: ClaimedDelivery) -> list[str | None]:
        configured = self.settings.alert_webhook_secret
        return [
            claimed.secret,
            configured.get_secret_value() if configured else None,
            self.settings.alert_webhook_url if claimed.from_environment else None,
            claimed.recipient if claimed.channel != "email" else None,
        ]

    async def attempt(self, claimed: ClaimedDelivery) -> AttemptResult:
        try:
            message = self.templates.render(claimed.channel, claimed.notice_type, claimed.context)
        except jinja2.TemplateError as error:
            # A broken or missing template fails the same way every time: dead at once.
            return AttemptResult(
                False,
                error=f"template {claimed.channel}/{claimed.notice_type}.j2: {error}",
                permanent=True,
            )
        trace_headers: dict[str, str] = {}
        inject(trace_headers)
        client = self.client
        assert client is not None
        try:
            if claimed.channel == "webhook":
                url, secret = claimed.recipient, claimed.secret
                if claimed.from_environment:
                    url = self.settings.alert_webhook_url or ""
                    configured = self.settings.alert_webhook_secret
                    secret = configured.get_secret_value() if configured else None
                    if not url:
                        return AttemptResult(
                            False, error="PMO_ALERT_WEBHOOK_URL is not set", no_channel=True
                        )
                status = await post_signed_webhook(
                    client,
                    url,
                    self.webhook_body(claimed, message),
                    secret=secret,
                    delivery_id=claimed.id,
                    event_type=claimed.event_type,
                    extra_headers=trace_headers,
                )
            elif claimed.channel == "slack":
                link = self.templates.project_link(claimed.project_id)
                status = await post_slack(
                    client, claimed.recipient, slack_payload(message, link), trace_headers
                )
            else:
                await send_email(
                    self.settings,
                    email_message(
                        self.settings, claimed.recipient, message, delivery_id=claimed.id
                    ),
                )
                status = 250
        except DeliveryFailed as failure:
            return AttemptResult(
                False,
                status_code=failure.status_code,
                error=scrubbed(str(failure), self._secrets(claimed))[:2000],
                permanent=failure.permanent,
                gone=failure.gone,
            )
        return AttemptResult(True, status_code=status)

    def webhook_body(self, claimed: ClaimedDelivery, message: RenderedMessage) -> bytes:
        """The JSON a webhook receives: the event as published, plus what a person reads."""
        context = claimed.context
        event = context.get("event")
        synthetic = {
            key: context[key]
            for key in ("escalation", "summary", "digest", "disabled")
            if key in context
        }
        body = {
            "delivery_id": claimed.id,
            "subscription_id": str(claimed.subscription_id),
            "event_id": event["id"] if event else claimed.event_id,
            "event_type": event["type"] if event else claimed.event_type,
            "source": event["source"] if event else "/pmo/notifications",
            "time": (event or {}).get("time") or datetime.now(UTC).isoformat(),
            "title": message.title,
            "link": self.templates.project_link(claimed.project_id),
            "project": context.get("project"),
            "data": event["data"] if event else synthetic,
        }
        return json.dumps(body, separators=(",", ":")).encode()

    # --- record ---------------------------------------------------------------------------

    async def record(self, claimed: ClaimedDelivery, result: AttemptResult) -> None:
        """Record an attempt's outcome, trying again while the database is away.

        The attempt already happened: losing its outcome means sending again when the lease
        ends. So the write is retried with backoff for as long as the lease lasts, each failure
        logged; only then is it given up (logged as an error) and the lease left to expire.
        """
        channel = claimed.channel
        try:
            async for trying in AsyncRetrying(
                wait=wait_exponential(multiplier=0.2, max=5.0),
                stop=stop_after_delay(self.lease.total_seconds()),
                before_sleep=self._record_failed(claimed),
                reraise=True,
            ):
                with trying:
                    recorded = await self._record_outcome(claimed, result)
        except Exception as error:
            log.error(
                "the outcome of delivery %d (%s) could not be recorded, it may be sent again "
                "when its lease ends: %s: %s",
                claimed.id,
                "delivered" if result.delivered else "failed",
                type(error).__name__,
                error,
                extra={"service": self.runtime.name},
            )
            return
        if recorded.disabled is not None:
            self.metrics.subscriptions_disabled.labels(channel).inc()
            log.error(
                "subscription %s (%r, %s) disabled: %s; an administrator enables it again with "
                "POST /subscriptions/%s/enable",
                claimed.subscription_id,
                recorded.disabled,
                channel,
                result.gone,
                claimed.subscription_id,
                extra={"service": self.runtime.name},
            )
        if result.delivered:
            self.runtime.metrics.alerts_delivered.labels(self.runtime.name, channel).inc()
            return
        if result.no_channel:
            # Not a failure of a receiver: the built-in webhook is simply not configured.
            log.info("delivery %d not sent: %s", claimed.id, result.error)
            return
        self.runtime.metrics.alerts_failed.labels(self.runtime.name, channel).inc()
        if recorded.state == "dead":
            self.metrics.deliveries_dead.labels(channel).inc()
            log.error(
                "delivery %d (%s, %s) dead after %s: %s",
                claimed.id,
                claimed.event_type,
                channel,
                count(claimed.attempt, "attempt"),
                result.error,
                extra={"service": self.runtime.name},
            )
        else:
            log.warning(
                "delivery %d (%s, %s) attempt %d failed: %s",
                claimed.id,
                claimed.event_type,
                channel,
                claimed.attempt,
                result.error,
                extra={"service": self.runtime.name},
            )

    def _record_failed(self, claimed: ClaimedDelivery) -> Callable[[RetryCallState], None]:
        """Tenacity's `before_sleep`: one WARNING per failed write, naming the delivery."""

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.warning(
                "recording the outcome of delivery %d failed (try %d): %s: %s; trying again in "
                "%.1fs",
                claimed.id,
                state.attempt_number,
                type(error).__name__,
                error,
                state.upcoming_sleep,
                extra={"service": self.runtime.name},
            )

        return before_sleep

    async def _record_outcome(self, claimed: ClaimedDelivery, result: AttemptResult) -> Recorded:
        """One transaction: the attempt, the delivery's new state, a subscription disabled
        (see `record_outcome`)."""
        async with self._work() as uow:
            recorded = await record_outcome(
                SqlNotificationsUnitOfWork(uow),
                claimed,
                result,
                owner=self.owner,
                now=datetime.now(UTC),
            )
            await uow.commit()
        return recorded

    async def release(self, claimed: ClaimedDelivery) -> None:
        """Give a lease back when stopping mid-send, so the next instance retries at once."""
        async with self._work() as uow:
            await release_lease(
                SqlNotificationsUnitOfWork(uow), claimed, owner=self.owner, now=datetime.now(UTC)
            )
            await uow.commit()


# --- the worker's rules, on notifications' repositories (the SQL ones, or the tests' fakes) ----


async def claim_due(
    uow: NotificationsUnitOfWork,
    now: datetime,
    *,
    limit: int,
    owner: str,
    lease: timedelta,
    take_slot: Callable[[], bool] | None = None,
) -> list[ClaimedDelivery]:
    """Lease up to `limit` deliveries due at `now` to `owner` for `lease`, each with an attempt
    opened (and a slot of `take_slot`, if given); returns those to send, by id (the rules:
    `lease_deliveries`)."""
    return await lease_deliveries(
        uow,
        await uow.deliveries.due(now, limit),
        now=now,
        owner=owner,
        lease=lease,
        take_slot=take_slot or slots_up_to(limit),
    )


def slots_up_to(limit: int) -> Callable[[], bool]:
    """A `take_slot` that gives `limit` slots."""
    taken = 0

    def take_slot() -> bool:
        nonlocal taken
        taken += 1
        return taken <= limit

    return take_slot


async def lease_deliveries(
    uow: NotificationsUnitOfWork,
    candidates: Sequence[tuple[DeliveryRow, SubscriptionRow | None]],
    *,
    now: datetime,
    owner: str,
    lease: timedelta,
    take_slot: Callable[[], bool],
) -> list[ClaimedDelivery]:
    """Lease pending deliveries this unit of work holds (claimed as due, or just queued by it)
    to `owner` at `now` for `lease`, each with an attempt opened; returns those to send, by id.

    In id order: a delivery whose subscription was deleted (None) or disabled is cancelled
    (with why); one that falls in a throttle window is held until the window ends
    (`held_back`); each other one is leased if `take_slot()` gives it a sending slot, and when
    it gives none, that one and those after are left as they are (due). The lease and the
    attempts take three statements whatever their number (one per delivery each cost a round
    trip that waits behind the consumer's batch on this process's event loop, the claim taking
    half a second at 500 events/s).
    """
    leasable: list[tuple[DeliveryRow, SubscriptionRow]] = []
    for delivery, subscription in sorted(candidates, key=lambda row: row[0].id or 0):
        if subscription is None or not subscription.enabled:
            delivery.state = "cancelled"
            if subscription is None:
                delivery.last_error = "its subscription was deleted"
            else:
                why = subscription.disabled_reason
                delivery.last_error = "its subscription is disabled" + (f": {why}" if why else "")
            await uow.deliveries.save(delivery)
        elif await held_back(uow, delivery, subscription):
            await uow.deliveries.save(delivery)
        elif take_slot():
            leasable.append((delivery, subscription))
        else:
            break
    if not leasable:
        return []
    # An attempt still "in flight" belongs to a worker whose lease ran out (it died). A
    # delivery never attempted has none (its attempts are opened with its count, in one
    # transaction): a first claim, an alert's, spares the statement.
    if retried := [d.id for d, _ in leasable if d.id is not None and d.attempts > 0]:
        await uow.deliveries.abandon_in_flight(
            retried,
            now=now,
            error="the worker sending it stopped before recording the result",
        )
    for delivery, _ in leasable:
        delivery.attempts += 1
        delivery.locked_until = now + lease
        delivery.lease_owner = owner
    attempt_of = await uow.deliveries.open_attempts(
        [delivery for delivery, _ in leasable], worker=owner
    )
    claimed: list[ClaimedDelivery] = []
    for delivery, subscription in leasable:
        assert delivery.id is not None
        claimed.append(
            ClaimedDelivery(
                id=delivery.id,
                attempt_id=attempt_of[delivery.id],
                attempt=delivery.attempts,
                event_id=delivery.event_id,
                event_type=delivery.event_type,
                channel=delivery.channel,
                project_id=delivery.project_id,
                context=dict(delivery.context),
                subscription_id=subscription.id,
                subscription_name=subscription.name,
                recipient=subscription.recipient,
                secret=subscription.secret,
                from_environment=subscription.managed_by == "environment",
                traceparent=delivery.traceparent,
                tracestate=delivery.tracestate,
            )
        )
    return claimed


async def held_back(
    uow: NotificationsUnitOfWork, delivery: DeliveryRow, subscription: SubscriptionRow
) -> bool:
    """Hold a delivery that falls in a throttle window opened by an earlier message: the same
    subscription told about the same project (throttle key) within the subscription's window
    (else `notification_throttle_window`). It is then `held` until the window ends, when the
    clock sends one summary of everything held. Only a first attempt is held; `UNTHROTTLED`
    notices never are, nor do they open a window (the spec's throttling rule)."""
    if delivery.attempts > 0 or delivery.event_type in UNTHROTTLED_TYPES:
        return False
    window = throttle_window(
        subscription.throttle_window_s, uow.settings.notification_throttle_window
    )
    if window <= timedelta(0) or delivery.created_at is None:
        return False
    opened = await uow.deliveries.window_opened(
        delivery, since=delivery.created_at - window, unthrottled=UNTHROTTLED_TYPES
    )
    if opened is None:
        return False
    delivery.state = "held"
    delivery.held_until = opened + window
    return True


async def record_outcome(
    uow: NotificationsUnitOfWork,
    claimed: ClaimedDelivery,
    result: AttemptResult,
    *,
    owner: str,
    now: datetime,
) -> Recorded:
    """Record an attempt of `owner`'s at `now`: the attempt, the delivery's new state, and the
    subscription disabled when the receiver refused it for good (`disable_subscription`).

    Delivered is final; a failure is retried after `retry_delay` (exponential backoff, from
    `notification_retry_base_s` up to `notification_retry_max_s`) until the delivery's
    `max_attempts` (else `notification_max_attempts`), then `dead`; a permanent failure is dead
    at once; no channel configured is `no_channel`. Safe to run again after a commit whose
    answer was lost: the delivery is then no longer leased to `owner`, and the subscription no
    longer enabled, so nothing is done twice.
    """
    await uow.deliveries.finish_attempt(
        claimed.attempt_id,
        outcome="delivered" if result.delivered else "failed",
        now=now,
        status_code=result.status_code,
        error=result.error,
    )
    delivery = await uow.deliveries.get(claimed.id, lock=True)
    if delivery is None:
        return Recorded("deleted")
    settings = uow.settings
    if result.delivered:
        # Delivered is the truth even if the lease ran out and someone else took over.
        delivery.state = "delivered"
        delivery.delivered_at = now
        delivery.last_error = None
    elif delivery.lease_owner != owner or delivery.state != "pending":
        return Recorded(delivery.state)  # another worker holds it; its attempt decides
    else:
        delivery.last_error = result.error
        limit = delivery.max_attempts or settings.notification_max_attempts
        if result.no_channel:
            delivery.state = "no_channel"
        elif result.permanent or delivery.attempts >= limit:
            delivery.state = "dead"
        else:
            delivery.next_attempt_at = now + retry_delay(
                delivery.attempts,
                base_s=settings.notification_retry_base_s,
                max_s=settings.notification_retry_max_s,
            )
    delivery.locked_until = None
    delivery.lease_owner = None
    await uow.deliveries.save(delivery)
    disabled = None
    if result.gone is not None and not result.delivered:
        disabled = await disable_subscription(uow, claimed, result.gone, now)
    return Recorded(delivery.state, disabled)


async def disable_subscription(
    uow: NotificationsUnitOfWork, claimed: ClaimedDelivery, reason: str, now: datetime
) -> str | None:
    """Disable the subscription a receiver refused for good (with `reason` and `now`) and queue
    a `subscription-disabled` notice to the administrators who subscribed to it.

    Returns its name when this call disabled it (None: it was disabled already, e.g. by a
    concurrent attempt, or deleted).
    """
    subscription = await uow.subscriptions.get(claimed.subscription_id, lock=True)
    if subscription is None or not subscription.enabled:
        return None
    subscription.enabled = False
    subscription.disabled_reason = reason
    subscription.disabled_at = now
    subscription.updated_at = now
    await uow.subscriptions.save(subscription)
    recipient = (
        subscription.recipient
        if subscription.channel == "email"
        else masked_url(
            (uow.settings.alert_webhook_url or "")
            if claimed.from_environment
            else subscription.recipient
        )
    )
    context = {
        "disabled": {
            "subscription_id": str(subscription.id),
            "name": subscription.name,
            "channel": subscription.channel,
            "recipient": recipient,
            "reason": reason,
            "at": now.isoformat(),
            "delivery_id": claimed.id,
            "event_type": claimed.event_type,
        }
    }
    await queue_notice(
        uow,
        Notice(SUBSCRIPTION_DISABLED, "red"),
        settings=uow.settings,
        # One notice per disabling: enabled again and refused again is news again.
        event_id=f"{SUBSCRIPTION_DISABLED}:{subscription.id}:{now.isoformat()}",
        event_type=f"pmo.{SUBSCRIPTION_DISABLED}",
        context_for=lambda _: context,
    )
    return subscription.name


async def release_lease(
    uow: NotificationsUnitOfWork, claimed: ClaimedDelivery, *, owner: str, now: datetime
) -> None:
    """End `owner`'s attempt as abandoned and give its lease back (if it still holds it)."""
    await uow.deliveries.finish_attempt(
        claimed.attempt_id,
        outcome="abandoned",
        now=now,
        error="the service stopped during the attempt",
    )
    await uow.deliveries.release(claimed.id, owner=owner)


_running: dict[object, DeliveryWorker] = {}
"""The delivery workers running in this process, by their runtime's database engine: how a
handler's transaction (on that engine) finds the worker of its own process, if one runs."""


async def lease_at_once(
    uow: UnitOfWork, queued: Sequence[tuple[DeliveryRow, SubscriptionRow]]
) -> None:
    """Lease deliveries `uow` just queued (`queue_deliveries`) to the delivery worker running
    in this process, in `uow`'s transaction; it sends them as soon as that commits.

    Nothing is leased where no worker runs (an instance without the worker would never send
    them), nor within a savepoint (the consumer's careful pass: a savepoint rolled back would
    undo leases already promised to the worker); those stay due for the next claim, which the
    commit wakes.
    """
    worker = _running.get(uow.session.bind)
    if worker is None or not queued or uow.session.in_nested_transaction():
        return
    await worker.lease_queued(uow, queued)


async def deliver_notifications(runtime: ServiceRuntime) -> None:
    """The delivery worker: runs beside the consumer for as long as the service does."""
    settings = runtime.settings
    remember_secrets(
        *(
            secret.get_secret_value() if secret else None
            for secret in (settings.smtp_password, settings.alert_webhook_secret)
        )
    )
    await DeliveryWorker(runtime).run()
