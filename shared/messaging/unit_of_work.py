"""The unit of work: one transaction for a change and the events it publishes (by the outbox).

One pattern for every service (cosmicpython's, chapter 6): `AbstractUnitOfWork` is what the
service layer's rules need (settings, publishing, releasing parked events); `UnitOfWork` is the
one the runtime opens (a PostgreSQL transaction and the outbox); a service's own unit of work
adds its repositories to it (`ServiceUnitOfWork`, on the same transaction), and the tests' fake
one (tests/fakes/) keeps both in memory, so a rule is tested without a broker or a database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Protocol, Self, TypeVar

import sqlalchemy as sa
from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.events import EventData, to_structured
from shared.messaging.dead_letters import UndeliverableRecord, dead_letter_record
from shared.messaging.outbox import ALERT_EVENTS, OutboxMessage, enqueue_many, new_ids
from shared.settings import Settings
from shared.topics import topic_name

_LOCK = sa.text(
    "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
    "FROM (SELECT k FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k) AS s"
)


class AbstractUnitOfWork(Protocol):
    """What a rule of the service layer does besides reading and changing its rows (which it
    does through its service's repositories): read the settings, publish events, release
    parked ones. `UnitOfWork`, `ServiceUnitOfWork` and the tests' fake one are all of it."""

    @property
    def settings(self) -> Settings:
        """The running instance's settings: what rules read their thresholds from."""
        ...

    async def publish(self, event: EventData, *, cause: Context | None = None) -> None:
        """Publish `event` with the change (the outbox: it exists if and only if the change)."""
        ...

    async def publish_many(self, events: Sequence[tuple[EventData, Context | None]]) -> None:
        """Publish events in order, each continuing the trace of its cause (None: current)."""
        ...

    def release(self, key: str) -> None:
        """Let the events parked until `key` exists be handled once this work commits."""
        ...


class UnitOfWork:
    """A database transaction in which a handler changes state and publishes events.

    `publish` writes the event to the outbox in this transaction, so the event exists if and only
    if the change does. After commit the relay is woken to send it at once.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        service: str,
        settings: Settings,
        after_commit: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self.service = service
        self.settings = settings
        """The running instance's settings: what handlers read their rules from."""
        self.source = f"/pmo/{service}"
        self.topic_prefix = settings.topic_prefix
        self._after_commit = after_commit
        self.published = 0
        """Outbox rows written (events and dead letters) in the transaction."""
        self.published_alerts = 0
        """Of those, alerts (`ALERT_EVENTS`), which the relay sends in a lane of their own."""
        self.released: list[str] = []
        self.held: set[str] = set()
        """The keys `lock` took outside any savepoint: held until the transaction ends."""
        self._session: AsyncSession | None = None

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            raise RuntimeError("The unit of work is not open: use `async with uow:`")
        return self._session

    async def __aenter__(self) -> Self:
        self._session = self._sessions()
        await self._session.begin()
        self.published = 0
        self.published_alerts = 0
        self.held = set()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        session = self.session
        self._session = None
        try:
            if session.in_transaction():
                await session.rollback()
        finally:
            await session.close()

    async def publish(self, event: EventData, *, cause: Context | None = None) -> None:
        """Write `event` to the outbox; it continues the trace of `cause` (default: current)."""
        await self.publish_many([(event, cause)])

    async def publish_many(self, events: Sequence[tuple[EventData, Context | None]]) -> None:
        """Write events to the outbox in one statement, in order, each continuing the trace of
        its cause (None: the current one); what a batch handler publishes for a run."""
        messages = []
        # One clock reading and one read of randomness for them all: the events of one
        # transaction happen at its one moment, and each id is still a random UUID.
        now = datetime.now(UTC)
        ids = new_ids(len(events))
        for (event, cause), event_id in zip(events, ids, strict=True):
            value, headers = to_structured(
                event, source=self.source, event_id=str(event_id), time=now
            )
            messages.append(
                OutboxMessage(
                    topic=topic_name(event.event_name, self.topic_prefix),
                    key=event.key(),
                    value=value,
                    headers=headers,
                    cause=cause,
                )
            )
        await enqueue_many(self.session, messages)
        self.published += len(messages)
        self.published_alerts += sum(event.event_name in ALERT_EVENTS for event, _ in events)

    async def dead_letter(
        self,
        record: UndeliverableRecord,
        *,
        reason: str,
        event_id: str | None = None,
        event_type: str | None = None,
        source: str | None = None,
    ) -> None:
        """Dead-letter `record` in this transaction (see `dead_letter_record`)."""
        await dead_letter_record(
            self.session,
            record,
            consumer=self.service,
            reason=reason,
            event_id=event_id,
            event_type=event_type,
            source=source,
        )
        self.published += 1

    def release(self, key: str) -> None:
        """Let the events parked until `key` exists (e.g. a project id) be handled now."""
        self.released.append(key)

    async def lock(self, keys: Iterable[str]) -> None:
        """Hold `keys` (e.g. project ids, this service's) until the transaction ends.

        PostgreSQL advisory locks, taken in sorted order so that two transactions cannot
        deadlock. A key already held for the whole transaction is not asked for again: the
        consumer locks its batch's keys first, so a handler locking its project costs nothing.
        One taken inside a savepoint is not remembered, as rolling the savepoint back releases it.
        """
        wanted = sorted({key for key in keys if key not in self.held})
        if not wanted:
            return
        connection = await self.session.connection()
        await connection.execute(_LOCK, {"keys": self.lock_names(wanted)})
        if not self.session.in_nested_transaction():
            self.held.update(wanted)

    def lock_names(self, keys: Iterable[str]) -> list[str]:
        """The advisory locks `lock` takes for `keys`: this service's, so services differ."""
        return [f"{self.service}:{key}" for key in keys]

    async def commit(self) -> None:
        """Commit, then tell the process (the outbox relay, workers waiting on new rows)."""
        await self.session.commit()
        self._after_commit()


class ServiceUnitOfWork:
    """A service's unit of work: its repositories (set by the subclass, on `uow.session`) in
    the transaction of the runtime's `UnitOfWork`, whose publishing and releasing it passes on.

    Handlers and routes are given the runtime's `UnitOfWork`; a service layer wraps it in its
    own (e.g. `SqlRegistryUnitOfWork(uow)`) where a rule reads or writes through repositories.
    Opening, committing and closing stay with the wrapped one.
    """

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    @property
    def settings(self) -> Settings:
        return self.uow.settings

    async def publish(self, event: EventData, *, cause: Context | None = None) -> None:
        await self.uow.publish(event, cause=cause)

    async def publish_many(self, events: Sequence[tuple[EventData, Context | None]]) -> None:
        await self.uow.publish_many(events)

    def release(self, key: str) -> None:
        self.uow.release(key)


W = TypeVar("W")


def service_work(uow: UnitOfWork | W, wrap: Callable[[UnitOfWork], W]) -> W:
    """A service's unit of work for `uow`: the runtime's one (what handlers and routes are
    given) wrapped by `wrap` with the SQL repositories; the service's own one (or a test's
    fake) as it is. Lets a rule be called from both while it reads only repositories."""
    return wrap(uow) if isinstance(uow, UnitOfWork) else uow
