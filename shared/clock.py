"""Periodic duties of a service (a clock round every N seconds), as the runtime's workers run them.

A round that fails (the database away) is logged and tried again at the next tick: nothing is
lost meanwhile, as each round re-reads what is due. The count of rounds (failed ones included)
lets tests wait for "two more rounds" instead of for a time. The loop itself is the one every
worker uses (`shared.rounds.repeat_rounds`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from shared.rounds import repeat_rounds

if TYPE_CHECKING:
    from shared.runtime import ServiceRuntime


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

    async def counted_round() -> None:
        try:
            await round_()
        except Exception:
            counted()
            raise
        counted()

    await repeat_rounds(counted_round, what=f"{what} round", service=runtime.name, pause=interval_s)
