"""An alert to deliver: its webhook signature and its retry schedule."""

from __future__ import annotations

import hashlib
import hmac
from datetime import timedelta

SIGNATURE_HEADER = "X-PMO-Signature"
TIMESTAMP_HEADER = "X-PMO-Timestamp"
MAX_ATTEMPTS = 8


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex, as `sha256=<hex>`.

    The timestamp is signed with the body so a receiver can refuse replays of an old request:
    recompute the HMAC with the shared secret and compare, then check the timestamp is recent.
    """
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff after a failed attempt: 2 s, 4 s, 8 s, ... capped at 10 minutes."""
    return timedelta(seconds=min(2 ** max(attempts, 1), 600))
