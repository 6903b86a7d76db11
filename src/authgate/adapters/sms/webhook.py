"""SMS through a generic JSON webhook: POST ``{"to", "body"}`` to AUTHGATE_SMS_WEBHOOK_URL."""

from __future__ import annotations

import httpx


class WebhookSms:
    name = "webhook"

    def __init__(self, url: str, timeout: float = 10.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url
        self.client = client or httpx.AsyncClient(timeout=timeout)

    async def send(self, to: str, body: str) -> None:
        response = await self.client.post(self.url, json={"to": to, "body": body})
        response.raise_for_status()
