"""The one loop behind every background worker: run a round again and again, never giving up.

A worker (the outbox relay, the delivery worker, the clocks, the re-resolution worker, the expiry
of parked events) is a round repeated until the service stops. A round that fails with an
exception is logged with its traceback and tried again after a pause (tenacity), so a database
or broker that is away for a while never ends the worker; cancellation (the service stopping)
always ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NoReturn

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_fixed
from tenacity.wait import wait_base

log = logging.getLogger(__name__)


def _log_failure(what: str, service: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        log.error(
            "%s failed (%d in a row); next in %.1fs",
            what,
            state.attempt_number,
            state.upcoming_sleep,
            exc_info=error,
            extra={"service": service},
        )

    return before_sleep


async def repeat_rounds(
    round_: Callable[[], Awaitable[object]],
    *,
    what: str,
    service: str,
    pause: float = 0.0,
    after_failure: float | wait_base | None = None,
    pause_first: bool = False,
) -> NoReturn:
    """Run `round_` for ever: `pause` seconds after each round that completes, and after one
    that raises an Exception, the wait `after_failure` gives (seconds, or a tenacity wait such
    as `wait_exponential` counting the failures in a row; default: `pause`).

    `what` names the round in the log line of a failure; `service` goes in the log's extra.
    With `pause_first` the first round waits `pause` too. Only cancellation (or a
    BaseException such as KeyboardInterrupt) ends it, by propagating.
    """
    if isinstance(after_failure, wait_base):
        wait = after_failure
    else:
        wait = wait_fixed(pause if after_failure is None else after_failure)
    retrying = AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait,
        before_sleep=_log_failure(what, service),
    )

    # tenacity calls a callable that is not a coroutine function without awaiting its result,
    # so a lambda returning a coroutine is wrapped in one.
    async def one_round() -> None:
        await round_()

    if pause_first:
        await asyncio.sleep(pause)
    while True:
        await retrying(one_round)
        if pause > 0:
            await asyncio.sleep(pause)
