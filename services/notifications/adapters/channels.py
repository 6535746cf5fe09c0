"""The three channels: signed webhooks, Slack-compatible incoming webhooks, e-mail over SMTP."""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import aiosmtplib
import httpx

from services.notifications.adapters.templates import RenderedMessage
from services.notifications.domain.alerts import (
    DELIVERY_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    is_permanent,
    mailbox_gone,
    receiver_gone,
    signature,
)
from services.notifications.domain.redaction import masked_url, scrubbed
from shared.settings import Settings

SLACK_TEXT_LIMIT = 3000  # Slack refuses a section block with more text than this
SLACK_HEADER_LIMIT = 150


class DeliveryFailed(Exception):
    """An attempt failed; `permanent` when trying again cannot help (the delivery is dead);
    `gone` says why the receiver refuses the subscription for good (it is then disabled).

    The message never holds a URL's path or query: it is stored and shown to every reader.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        permanent: bool = False,
        gone: str | None = None,
    ) -> None:
        super().__init__(scrubbed(message))
        self.status_code = status_code
        self.permanent = permanent or gone is not None
        self.gone = gone


def _http_failure(error: httpx.HTTPError) -> DeliveryFailed:
    if isinstance(error, httpx.HTTPStatusError):
        response = error.response
        status = response.status_code
        location = response.headers.get("location")
        # A relative Location is resolved against the request; only scheme and host are said.
        target = masked_url(str(response.url.join(location))) if location else None
        excerpt = " ".join(response.text[:200].split())
        return DeliveryFailed(
            f"HTTP {status} from the receiver: {excerpt}".rstrip(": "),
            status_code=status,
            permanent=is_permanent(status),
            gone=receiver_gone(status, target),
        )
    # The URL is left out on purpose (Slack's carries its token); scrubbed in case it is quoted.
    return DeliveryFailed(f"{type(error).__name__}: {error}".rstrip(": "))


async def post_signed_webhook(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    secret: str | None,
    delivery_id: int,
    event_type: str,
    extra_headers: Mapping[str, str],
) -> int:
    """POST a JSON body signed as the README describes; returns the receiver's status."""
    timestamp = str(int(time.time()))
    headers = {
        **extra_headers,
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: str(delivery_id),
        EVENT_TYPE_HEADER: event_type,
    }
    if secret is not None:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    try:
        response = await client.post(url, content=body, headers=headers)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise _http_failure(error) from None
    return response.status_code


def _unescaped(mrkdwn: str) -> str:
    return mrkdwn.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_payload(message: RenderedMessage, link: str) -> dict[str, Any]:
    """A Slack message people read: a header, the mrkdwn body, and the link to the project."""
    body = message.text
    if len(body) > SLACK_TEXT_LIMIT:
        body = body[: SLACK_TEXT_LIMIT - 1] + "…"
    return {
        "text": message.title,  # what notifications and clients without blocks show
        "blocks": [
            {
                "type": "header",
                # plain_text shows entities literally: undo the mrkdwn escaping here.
                "text": {
                    "type": "plain_text",
                    "text": _unescaped(message.title)[:SLACK_HEADER_LIMIT],
                },
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": body}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in the PMO dashboard>"}],
            },
        ],
    }


async def post_slack(
    client: httpx.AsyncClient, url: str, payload: Mapping[str, Any], headers: Mapping[str, str]
) -> int:
    try:
        response = await client.post(
            url,
            content=json.dumps(payload).encode(),
            headers={**headers, "Content-Type": "application/json"},
        )
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise _http_failure(error) from None
    return response.status_code


def email_message(
    settings: Settings, recipient: str, message: RenderedMessage, *, delivery_id: int
) -> EmailMessage:
    """A multipart/alternative e-mail: plain text first, HTML as the richer alternative."""
    email = EmailMessage()
    email["Subject"] = message.title
    email["From"] = settings.smtp_from
    email["To"] = recipient
    email["Date"] = formatdate(localtime=False)
    # One Message-ID per delivery, the same on every retry: mail clients drop a second copy.
    email["Message-ID"] = make_msgid(idstring=f"pmo-delivery-{delivery_id}", domain="pmo")
    email[DELIVERY_HEADER] = str(delivery_id)
    email.set_content(message.text)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email


async def send_email(settings: Settings, email: EmailMessage) -> None:
    """Hand the e-mail to the configured SMTP server (STARTTLS, TLS or plain; auth if set)."""
    if not settings.smtp_host:
        raise DeliveryFailed("PMO_SMTP_HOST is not set: e-mail cannot be sent")
    tls_context = None
    if settings.smtp_security != "none":
        tls_context = ssl.create_default_context(cafile=settings.smtp_cafile)
    try:
        await aiosmtplib.send(
            email,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            use_tls=settings.smtp_security == "tls",
            start_tls=settings.smtp_security == "starttls",
            tls_context=tls_context,
            timeout=settings.notification_send_timeout_s,
        )
    except aiosmtplib.SMTPResponseException as error:
        # 5xx is the server's "never" (unknown mailbox, refused sender); 4xx is "later".
        raise DeliveryFailed(
            f"SMTP {error.code}: {error.message}",
            status_code=error.code,
            permanent=500 <= error.code < 600,
        ) from None
    except aiosmtplib.SMTPRecipientsRefused as error:
        # One recipient per message: its refusal at RCPT TO is about that mailbox.
        codes = [response.code for response in error.recipients]
        gone = [mailbox_gone(refused.code, refused.message) for refused in error.recipients]
        said = "; ".join(f"{r.code} {' '.join(r.message.split())}" for r in error.recipients)
        raise DeliveryFailed(
            f"SMTP refused the recipient: {said}",
            status_code=codes[0] if codes else None,
            permanent=bool(codes) and all(500 <= code < 600 for code in codes),
            gone=gone[0] if gone and all(gone) else None,
        ) from None
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
        raise DeliveryFailed(f"SMTP: {type(error).__name__}: {error}") from None
