"""Email over a real SMTP relay (aiosmtplib), with ids that let a retry be recognised.

SMTP itself cannot drop a duplicate, so each message carries a Message-ID derived from
the action id (mail stores and clients collapse equal Message-IDs) plus the action id in
`Idempotency-Key` and `X-Lifecycle-Action` for relays and tools that look for them.

Timeouts are per reply, as RFC 5321 §4.5.3.2 asks: 5 minutes for the greeting and each
command, 10 minutes for the reply to the message's final ".". A relay that is still
delivering when an impatient client gives up has already taken the message; the retry
would send it again ("would typically result in delivery of multiple copies", §4.5.3.2.6).
"""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

import aiosmtplib
from aiosmtplib.response import SMTPResponse

from activities.config import SmtpSettings
from activities.errors import permanent, retryable
from engine.state import Action, ActionResult


def message_id_for(action: Action, sender: str) -> str:
    """The Message-ID of an action's email: stable across retries, unique per action id."""
    digest = hashlib.sha256(action.id.encode()).hexdigest()[:40]
    domain = sender.rpartition("@")[2] or "lifecycle.invalid"
    return f"<lifecycle.{digest}@{domain}>"


def build_message(action: Action, settings: SmtpSettings) -> EmailMessage:
    """The email for an action: plain text body, lifecycle headers for tracing and dedup."""
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = action.to or ""
    message["Subject"] = action.subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id_for(action, settings.sender)
    message["Idempotency-Key"] = action.id
    message["X-Lifecycle-Action"] = action.id
    message["X-Lifecycle-Customer"] = action.customer_id
    message["X-Lifecycle-Stage"] = action.stage
    if action.category:
        message["X-Lifecycle-Category"] = action.category
    message.set_content(action.body)
    return message


class RelayClient(aiosmtplib.SMTP):
    """aiosmtplib's client with RFC 5321's longer wait for the end-of-message reply.

    aiosmtplib has one timeout for every reply; DATA gets its own here (its 354 reply
    waits as long too, which the RFC allows: its figures are minimums).
    """

    def __init__(self, *, data_timeout: float, **options: Any) -> None:
        """`timeout` is the wait for the greeting and each command's reply."""
        super().__init__(**options)
        self.data_timeout = data_timeout

    async def data(self, message: str | bytes, /, *, timeout: Any = None) -> SMTPResponse:
        """Send the message and wait up to `data_timeout` for the relay to take it."""
        return await super().data(message, timeout=self.data_timeout)


async def send_email(action: Action, settings: SmtpSettings) -> ActionResult:
    """Hand the action's email to the relay; raise a retryable or permanent ApplicationError."""
    if not action.to:
        raise permanent(f"action {action.id}: no email address to send to")
    message = build_message(action, settings)
    client = RelayClient(
        hostname=settings.host,
        port=settings.port,
        username=settings.username,
        password=settings.password.get_secret_value() if settings.password else None,
        start_tls=settings.starttls,
        use_tls=settings.tls,
        timeout=settings.timeout,
        data_timeout=settings.data_timeout,
    )
    try:
        async with client:  # connects (greeting, STARTTLS, login); QUIT trouble afterwards is ignored
            await client.send_message(message)
    except aiosmtplib.SMTPRecipientsRefused as error:
        codes = [refused.code for refused in error.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in error.recipients)
        if all(code >= 500 for code in codes):
            raise permanent(f"SMTP refused {detail}") from error
        raise retryable(f"SMTP deferred {detail}") from error
    except aiosmtplib.SMTPAuthenticationError as error:
        # Our credentials, not the customer's address: fixable by the operator, so retry.
        raise retryable(f"SMTP authentication failed: {error.code} {error.message}") from error
    except aiosmtplib.SMTPResponseException as error:
        text = f"SMTP {error.code} {error.message}"
        raise (permanent(text) if error.code >= 500 else retryable(text)) from error
    except (aiosmtplib.SMTPException, OSError) as error:
        # Connection refused, timeouts, disconnects, TLS trouble: the relay may come back.
        raise retryable(f"SMTP {settings.host}:{settings.port} unavailable: {error}") from error
    return ActionResult(status="done", detail=f"email to {action.to} via {settings.host}")
