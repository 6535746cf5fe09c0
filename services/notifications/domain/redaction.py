"""Secrets kept from readers and logs: URLs cut to scheme and host, known secrets removed.

A Slack incoming-webhook URL is its own credential (`https://hooks.slack.com/services/T…/B…/…`),
and many webhook receivers put a token in the path or the query. Whoever is not a PMO
administrator, and every log line, sees such a URL only as `scheme://host/…`: where it points,
never how to post to it. Error texts (ours, httpx's, a receiver's answer) are scrubbed the same
way before they are stored or logged, because they may quote the URL.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

HIDDEN = "…"
"""What stands for the hidden part of a URL."""

_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>`]+")
"""Any absolute URL in a text (the scheme, then everything up to a space or a quote)."""


def masked_url(url: str) -> str:
    """`https://hooks.slack.com/services/T0/B0/xyz` -> `https://hooks.slack.com/…`.

    The user:password part of the authority is dropped too; a text that is no URL at all
    (no scheme or host) is hidden whole rather than risk showing a token.
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.netloc.rpartition("@")[2]
    except ValueError:
        return HIDDEN
    if not parts.scheme or not host:
        return HIDDEN
    return f"{parts.scheme}://{host}/{HIDDEN}"


def scrubbed(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` with every URL masked (see `masked_url`) and every given secret replaced.

    Secrets shorter than 4 characters are not searched for: they would blank ordinary words.
    """
    for secret in sorted((s for s in secrets if s and len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return _URL.sub(_masked_match, text)


def _masked_match(found: re.Match[str]) -> str:
    # Punctuation ending a sentence after a URL is the sentence's, not the URL's.
    url = found.group(0)
    kept = url.rstrip(".,;:!?)]}")
    return masked_url(kept) + url[len(kept) :]


KNOWN_SECRETS: set[str] = set()
"""Secret values a service was configured with (SMTP password, webhook secrets): never logged."""


def remember_secrets(*secrets: str | None) -> None:
    """Add configured secret values to those every scrubber removes from log lines."""
    KNOWN_SECRETS.update(s for s in secrets if s)


class SecretScrubber(logging.Filter):
    """A logging filter masking URLs and the `KNOWN_SECRETS` in a record's text.

    The message is formatted here and stored scrubbed; a traceback is formatted too, scrubbed
    and kept as `exc_text` (exception messages often quote the URL that failed).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to logging's own error handling
            return True
        record.msg = scrubbed(message, KNOWN_SECRETS)
        record.args = None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = scrubbed(text, KNOWN_SECRETS)
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = scrubbed(record.exc_text, KNOWN_SECRETS)
        return True


def install_scrubber(logger_names: Iterable[str]) -> None:
    """Add the scrubber to each named logger (a logger's filters do not apply to its children)."""
    for name in logger_names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, SecretScrubber) for f in logger.filters):
            logger.addFilter(SecretScrubber())
