"""Re-resolution: pending changes become new allocations, decisions and conflicts, published once.

Handlers and API calls only record *that* some weeks must be re-solved (a `resolution_pending`
row written in their own transaction, plus a NOTIFY). One worker per database at a time (an
advisory lock) takes every pending row, solves once for all of them, writes the allocations and
the outbox events in one transaction, and deletes the rows it handled. A batch of 500 requests
is thus one solve, not 500; a crash leaves the rows pending, so nothing is lost or done twice.
A run solves only the connected components of the book its changes touch (domain/resolution.py),
and waits for more changes while they keep coming (`coalesce`), so that a backlog costs in
proportion to its requests, not to their number times the book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import asyncpg
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits
from opentelemetry.trace import Link, get_current_span
from prometheus_client import Counter, Histogram
from sqlalchemy import BigInteger, Table, bindparam, delete, func
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from tenacity import wait_exponential

from services.allocation.adapters.repository import CLOSED as CLOSED
from services.allocation.adapters.repository import (
    RESOLVED,
    Decision,
    PlannedBook,
    load_state,
)
from services.allocation.adapters.tables import (
    ConflictRow,
    PendingResolutionRow,
    ProjectStandingRow,
    ResolutionRunRow,
    ResourceRequestRow,
)
from services.allocation.domain.decisions import Conflict, Outcome
from services.allocation.domain.resolution import AllocationState, Resolution, resolve
from services.allocation.service_layer.unit_of_work import (
    AllocationUnitOfWork,
    allocation_work,
)
from shared.events import EventData
from shared.events.contracts import (
    AllocationChanged,
    AllocationDecision,
    AllocationSnapshot,
    Assignment,
    ResourceAllocated,
    ResourceConflictResolved,
)
from shared.messaging.unit_of_work import UnitOfWork
from shared.rounds import repeat_rounds
from shared.telemetry import context_from_traceparent, current_trace_headers
from shared.unnest import insert_rows

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime
    from shared.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "pmo_allocation_resolution"
LOCK_ID = zlib.crc32(b"pmo-allocation-resolution")


async def request_resolution(
    session: AsyncSession, cause: str, weeks: Iterable[str] | None = None
) -> None:
    """Record, in the caller's transaction, that `weeks` (None: all) must be re-solved."""
    await request_resolutions(session, [(cause, weeks, None)])


async def request_resolutions(
    session: AsyncSession,
    changes: Sequence[tuple[str, Iterable[str] | None, Context | None]],
    *,
    new_requests: bool = False,
) -> None:
    """`request_resolution` for several changes (cause, weeks, the trace it continues; None:
    the current one) in one insert and one NOTIFY, in the caller's transaction.

    `new_requests`: the changes are new requests, stored undecided; their rows carry no weeks,
    since resolution solves every undecided request's component anyway (and only that: the
    weeks a request covers are every other request's weeks too, so naming them would re-solve
    the whole book for each batch). Otherwise a change with no weeks asks for nothing.
    """
    rows = [
        {
            "weeks": [] if new_requests else None if weeks is None else sorted(set(weeks)),
            "cause": cause,
            "traceparent": current_trace_headers(trace).get("traceparent"),
        }
        for cause, weeks, trace in changes
    ]
    if not new_requests:
        rows = [row for row in rows if row["weeks"] != []]
    if not rows:
        return
    table = PendingResolutionRow.__table__  # type: ignore[attr-defined]
    await insert_rows(await session.connection(), table, rows)
    # Delivered at commit only, so the worker never looks before the row is visible.
    await session.exec(select(func.pg_notify(CHANNEL, "")))


async def hold_resolution_lock(session: AsyncSession) -> None:
    """Serialise with every re-resolution (and pool change) until the transaction ends."""
    await session.exec(select(func.pg_advisory_xact_lock(LOCK_ID)))


async def weeks_of_project(session: AsyncSession, project_id: str) -> set[str]:
    rows = await session.exec(
        select(ResourceRequestRow.weeks).where(ResourceRequestRow.project_id == project_id)
    )
    return {week for weeks in rows.all() for week in weeks}


