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
import re
from collections.abc import Callable
from datetime import timedelta
from http import HTTPStatus

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
    A redirect (3xx) is never followed (it would carry a signed alert to an address nobody
    subscribed), so it is final too.
    """
    if status_code is None:
        return False
    if 300 <= status_code < 400:
        return True
    return 400 <= status_code < 500 and status_code not in (408, 425, 429)


RECEIVER_GONE: frozenset[int] = frozenset({401, 403, 404, 410})
"""HTTP answers saying the address itself is gone or refuses us, whatever we send: Slack answers
404 `no_service` for a removed webhook, 410 for an archived channel, 403 for a revoked token.
Other 4xx (400, 413, 422 ...) refuse one message: that delivery is dead, the subscription stays."""


def _phrase(status_code: int) -> str:
    try:
        return f"HTTP {status_code} {HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"HTTP {status_code}"


def receiver_gone(status_code: int | None, location: str | None = None) -> str | None:
    """Why an HTTP answer refuses the subscription for good (it is then disabled), or None.

    `location` is the redirect's target, already masked: it is said, never followed.
    """
    if status_code is None:
        return None
    if 300 <= status_code < 400:
        target = f" to {location}" if location else ""
        return (
            f"the receiver redirects{target} ({_phrase(status_code)}); redirects are not "
            "followed: subscribe the new address instead"
        )
    if status_code in (401, 403):
        return f"the receiver refuses our requests ({_phrase(status_code)})"
    if status_code in RECEIVER_GONE:
        return f"the receiver is gone ({_phrase(status_code)})"
    return None


_ENHANCED_STATUS = re.compile(r"^\s*5\.(\d{1,3})\.(\d{1,3})\b")
MAILBOX_GONE_CODES: frozenset[int] = frozenset({550, 551, 553})
"""SMTP replies to RCPT TO meaning the mailbox is not there: 550 mailbox unavailable, 551 user
not local, 553 mailbox name not allowed (RFC 5321)."""


def mailbox_gone(code: int, message: str) -> str | None:
    """Why a mail server's refusal of the recipient is for good (disable), or None.

    An enhanced status code (RFC 3463) decides when the server gives one: 5.1.x (bad mailbox,
    bad domain, moved) and 5.2.1 (mailbox disabled) are about the address; 5.7.x (policy,
    relaying refused, authentication) and 5.2.2 (mailbox full) are not, though they may come
    with 550. Without one, 550, 551 and 553 are taken to mean the mailbox is not there.
    """
    if not 500 <= code < 600:
        return None
    enhanced = _ENHANCED_STATUS.match(message)
    if enhanced:
        subject, detail = int(enhanced.group(1)), int(enhanced.group(2))
        gone = subject == 1 or (subject, detail) == (2, 1)
    else:
        gone = code in MAILBOX_GONE_CODES
    if not gone:
        return None
    said = " ".join(message.split())[:200]
    return f"the mail server refuses the mailbox for good (SMTP {code}: {said})"
