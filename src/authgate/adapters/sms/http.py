"""SMS through HTTP APIs: Twilio (Programmable Messaging) and Gupshup (Enterprise SMS).

Each provider raises ``ProviderError`` on any failure (transport error, timeout, unexpected status,
an error status inside a 200 answer); retries with backoff live in core/messages.py (Messenger).
Logs carry the provider name and status only: never the auth token or password, the number or the
body (which holds the OTP code).
"""

from __future__ import annotations

from typing import Any

import httpx

from authgate.adapters.email.http import HttpProvider, ProviderError, secret_value
from authgate.config import Settings

__all__ = ["GupshupSms", "ProviderError", "TwilioSms", "build"]


class TwilioSms(HttpProvider):
    """Twilio Messages resource, create.

    Request format checked against https://www.twilio.com/docs/messaging/api/message-resource and
    https://www.twilio.com/docs/usage/requests-to-twilio: POST
    {base}/2010-04-01/Accounts/{AccountSid}/Messages.json, HTTP basic auth AccountSid:AuthToken,
    form-encoded ``To`` (E.164), ``From`` (a Twilio number) and ``Body``; ``From`` may instead be a
    Messaging Service (``MessagingServiceSid``, an ``MG…`` SID). A created message answers 201.
    """

    name = "twilio"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        sender: str,
        base_url: str = "https://api.twilio.com",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, timeout, client)
        self.account_sid = account_sid
        self._auth = httpx.BasicAuth(account_sid, auth_token)
        self.sender = sender

    async def send(self, to: str, body: str) -> None:
        form = {"To": to, "Body": body}
        if self.sender.startswith("MG") and len(self.sender) == 34:
            form["MessagingServiceSid"] = self.sender
        else:
            form["From"] = self.sender
        response = await self._request(
            "POST", f"/2010-04-01/Accounts/{self.account_sid}/Messages.json", data=form, auth=self._auth
        )
        if response.status_code not in (200, 201):
            raise self._refused(response)


class GupshupSms(HttpProvider):
    """Gupshup Enterprise SMS API, SendMessage.

    Request format checked against https://docs.gupshup.io/docs/send-message-to-single-number and
    https://docs.gupshup.io/docs/getting-started-with-sms-api: {base}/GatewayAPI/rest (GET or POST)
    with ``method=SendMessage``, ``send_to`` (digits only, country code first), ``msg``,
    ``msg_type`` (TEXT, or Unicode_text for non-Latin text), ``userid``, ``auth_scheme=plain``
    (the only scheme), ``password``, ``v=1.1`` and ``format`` (TEXT, XML or JSON). We POST the form so
    the password never sits in a URL (proxy and access logs). With ``format=json`` the answer is
    ``{"response": {"status": "success"|"error", "id", "phone", "details"}}``, with HTTP 200 even for
    errors, so the status inside is what counts.
    """

    name = "gupshup"

    def __init__(
        self,
        user_id: str,
        password: str,
        base_url: str = "https://enterprise.smsgupshup.com",
        timeout: float = 10.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, timeout, client)
        self.user_id = user_id
        self._password = password

    async def send(self, to: str, body: str) -> None:
        digits = "".join(ch for ch in to if ch.isdigit())
        form = {
            "method": "SendMessage",
            "send_to": digits,
            "msg": body,
            # Seven-bit TEXT would mangle the zh / zh-Hant OTP texts; Unicode_text is sent as UCS-2.
            "msg_type": "TEXT" if body.isascii() else "Unicode_text",
            "userid": self.user_id,
            "auth_scheme": "plain",
            "password": self._password,
            "v": "1.1",
            "format": "json",
        }
        response = await self._request("POST", "/GatewayAPI/rest", data=form)
        if response.status_code != 200:
            raise self._refused(response)
        try:
            payload: Any = response.json()
        except ValueError:
            raise self._refused(response, "unreadable answer") from None
        answer = payload.get("response") if isinstance(payload, dict) else None
        status = str(answer.get("status", "")).lower() if isinstance(answer, dict) else ""
        if status != "success":
            # On error ``id`` is Gupshup's error code (e.g. 105 wrong credentials): safe to show.
            code = answer.get("id") if isinstance(answer, dict) else None
            raise self._refused(response, f"status={status or 'missing'} code={code}")


def _missing(names: list[str], kind: str) -> str:
    verb = "is" if len(names) == 1 else "are"
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{listed} {verb} required for the {kind} sms provider"


def build(kind: str, settings: Settings) -> TwilioSms | GupshupSms:
    """The HTTP SMS sender named ``kind``; a missing credential fails here, at start-up."""
    timeout = settings.provider_timeout
    if kind == "twilio":
        missing = [
            name
            for name, value in (
                ("AUTHGATE_TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
                ("AUTHGATE_TWILIO_AUTH_TOKEN", secret_value(settings.twilio_auth_token)),
                ("AUTHGATE_TWILIO_FROM", settings.twilio_from),
            )
            if not value
        ]
        if missing:
            raise ValueError(_missing(missing, "twilio"))
        return TwilioSms(
            settings.twilio_account_sid,  # type: ignore[arg-type]
            secret_value(settings.twilio_auth_token),
            settings.twilio_from,  # type: ignore[arg-type]
            settings.twilio_base_url,
            timeout,
        )
    if kind == "gupshup":
        missing = [
            name
            for name, value in (
                ("AUTHGATE_GUPSHUP_USER_ID", settings.gupshup_user_id),
                ("AUTHGATE_GUPSHUP_PASSWORD", secret_value(settings.gupshup_password)),
            )
            if not value
        ]
        if missing:
            raise ValueError(_missing(missing, "gupshup"))
        return GupshupSms(
            settings.gupshup_user_id,  # type: ignore[arg-type]
            secret_value(settings.gupshup_password),
            settings.gupshup_base_url,
            timeout,
        )
    raise ValueError(f"unknown HTTP sms provider: {kind!r} (twilio or gupshup)")
