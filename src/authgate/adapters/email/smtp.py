"""Email over SMTP with aiosmtplib. ``AUTHGATE_SMTP_URL``: smtp://user:pass@host:port, smtps:// for
implicit TLS; ``?starttls=true`` to upgrade a plain connection.
"""

from __future__ import annotations

from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib


class SmtpMailer:
    name = "smtp"

    def __init__(self, url: str, sender: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        self.host = parts.hostname or "127.0.0.1"
        self.use_tls = parts.scheme == "smtps"
        self.port = parts.port or (465 if self.use_tls else 25)
        self.start_tls = query.get("starttls", ["false"])[0].lower() == "true"
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.sender = sender
        self.timeout = timeout

    async def send(self, to: str, subject: str, text: str) -> None:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = to
        msg["Subject"] = subject
        msg.set_content(text)
        await aiosmtplib.send(
            msg,
            hostname=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            use_tls=self.use_tls,
            start_tls=self.start_tls if not self.use_tls else False,
            timeout=self.timeout,
        )
