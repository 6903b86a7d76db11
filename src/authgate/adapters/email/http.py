"""Email through HTTP APIs: SendGrid (v3 Mail Send) and Mandrill (Mailchimp Transactional).

Each provider raises ``ProviderError`` on any failure (transport error, timeout, unexpected status,
a recipient the provider refused); retries with backoff live in core/messages.py (Messenger).
Logs carry the provider name and status only: never the API key, the recipient or the body (which
holds the OTP code or link).
"""

from __future__ import annotations

import asyncio
from email.utils import parseaddr
from typing import Any

import httpx
import structlog

from authgate.config import Settings

log = structlog.get_logger("authgate.providers")


class ProviderError(RuntimeError):
    """A message provider did not accept the message. The text never holds secrets."""


def sender(mail_from: str) -> tuple[str, str]:
    """``AUTHGATE_MAIL_FROM`` ("Name <addr@host>" or "addr@host") as (name, address)."""
    name, address = parseaddr(mail_from)
    if "@" not in address:
        raise ValueError(f"AUTHGATE_MAIL_FROM is not an email address: {mail_from!r}")
    return name, address


class HttpProvider:
    """An httpx.AsyncClient with a base URL and one overall deadline per request."""

    name = "http"

    def __init__(self, base_url: str, timeout: float, client: httpx.AsyncClient | None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # httpx's timeout bounds each read, not the whole exchange: a peer that trickles bytes
        # could hold the caller far longer. The outer deadline bounds the request as a whole.
        try:
            async with asyncio.timeout(self.timeout):
                return await self.client.request(method, self.base_url + path, **kwargs)
        except (TimeoutError, httpx.TimeoutException):
            log.warning("provider_timeout", provider=self.name, timeout=self.timeout)
            raise ProviderError(f"{self.name}: no answer within {self.timeout}s") from None
        except httpx.HTTPError as exc:
            log.warning("provider_unreachable", provider=self.name, error=type(exc).__name__)
            raise ProviderError(f"{self.name}: {type(exc).__name__}") from None

    def _refused(self, response: httpx.Response, detail: str = "") -> ProviderError:
        log.warning(
            "provider_refused", provider=self.name, status=response.status_code, detail=detail or None
        )
        return ProviderError(f"{self.name}: HTTP {response.status_code} {detail}".rstrip())

    async def aclose(self) -> None:
        await self.client.aclose()

    def __repr__(self) -> str:  # never show credentials
        return f"<{type(self).__name__} {self.base_url}>"


class ApiKeyMailer(HttpProvider):
    """An HTTP mail API authenticated by one API key, sending as AUTHGATE_MAIL_FROM."""

    default_base_url = ""

    def __init__(
        self,
        api_key: str,
        mail_from: str,
        base_url: str | None = None,
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url or self.default_base_url, timeout, client)
        self._api_key = api_key
        self.from_name, self.from_email = sender(mail_from)


class SendGridMailer(ApiKeyMailer):
    """SendGrid v3 Mail Send.

    Request format checked against https://www.twilio.com/docs/sendgrid/api-reference/mail-send/mail-send
    (POST {base}/v3/mail/send, ``Authorization: Bearer <API key>``, JSON body: ``personalizations``
    [{``to``: [{``email``}]}] (at least one ``to``), ``from`` {``email``, ``name``}, ``subject``,
    ``content`` [{``type``: "text/plain", ``value``}]); the message is accepted with 202 (200 in the
    account's sandbox mode). Errors come back as 4xx/5xx with ``{"errors": [...]}``.
    """

    name = "sendgrid"
    _ACCEPTED = (200, 202)

    default_base_url = "https://api.sendgrid.com"

    async def send(self, to: str, subject: str, text: str) -> None:
        sender_obj = {"email": self.from_email}
        if self.from_name:
            sender_obj["name"] = self.from_name
        body = {
            "personalizations": [{"to": [{"email": to}]}],
            "from": sender_obj,
            "subject": subject,
            "content": [{"type": "text/plain", "value": text}],
        }
        response = await self._request(
            "POST", "/v3/mail/send", json=body, headers={"Authorization": f"Bearer {self._api_key}"}
        )
        if response.status_code not in self._ACCEPTED:
            raise self._refused(response)


class MandrillMailer(ApiKeyMailer):
    """Mandrill (Mailchimp Transactional) messages/send.

    Request format checked against the Mandrill API docs
    (https://mandrillapp.com/api/docs/messages.curl.html#method=send,
    https://mailchimp.com/developer/transactional/docs/outbound-email/) and Mailchimp Transactional's
    MessagePayload and SendResult schemas
    (https://apis.io/schemas/mailchimp/mailchimp-transactional-message-payload/):
    POST {base}/messages/send.json, JSON ``{"key", "message": {"text", "subject", "from_email",
    "from_name", "to": [{"email", "type": "to"}]}}``. The answer is 200 with one
    ``{email, status, reject_reason, _id}`` per recipient; ``status`` is sent, queued, scheduled,
    rejected or invalid. Rejected and invalid recipients got nothing, so they raise; API errors come
    back as HTTP 500 with ``{"status": "error", ...}``.
    """

    name = "mandrill"
    _DELIVERING = ("sent", "queued", "scheduled")

    default_base_url = "https://mandrillapp.com/api/1.0"

    async def send(self, to: str, subject: str, text: str) -> None:
        message: dict[str, Any] = {
            "text": text,
            "subject": subject,
            "from_email": self.from_email,
            "to": [{"email": to, "type": "to"}],
        }
        if self.from_name:
            message["from_name"] = self.from_name
        response = await self._request(
            "POST", "/messages/send.json", json={"key": self._api_key, "message": message}
        )
        if response.status_code != 200:
            raise self._refused(response)
        try:
            results = response.json()
        except ValueError:
            raise self._refused(response, "unreadable answer") from None
        if not isinstance(results, list) or not results:
            raise self._refused(response, "no recipient status")
        for result in results:
            status = result.get("status") if isinstance(result, dict) else None
            if status not in self._DELIVERING:
                reason = result.get("reject_reason") if isinstance(result, dict) else None
                raise self._refused(response, f"status={status} reject_reason={reason}")


def secret_value(value: Any) -> str:
    if value is None:
        return ""
    return str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)


def build(kind: str, settings: Settings) -> SendGridMailer | MandrillMailer:
    """The HTTP mailer named ``kind``; a missing credential fails here, at start-up."""
    if kind == "sendgrid":
        key = secret_value(settings.sendgrid_api_key)
        if not key:
            raise ValueError("AUTHGATE_SENDGRID_API_KEY is required for the sendgrid email provider")
        return SendGridMailer(key, settings.mail_from, settings.sendgrid_base_url, settings.provider_timeout)
    if kind == "mandrill":
        key = secret_value(settings.mandrill_api_key)
        if not key:
            raise ValueError("AUTHGATE_MANDRILL_API_KEY is required for the mandrill email provider")
        return MandrillMailer(key, settings.mail_from, settings.mandrill_base_url, settings.provider_timeout)
    raise ValueError(f"unknown HTTP email provider: {kind!r} (sendgrid or mandrill)")
