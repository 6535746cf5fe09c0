"""Offsets committed in the background: the newest per partition, one commit at a time, in order."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from shared.messaging.offsets import OffsetCommits

TOPIC = "pmo.status-changed"


def record(partition: int, offset: int) -> ConsumerRecord[Any, Any]:
    return ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", b"v", None, 1, 1, [])


class HeldCommitter:
    """A consumer whose commits wait until the test lets each one go, and may fail."""

    def __init__(self) -> None:
        self.sent: list[dict[TopicPartition, int]] = []
        self.release = asyncio.Event()
        self.fail_next = False

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.sent.append(dict(offsets))
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("the group rebalanced")


async def test_each_partition_is_committed_past_its_highest_record() -> None:
    committer = HeldCommitter()
    committer.release.set()
    commits = OffsetCommits("monitoring")

    commits.after(committer, [record(0, 7), record(1, 3), record(0, 9), record(0, 8)])
    await commits.flush()

    assert committer.sent == [{TopicPartition(TOPIC, 0): 10, TopicPartition(TOPIC, 1): 4}]


async def test_batches_done_while_a_commit_is_in_flight_go_in_one_later_commit() -> None:
    committer = HeldCommitter()
    commits = OffsetCommits("monitoring")

    commits.after(committer, [record(0, 1)])
    await asyncio.sleep(0)  # the first commit is now in flight, held
    commits.after(committer, [record(0, 2), record(1, 5)])
    commits.after(committer, [record(0, 4)])
    assert committer.sent == [{TopicPartition(TOPIC, 0): 2}]  # nothing else sent meanwhile

    committer.release.set()
    await commits.flush()

    assert committer.sent == [
        {TopicPartition(TOPIC, 0): 2},
        {TopicPartition(TOPIC, 0): 5, TopicPartition(TOPIC, 1): 6},
    ]


async def test_a_failed_commit_is_logged_and_the_next_ones_still_go(
    caplog: pytest.LogCaptureFixture,
) -> None:
    committer = HeldCommitter()
    committer.fail_next = True
    commits = OffsetCommits("registry")

    commits.after(committer, [record(2, 40)])
    await asyncio.sleep(0)
    commits.after(committer, [record(2, 41)])
    with caplog.at_level(logging.WARNING, logger="shared.messaging.offsets"):
        committer.release.set()
        await commits.flush()

    assert committer.sent == [{TopicPartition(TOPIC, 2): 41}, {TopicPartition(TOPIC, 2): 42}]
    (warning,) = caplog.records
    assert warning.getMessage().startswith(
        f"offsets {TOPIC}[2]=41 not committed (RuntimeError: the group rebalanced)"
    )


async def test_flush_waits_for_the_commit_in_flight() -> None:
    committer = HeldCommitter()
    commits = OffsetCommits("notifications")
    commits.after(committer, [record(0, 0)])

    flushing = asyncio.create_task(commits.flush())
    await asyncio.sleep(0.05)
    assert not flushing.done()
    committer.release.set()
    await asyncio.wait_for(flushing, timeout=5)


async def test_no_records_send_nothing() -> None:
    committer = HeldCommitter()
    commits = OffsetCommits("allocation")
    commits.after(committer, [])
    await commits.flush()
    assert committer.sent == []
