"""Dev-only providers that write the message to the log (refused in production mode)."""

from __future__ import annotations

import structlog

log = structlog.get_logger("authgate.console")


class ConsoleMailer:
    name = "console"

    def __init__(self) -> None:
        self.outbox: list[tuple[str, str, str]] = []

    async def send(self, to: str, subject: str, text: str) -> None:
        self.outbox.append((to, subject, text))
        # Dev mode only: the message body is shown so a developer can use the code or link.
        log.warning("console_email", to=to, subject=subject, body=text)


class ConsoleSms:
    name = "console"

    def __init__(self) -> None:
        self.outbox: list[tuple[str, str]] = []

    async def send(self, to: str, body: str) -> None:
        self.outbox.append((to, body))
        log.warning("console_sms", to=to, body=body)