class ResolutionMetrics:
    """Allocation's own metrics, on the service's registry."""

    def __init__(self, runtime: ServiceRuntime) -> None:
        registry = runtime.metrics.registry
        self.seconds = Histogram(
            "pmo_allocation_resolution_seconds",
            "Time to re-solve the allocations (load, solve, write), by method",
            ["method"],
            registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.runs = Counter(
            "pmo_allocation_resolutions",
            "Re-resolutions run, by method and solver status",
            ["method", "status"],
            registry=registry,
        )


def summarise_causes(causes: Sequence[str], shown: int = 3) -> str:
    """The causes of one re-resolution, first ones in full: a batch may hold hundreds."""
    distinct = list(dict.fromkeys(causes))
    if not distinct:
        return "re-resolution"
    if len(distinct) <= shown + 1:
        return "; ".join(distinct)
    return "; ".join(distinct[:shown]) + f"; and {len(distinct) - shown} more changes"


def snapshot(outcome: Outcome) -> AllocationSnapshot:
    return AllocationSnapshot(
        fte_granted=outcome.fte_granted,
        weeks=list(outcome.weeks),
        resource_id=outcome.resource_id,
        status=outcome.status,
        assignments=assignments(outcome),
    )


def assignments(outcome: Outcome) -> list[Assignment]:
    return [
        Assignment(resource_id=line.resource_id, fte=line.fte, weeks=list(line.weeks))
        for line in outcome.assignments
    ]


def conflict_event(conflict: Conflict) -> ResourceConflictResolved:
    return ResourceConflictResolved(
        conflict_id=conflict.conflict_id,
        skill=conflict.skill,
        resource_id=conflict.resource_id,
        weeks=list(conflict.weeks),
        winners=[AllocationDecision(**vars(decision)) for decision in conflict.winners],
        losers=[AllocationDecision(**vars(decision)) for decision in conflict.losers],
        rationale=conflict.rationale,
    )


async def apply_resolution(
    uow: UnitOfWork | AllocationUnitOfWork,
    state: AllocationState,
    resolution: Resolution,
    causes: Sequence[str],
) -> None:
    """Store what the resolution decided and publish each decision and change once.

    A request is published as `resource-allocated` when first decided, and again whenever its
    decision reads otherwise while its allocation stays the same (the project was registered,
    changed stage or rank after the decision): what the consumers keep always says why as of
    now. A changed allocation is an `allocation-changed`, whose cause carries the new reason.
    """
    work = allocation_work(uow)
    now = datetime.now(UTC)
    before, after = state.allocations, resolution.allocations
    await work.assignments.replace(
        [slot for slot in before if slot not in after],
        {slot: fte for slot, fte in after.items() if abs(before.get(slot, 0.0) - fte) > 1e-9},
    )

    first_time = set(resolution.decided)
    cause = summarise_causes(causes)
    # A first decision is written whatever is stored: only the others' are read.
    stored = await work.requests.decisions(
        [request_id for request_id in resolution.outcomes if request_id not in first_time]
    )
    changed = {change.request_id for change in resolution.changed}
    restated: list[str] = []
    decisions: list[Decision] = []
    for request_id, outcome in resolution.outcomes.items():
        if request_id in first_time:
            decisions.append(
                Decision(request_id, outcome.status, outcome.fte_granted, outcome.reason, now)
            )
        elif stored.get(request_id) != (outcome.status, outcome.fte_granted, outcome.reason):
            # Most requests, most of the time, are unchanged.
            decisions.append(
                Decision(request_id, outcome.status, outcome.fte_granted, outcome.reason)
            )
            if request_id not in changed:
                # The same people, but the decision reads otherwise: the project became known,
                # changed stage or rank. Its published reason must not stay stale.
                restated.append(request_id)
    await work.requests.decide(decisions)
    # Conflicts first: their figures cover only the contested weeks, while a request's decision
    # covers all its weeks. Consumers keep the newest figure per request, so the decisions and
    # changes must be the later events.
    await record_conflicts(work, resolution.conflicts, cause, now, resolution.solved)
    # One outbox statement for all of them, in this order (a re-resolution decides thousands
    # of requests when a backlog of them arrives).
    news: list[tuple[EventData, Context | None]] = []
    for request_id in (*resolution.decided, *restated):
        request, outcome = state.requests[request_id], resolution.outcomes[request_id]
        allocated = ResourceAllocated(
            project_id=request.project_id,
            request_id=request_id,
            resource_id=outcome.resource_id,
            skill=request.skill,
            fte_granted=outcome.fte_granted,
            fte_requested=outcome.fte_requested,
            weeks=list(outcome.weeks),
            status=outcome.status,
            reason=outcome.reason,
            assignments=assignments(outcome),
        )
        news.append((allocated, None))
    for change in resolution.changed:
        moved = AllocationChanged(
            project_id=state.requests[change.request_id].project_id,
            request_id=change.request_id,
            before=snapshot(change.before),
            after=snapshot(change.after),
            cause=f"{cause}. {change.after.reason}",
        )
        news.append((moved, None))
    await work.publish_many(news)


async def record_conflicts(
    uow: UnitOfWork | AllocationUnitOfWork,
    conflicts: Sequence[Conflict],
    cause: str,
    now: datetime,
    solved: frozenset[str] | None = None,
) -> None:
    """Publish conflicts not published as they stand; close standing ones no longer current.

    A published conflict is `resolved` (its event says so) while its resolution stands, and
    `closed` once the shortage ends or a newer resolution supersedes it. `solved`: the requests
    whose components were explained (None: all); a standing conflict of none of them stands.
    """
    work = allocation_work(uow)
    current = {conflict.conflict_id: conflict for conflict in conflicts}
    known = {row.conflict_id: row for row in await work.conflicts.standing_or(list(current))}
    if solved is not None:
        # Only the components solved were explained: the others' conflicts stand as they are.
        known = {
            conflict_id: row
            for conflict_id, row in known.items()
            if conflict_id in current or not solved.isdisjoint(row.request_ids)
        }
    by_contest = {conflict.contest_key: conflict.conflict_id for conflict in conflicts}
    for row in known.values():
        if row.state == RESOLVED and row.conflict_id not in current:
            row.state = CLOSED
            row.closed_at = now
            successor = by_contest.get(row.contest_key)
            row.closed_reason = (
                f"superseded by {successor} ({cause})"
                if successor
                else f"no longer contested after: {cause}"
            )
            work.conflicts.add(row)
    for conflict_id, conflict in current.items():
        found = known.get(conflict_id)
        if found is not None and found.state == RESOLVED:
            continue
        event = conflict_event(conflict)
        if found is None:
            row = ConflictRow(
                conflict_id=conflict_id,
                contest_key=conflict.contest_key,
                skill=conflict.skill,
                resource_id=conflict.resource_id,
                weeks=list(conflict.weeks),
                winners=[d.model_dump() for d in event.winners],
                losers=[d.model_dump() for d in event.losers],
                rationale=conflict.rationale,
                request_ids=list(conflict.request_ids),
                cause=cause,
                state=RESOLVED,
                resolved_at=now,
            )
        else:  # the same outcome again after a different one: it stands once more
            row = found
            row.state, row.closed_reason, row.closed_at = RESOLVED, None, None
            row.cause, row.resolved_at = cause, now
        work.conflicts.add(row)
        await work.publish(event)


SERIALIZATION_RETRIES = 3
"""Attempts of a re-resolution whose snapshot a concurrent change made stale (see
`resolve_pending`) before the worker's round fails (and is retried after its pause)."""


@contextlib.asynccontextmanager
async def resolution_lock(engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the re-resolution lock (`LOCK_ID`, the one `hold_resolution_lock` takes in a
    transaction) on a connection of its own, from before the caller's transaction begins until
    after it ends: a snapshot taken inside has every change of the lock's earlier holders (an
    advisory lock taken in the transaction itself would come after its snapshot)."""
    async with engine.connect() as connection:
        await connection.execute(select(func.pg_advisory_lock(LOCK_ID)))
        await connection.commit()  # a session's lock outlives the transaction it was taken in
        try:
            yield
        finally:
            try:
                await connection.execute(select(func.pg_advisory_unlock(LOCK_ID)))
                await connection.commit()
            except BaseException:
                # Never back to the pool holding the lock: closed, it lets go of it.
                await connection.invalidate()
                raise


def _serialization_failure(error: DBAPIError) -> bool:
    """Whether PostgreSQL refused a REPEATABLE READ write for a row changed since the
    transaction's snapshot (SQLSTATE 40001)."""
    return getattr(error.orig, "sqlstate", None) == "40001"


MAX_LINKS = SpanLimits().max_links
"""Links a span keeps (the SDK's limit, OTEL_SPAN_LINK_COUNT_LIMIT, 128 by default): it keeps
the last ones given, so a run after a backlog works out only those of its thousands of causes."""


async def resolve_pending(
    runtime: ServiceRuntime,
    metrics: ResolutionMetrics | None = None,
    book: PlannedBook | None = None,
) -> bool:
    """Handle every pending re-resolution in one transaction; False when there was none.

    The transaction is REPEATABLE READ, begun once the re-resolution lock is held
    (`resolution_lock`): the pending rows and the state are read in one snapshot, so every
    change the state shows (a new request, a ranking) has its pending row among those the run
    handles and deletes, and a change committed after the snapshot is neither in the state nor
    handled: the next run takes it. (Under READ COMMITTED each statement saw what had committed
    before it: a request committed between the reads was decided by a run that did not take its
    pending row, and the next run gave its cause again; reading the state again for each newer
    pending row, as before, cost up to three reads of the whole book per run during a backlog.)
    A write to a row another transaction changed since the snapshot (an intervention ending
    sets its request undecided without the lock) fails the run with a serialization error and
    it runs again at once, from a fresh snapshot, up to `SERIALIZATION_RETRIES` times.

    `book`: the calling worker's plans of the requests from its last runs (see `PlannedBook`)."""
    for attempt in range(1, SERIALIZATION_RETRIES + 1):
        try:
            return await _resolve_once(runtime, metrics, book)
        except DBAPIError as error:
            if attempt == SERIALIZATION_RETRIES or not _serialization_failure(error):
                raise
            log.info(
                "re-resolution ran on a stale snapshot (%s); running it again",
                error.orig,
                extra={"service": runtime.name},
            )
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _resolve_once(
    runtime: ServiceRuntime, metrics: ResolutionMetrics | None, book: PlannedBook | None
) -> bool:
    """`resolve_pending`'s one attempt: one REPEATABLE READ transaction under the lock."""
    settings = runtime.settings
    async with resolution_lock(runtime.engine), runtime.unit_of_work() as uow:
        session = uow.session
        # Before any statement: the transaction's snapshot is taken at its first one.
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})

        row = PendingResolutionRow
        # Plain rows: after a backlog there is one per new request, thousands of them.
        pending = (
            await session.exec(
                select(col(row.id), col(row.weeks), col(row.cause), col(row.traceparent)).order_by(
                    col(row.id)
                )
            )
        ).all()
        if not pending:
            return False
        # The run continues the trace of its newest change (the one the coalescing waited for
        # last, e.g. a re-ranking that came while an earlier change waited) and links the rest
        # (as many as a span keeps).
        linked = pending if MAX_LINKS is None else pending[-(MAX_LINKS + 1) :]
        parents = [context_from_traceparent(traceparent, None) for *_, traceparent in linked]
        links = [
            Link(get_current_span(context).get_span_context())
            for context in parents[:-1]
            if context is not None
        ]
        with runtime.tracer.start_as_current_span(
            "allocation re-resolution", context=parents[-1], links=links
        ) as span:
            started = asyncio.get_running_loop().time()
            state = await load_state(
                session,
                today=datetime.now(UTC).date(),
                hours_per_fte_week=settings.allocation_hours_per_fte_week,
                book=book,
            )
            weeks: set[str] | None = set()
            for _, named, _, _ in pending:
                if named is None or weeks is None:
                    weeks = None
                else:
                    weeks.update(named)
            causes = [cause for _, _, cause, _ in pending]
            resolution = await asyncio.to_thread(
                resolve,
                state,
                weeks,
                move_penalty=settings.allocation_move_penalty,
                time_limit=settings.allocation_solver_time_limit_s,
            )
            await apply_resolution(uow, state, resolution, causes)
            handled = [pending_id for pending_id, *_ in pending]
            await session.exec(
                delete(PendingResolutionRow).where(
                    col(PendingResolutionRow.id)
                    == func.any(bindparam("handled", handled, type_=ARRAY(BigInteger)))
                )
            )
            solution = resolution.solution
            session.add(
                ResolutionRunRow(
                    causes=causes,
                    weeks=len(resolution.scope),
                    requests=len(state.requests),
                    method=solution.method,
                    status=solution.status,
                    seconds=round(asyncio.get_running_loop().time() - started, 4),
                    value=solution.value,
                    greedy_value=solution.greedy_value,
                    mip_gap=solution.mip_gap,
                    moved=len(solution.moved),
                    decided=len(resolution.decided),
                    changed=len(resolution.changed),
                    conflicts=len(resolution.conflicts),
                )
            )
            span.set_attributes(
                {
                    "pmo.allocation.method": solution.method,
                    "pmo.allocation.status": solution.status,
                    "pmo.allocation.weeks": len(resolution.scope),
                    "pmo.allocation.decided": len(resolution.decided),
                    "pmo.allocation.changed": len(resolution.changed),
                }
            )
            await uow.commit()
        if metrics is not None:
            metrics.seconds.labels(solution.method).observe(
                asyncio.get_running_loop().time() - started
            )
            metrics.runs.labels(solution.method, solution.status.split(":")[0]).inc()
        log.info(
            "re-resolved %d weeks for %s: %s %s, %d decided, %d changed, %d conflicts",
            len(resolution.scope),
            "; ".join(causes)[:200],
            solution.method,
            solution.status,
            len(resolution.decided),
            len(resolution.changed),
            len(resolution.conflicts),
            extra={"service": runtime.name},
        )
        return True


