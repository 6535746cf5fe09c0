"""The background workers' loop: a failed round is logged and tried again, cancellation ends it."""

from __future__ import annotations

import asyncio
import logging

import pytest
from tenacity import wait_exponential

from shared.rounds import repeat_rounds

pytestmark = pytest.mark.fast


async def test_a_failing_round_is_logged_and_tried_again_until_the_worker_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def round_() -> None:
        calls.append(len(calls) + 1)
        if len(calls) >= 3:
            third.set()
        if len(calls) <= 2:
            raise ConnectionError("database away")

    with caplog.at_level(logging.ERROR, logger="shared.rounds"):
        worker = asyncio.create_task(
            repeat_rounds(round_, what="test round", service="unit", pause=0.001)
        )
        await asyncio.wait_for(third.wait(), 10)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    failures = [r for r in caplog.records if "test round failed" in r.getMessage()]
    assert [r.getMessage().split(";")[0] for r in failures] == [
        "test round failed (1 in a row)",
        "test round failed (2 in a row)",
    ]
    assert all(r.exc_info and isinstance(r.exc_info[1], ConnectionError) for r in failures)
    assert calls[:3] == [1, 2, 3]


async def test_the_failure_count_starts_again_after_a_round_that_completes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes = iter([False, True, False, True])  # fail, complete, fail, complete
    done = asyncio.Event()

    async def round_() -> None:
        ok = next(outcomes, None)
        if ok is None:
            done.set()
            await asyncio.Event().wait()  # park until cancelled
        elif not ok:
            raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="shared.rounds"):
        worker = asyncio.create_task(
            repeat_rounds(
                round_,
                what="counted",
                service="unit",
                after_failure=wait_exponential(multiplier=0.001, max=0.01),
            )
        )
        await asyncio.wait_for(done.wait(), 10)
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
    counts = [r.getMessage().split(";")[0] for r in caplog.records if "counted" in r.getMessage()]
    assert counts == ["counted failed (1 in a row)", "counted failed (1 in a row)"]


async def test_an_error_that_is_not_an_exception_ends_the_worker() -> None:
    async def round_() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        await repeat_rounds(round_, what="stopping", service="unit", pause=0.001)


async def test_a_lambda_returning_the_round_is_awaited() -> None:
    ran = asyncio.Event()

    async def tick(value: int) -> None:
        assert value == 7
        ran.set()

    worker = asyncio.create_task(
        repeat_rounds(lambda: tick(7), what="lambda", service="unit", pause=0.001)
    )
    await asyncio.wait_for(ran.wait(), 10)
    worker.cancel()
    with pytest.raises(asyncio.CancelledError):
        await worker
