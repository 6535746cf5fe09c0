"""The fake unit of work every service's fake builds on: events and releases kept in lists.

It is `shared.messaging.unit_of_work.AbstractUnitOfWork` in memory (cosmicpython's
FakeUnitOfWork): what a rule publishes is in `events`, what it releases in `released`, and
`committed` tells whether the test's code committed. No broker, no database.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Self, TypeVar

from opentelemetry.context import Context

from shared.events import EventData
from shared.settings import Settings

E = TypeVar("E", bound=EventData)


class FakeUnitOfWork:
    """An `AbstractUnitOfWork` that keeps what it is given; a service's fake adds repositories."""

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings if settings is not None else Settings()
        self.events: list[EventData] = []
        self.released: list[str] = []
        self.committed = False

    @property
    def settings(self) -> Settings:
        return self._settings

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def publish(self, event: EventData, *, cause: Context | None = None) -> None:
        self.events.append(event)

    async def publish_many(self, events: Sequence[tuple[EventData, Context | None]]) -> None:
        self.events.extend(event for event, _ in events)

    def release(self, key: str) -> None:
        self.released.append(key)

    async def commit(self) -> None:
        self.committed = True

    def published(self, kind: type[E]) -> list[E]:
        """The events of one contract, in the order published."""
        return [event for event in self.events if isinstance(event, kind)]