async def registration_wait(runtime: ServiceRuntime) -> float:
    """Seconds to hold the next re-resolution for a registration on its way (0: none).

    A request can overtake its project's `project-registered` (the enterprise publishes the
    request, the registry publishes the registration after handling `project-started`). Decided
    at once, its first decision and conflict would say "not registered in the portfolio" and be
    restated a moment later; so while an undecided request's project is unknown, resolution
    waits until the oldest such request is `allocation_registration_grace_s` old (a
    registration wakes it at once). The oldest bounds the wait, so a stream of requests for
    unknown projects cannot hold resolution back; after the grace they are decided as things
    stand, and restated if their projects come later.
    """
    grace = runtime.settings.allocation_registration_grace_s
    if grace <= 0:
        return 0.0
    request = cast(Table, ResourceRequestRow.__table__)  # type: ignore[attr-defined]
    standing = cast(Table, ProjectStandingRow.__table__)  # type: ignore[attr-defined]
    oldest_unknown = (
        select(func.min(request.c.received_at), func.now())
        .select_from(request.outerjoin(standing, standing.c.project_id == request.c.project_id))
        .where(request.c.decided_at.is_(None), standing.c.name.is_(None))
    )
    async with runtime.unit_of_work() as uow:
        row = (await uow.session.exec(oldest_unknown)).one()
    received: datetime | None = row[0]
    now: datetime = row[1]
    if received is None:
        return 0.0
    return max(0.0, grace - (now - received).total_seconds())


