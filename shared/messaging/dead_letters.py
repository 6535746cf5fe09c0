"""The one dead-letter path: original bytes and reason, kept in a table, sent to `<topic>.dlq`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from shared.messaging.outbox import enqueue
from shared.messaging.tables import dead_letter, encode_headers, storable_text
from shared.topics import dead_letter_topic

# Headers added to a dead-lettered message, so whoever reads `<topic>.dlq` knows why and whence.
REASON_HEADER = "pmo-dlq-reason"
OMITTED_HEADER = "pmo-dlq-omitted"
ORIGIN_HEADERS = (
    "pmo-dlq-topic",
    "pmo-dlq-partition",
    "pmo-dlq-offset",
    "pmo-dlq-consumer",
    "pmo-dlq-at",
    OMITTED_HEADER,
)

DLQ_RECORD_LIMIT = 786_432
"""Largest record sent on whole to `<topic>.dlq` (bytes). One near the broker's own limit (1 MiB
by default) would not fit with the dead-letter headers added: its value, headers and a long key
are left out of the message, its size given in `pmo-dlq-omitted`; the table keeps it whole
(`GET /dead-letters`)."""


class UndeliverableRecord(NamedTuple):
    """A Kafka record as it arrived, before anything was made of it.

    A named tuple rather than a frozen dataclass: one is made for every record consumed, and a
    frozen dataclass's `__init__` (an `object.__setattr__` per field) costs about five times
    as much.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def size(self) -> int:
        """The record's bytes: value, key and headers (names and values)."""
        return (
            len(self.value or b"")
            + len(self.key or b"")
            + sum(len(name.encode("utf-8", "surrogateescape")) + len(v) for name, v in self.headers)
        )

    @classmethod
    def of(cls, record: Any) -> UndeliverableRecord:
        headers = record.headers or ()
        return cls(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            # Header values as bytes (a null one as empty); most already are, as they came.
            [
                header if type(header[1]) is bytes else (header[0], bytes(header[1] or b""))
                for header in headers
            ],
        )


async def dead_letter_record(
    session: AsyncSession,
    record: UndeliverableRecord,
    *,
    consumer: str,
    reason: str,
    event_id: str | None = None,
    event_type: str | None = None,
    source: str | None = None,
) -> None:
    """Keep a message that cannot be processed, inside the consumer's transaction.

    The row makes it visible through the API; the outbox row sends it to the dead-letter topic.
    Both commit with the rest of the batch, and then the consumer's offset moves past it.
    Whatever bytes the record holds are kept as bytes (key, value) or base64 (headers), so no
    record can make its own dead letter fail; `event_id`, `event_type` and `source` are the
    CloudEvents identity, whenever the envelope could be read.
    """
    await session.exec(
        sa.insert(dead_letter).values(
            consumer=consumer,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=encode_headers(record.headers),
            reason=storable_text(reason),
            event_id=storable_text(event_id) if event_id is not None else None,
            event_type=storable_text(event_type) if event_type is not None else None,
            source=storable_text(source) if source is not None else None,
        )
    )
    omitted = record.size > DLQ_RECORD_LIMIT
    kept = [] if omitted else record.headers
    headers = [
        *(h for h in kept if h[0] != REASON_HEADER and h[0] not in ORIGIN_HEADERS),
        *([(OMITTED_HEADER, str(record.size).encode())] if omitted else []),
        (REASON_HEADER, storable_text(reason).encode()),
        ("pmo-dlq-topic", record.topic.encode()),
        ("pmo-dlq-partition", str(record.partition).encode()),
        ("pmo-dlq-offset", str(record.offset).encode()),
        ("pmo-dlq-consumer", consumer.encode()),
        ("pmo-dlq-at", datetime.now(UTC).isoformat().encode()),
    ]
    await enqueue(
        session,
        topic=dead_letter_topic(record.topic),
        key=record.key if not omitted or len(record.key or b"") <= 1024 else None,
        value=b"" if omitted else (record.value or b""),
        headers=headers,
    )
