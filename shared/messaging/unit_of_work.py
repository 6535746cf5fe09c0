"""The unit of work: one transaction for a change and the events it publishes (by the outbox)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self

from opentelemetry.context import Context
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.events import EventData, to_structured
from shared.messaging.dead_letters import UndeliverableRecord, dead_letter_record
from shared.messaging.outbox import OutboxMessage, enqueue_many
from shared.settings import Settings
from shared.topics import topic_name


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
        self.released: list[str] = []
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
        for event, cause in events:
            value, headers = to_structured(event, source=self.source)
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

    async def commit(self) -> None:
        """Commit, then tell the process (the outbox relay, workers waiting on new rows)."""
        await self.session.commit()
        self._after_commit()