async def _listen(settings: Settings, wake: asyncio.Event) -> asyncpg.Connection | None:
    """A connection LISTENing for pending work, or None (then polling alone finds it)."""
    from shared.database import asyncpg_url

    url = asyncpg_url(settings.database_url_for("allocation")).replace("+asyncpg", "", 1)
    try:
        connection = await asyncpg.connect(url)
        await connection.add_listener(CHANNEL, lambda *_: wake.set())
    except (OSError, asyncpg.PostgresError) as error:
        log.warning("no LISTEN for re-resolution (%s); polling only", error)
        return None
    return connection


QUIET_S = 0.1
"""A pause in the changes this long ends a re-resolution's wait for more (see coalesce)."""


async def coalesce(
    wake: asyncio.Event,
    bound: float,
    at_least: float = 0.0,
    quiet: float = QUIET_S,
    behind: Callable[[], bool] = lambda: True,
) -> None:
    """Wait for more changes to join the next re-resolution: at least `at_least` seconds while
    the consumer is `behind` (a backlog it has not caught up with), then while changes keep
    coming (each sets `wake`) until none came for `quiet` seconds; at most `bound` seconds in
    all.

    While a backlog of requests is consumed, a batch commits every few tens of milliseconds;
    solving after each would take the CPU from the consumer for a solve the next batch makes
    stale. The worker passes the length of its last run as `at_least`, so while work keeps
    coming it runs at most about half the time, each run taking more batches. Once the
    consumer has caught up (`behind` says so, looked at every `quiet` seconds), nothing is
    left to make room for: the hold ends, so the backlog's last requests are decided about
    `quiet` seconds after their batch commits, not up to `bound` later. A request is decided
    at most `bound` seconds (plus the solve) after its batch commits, `quiet` seconds after it
    when traffic is light.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + bound
    hold_until = started + min(at_least, bound)
    # Polled: the lag is a gauge the consumer sets after each batch, not an event to wait on.
    while (held := hold_until - loop.time()) > 0 and behind():  # noqa: ASYNC110
        await asyncio.sleep(min(quiet, held))
    while (left := deadline - loop.time()) > 0:
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), min(quiet, left))
        except TimeoutError:
            return


def consumer_behind(runtime: ServiceRuntime) -> bool:
    """Whether this instance's consumer was behind on any partition after its last batch there
    (its `pmo_consumer_lag`): a backlog is still being taken."""
    return any(
        sample.value > 0
        for metric in runtime.metrics.consumer_lag.collect()
        for sample in metric.samples
    )


async def resolution_worker(runtime: ServiceRuntime) -> None:
    """Run re-resolutions as they are requested, until the service stops."""
    metrics = ResolutionMetrics(runtime)
    book = PlannedBook()
    wake = asyncio.Event()
    connection = await _listen(runtime.settings, wake)
    bound = runtime.settings.allocation_resolution_coalesce_s

    async def round_() -> None:
        last_run = 0.0
        while True:
            await coalesce(wake, bound, at_least=last_run, behind=lambda: consumer_behind(runtime))
            wake.clear()
            # Looked at before each run, since a request may arrive while the last one ran.
            hold = await registration_wait(runtime)
            if hold > 0:
                # A registration on its way: the round ends when it comes (it wakes us) or the
                # grace is over, and the next round looks again.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), hold)
                return
            started = asyncio.get_running_loop().time()
            if not await resolve_pending(runtime, metrics, book):
                break
            last_run = asyncio.get_running_loop().time() - started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), runtime.settings.allocation_resolution_poll_s)

    try:
        # The pending rows stay on failure: the next attempt (after a pause doubling from one
        # second up to thirty while failures follow each other) picks them up again.
        await repeat_rounds(
            round_,
            what="re-resolution",
            service=runtime.name,
            after_failure=wait_exponential(multiplier=1.0, max=30.0),
        )
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.close()
