"""Periodic duties of a service (a clock round every N seconds), as the runtime's workers run them.

A round that fails (the database away) is logged and tried again at the next tick: nothing is
lost meanwhile, as each round re-reads what is due. The count of rounds (failed ones included)
lets tests wait for "two more rounds" instead of for a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


async def run_every(
    runtime: ServiceRuntime,
    interval_s: float,
    round_: Callable[[], Awaitable[None]],
    *,
    what: str,
    counted: Callable[[], None] = lambda: None,
) -> None:
    """Run `round_` every `interval_s` seconds until cancelled; `counted` after each round.

    `what` names the duty in the log line of a failed round (e.g. "staleness clock").
    """
    while True:
        try:
            await round_()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "%s round failed; next in %.0fs",
                what,
                interval_s,
                extra={"service": runtime.name},
            )
        counted()
        await asyncio.sleep(interval_s)
