"""How a delivery is signed, how long to wait before the next attempt, and which failures are final.

Webhook signature (for receivers): each POST carries `X-PMO-Timestamp` (Unix seconds) and
`X-PMO-Signature: sha256=<hex>`, the HMAC-SHA256 of `<timestamp>.<raw body>` under the
subscription's secret. Recompute it over the raw bytes, compare in constant time, and refuse a
timestamp more than a few minutes old: the timestamp is signed with the body, so an old request
replayed later fails the check. `X-PMO-Delivery` is the delivery id: the same on every retry of one
delivery, so a receiver can drop a second copy (a worker stopped mid-send sends again).
"""

from __future__ import annotations

import hashlib
import hmac
import random
from collections.abc import Callable
from datetime import timedelta

SIGNATURE_HEADER = "X-PMO-Signature"
TIMESTAMP_HEADER = "X-PMO-Timestamp"
DELIVERY_HEADER = "X-PMO-Delivery"
EVENT_TYPE_HEADER = "X-PMO-Event-Type"
SIGNATURE_TOLERANCE_S = 300
"""How old a signed timestamp a receiver should accept (the README's advice)."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex, as `sha256=<hex>`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signature_is_valid(
    secret: str,
    timestamp: str,
    body: bytes,
    received: str,
    *,
    now: float,
    tolerance_s: int = SIGNATURE_TOLERANCE_S,
) -> bool:
    """What a receiver does: a matching HMAC (constant time) over a recent timestamp."""
    try:
        age = abs(now - int(timestamp))
    except ValueError:
        return False
    expected = signature(secret, timestamp, body)
    return hmac.compare_digest(expected.encode(), received.encode()) and age <= tolerance_s


def retry_delay(
    attempts: int,
    *,
    base_s: float,
    max_s: float,
    jitter: Callable[[], float] = random.random,
) -> timedelta:
    """The wait after the `attempts`-th failed attempt: base, 2x base, 4x base, ... capped.

    Half of each wait is random ("equal jitter"): deliveries that failed together, because one
    receiver was down, do not all come back at the same instant when it returns.
    """
    exponential = min(base_s * 2 ** max(attempts - 1, 0), max_s)
    return timedelta(seconds=exponential / 2 + exponential / 2 * jitter())


def is_permanent(status_code: int | None) -> bool:
    """Whether a receiver's answer means "never" rather than "not now".

    A 4xx says the request itself is wrong (unknown hook, bad payload, revoked token): retrying
    the same request cannot help, so the delivery is dead at once and an operator looks at it.
    Timeouts (408), "too early" (425) and rate limits (429) are worth another try, as are 5xx.
    """
    if status_code is None:
        return False
    return 400 <= status_code < 500 and status_code not in (408, 425, 429)
