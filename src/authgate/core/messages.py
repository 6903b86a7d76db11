"""Sending OTPs and links through the configured providers, with retries and a clear failure.

A provider call that fails is retried with exponential backoff; if every try fails the caller gets
``message_not_sent`` and the flow that asked undoes what it prepared (no usable OTP is left).
"""

from __future__ import annotations

import asyncio
import random
import time

import structlog

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.ports import Mailer, SmsSender

log = structlog.get_logger("authgate.messages")

_OTP_TEXT = {
    "en": ("Your verification code", "Your verification code is {code}. It expires in {minutes} minutes."),
    "zh-Hant": ("您的驗證碼", "您的驗證碼是 {code}，將於 {minutes} 分鐘後失效。"),
    "zh": ("您的验证码", "您的验证码是 {code}，将在 {minutes} 分钟后失效。"),
    "fr": ("Votre code de vérification", "Votre code de vérification est {code}. Il expire dans {minutes} minutes."),
    "sw": ("Nambari yako ya uthibitisho", "Nambari yako ya uthibitisho ni {code}. Itaisha baada ya dakika {minutes}."),
}
_LINK_TEXT = {
    "en": ("Verify your email", "Open this link to verify your email address:\n\n{link}\n\nIt expires in {span}. If you did not "
            "sign up, ignore this email: the address stays unverified."),
    "zh-Hant": ("驗證您的電子郵件", "請打開以下連結以驗證您的電子郵件地址：\n\n{link}\n\n連結將於 {span}後失效。"
                "如果您沒有註冊，請忽略此郵件，該地址不會被驗證。"),
    "zh": ("验证您的电子邮件", "请打开以下链接以验证您的电子邮件地址：\n\n{link}\n\n链接将在 {span}后失效。"
           "如果您没有注册，请忽略此邮件，该地址不会被验证。"),
    "fr": ("Vérifiez votre adresse e-mail", "Ouvrez ce lien pour vérifier votre adresse e-mail :\n\n{link}\n\nIl expire dans {span}. "
           "Si vous ne vous êtes pas inscrit, ignorez cet e-mail : l'adresse restera non vérifiée."),
    "sw": ("Thibitisha barua pepe yako", "Fungua kiungo hiki kuthibitisha barua pepe yako:\n\n{link}\n\nKitaisha baada ya {span}. "
           "Kama hukujisajili, puuza barua pepe hii: anwani haitathibitishwa."),
}
# (hours, minutes) of a link's lifetime, AUTHGATE_VERIFICATION_TTL: hours from two hours up.
_SPANS = {
    "en": ("{n} hours", "{n} minutes"),
    "zh-Hant": ("{n} 小時", "{n} 分鐘"),
    "zh": ("{n} 小时", "{n} 分钟"),
    "fr": ("{n} heures", "{n} minutes"),
    "sw": ("saa {n}", "dakika {n}"),
}


def span_text(locale: str, seconds: int) -> str:
    hours, minutes = _SPANS.get(locale, _SPANS["en"])
    if seconds >= 7200:
        return hours.format(n=seconds // 3600)
    return minutes.format(n=max(1, seconds // 60))


def otp_text(locale: str, code: str, minutes: int) -> tuple[str, str]:
    subject, body = _OTP_TEXT.get(locale, _OTP_TEXT["en"])
    return subject, body.format(code=code, minutes=minutes)


def link_text(locale: str, link: str, ttl_seconds: int) -> tuple[str, str]:
    subject, body = _LINK_TEXT.get(locale, _LINK_TEXT["en"])
    return subject, body.format(link=link, span=span_text(locale, ttl_seconds))


NETWORK_GUESS = 0.25  # seconds: an SMTP or HTTP provider's send, before one has been timed here


class Messenger:
    def __init__(
        self, mailer: Mailer | None, sms: SmsSender | None, retries: int = 3, backoff: float = 0.2
    ) -> None:
        self.mailer = mailer
        self.sms_sender = sms
        self.retries = max(1, retries)
        self.backoff = backoff
        # Seconds a successful send takes, per channel (a moving average on this node), so that a
        # send pretended for an unknown account takes about as long as a real one (``pause_like``).
        # Until this node has sent one, a network provider is guessed at NETWORK_GUESS seconds.
        self.typical: dict[str, float] = {
            channel: NETWORK_GUESS if provider is not None and provider.name != "console" else 0.0
            for channel, provider in (("email", mailer), ("sms", sms))
        }
        self._measured: set[str] = set()

    @property
    def has_email(self) -> bool:
        return self.mailer is not None

    @property
    def has_sms(self) -> bool:
        return self.sms_sender is not None

    async def email(self, to: str, subject: str, text: str) -> None:
        if self.mailer is None:
            raise AuthError(ErrorCode.NO_CHANNEL, detail="email")
        await self._timed("email", self.mailer.name, lambda: self.mailer.send(to, subject, text))

    async def sms(self, to: str, body: str) -> None:
        if self.sms_sender is None:
            raise AuthError(ErrorCode.NO_CHANNEL, detail="sms")
        await self._timed("sms", self.sms_sender.name, lambda: self.sms_sender.send(to, body))

    async def pause_like(self, *channels: str) -> None:
        """Wait about as long as a real send through ``channels`` takes here (±15 %, at most 5 s):
        the answer to a send pretended for an unknown account would otherwise come back at once,
        and a provider's few hundred milliseconds would tell a known address from an unknown one."""
        typical = min(5.0, sum(self.typical.get(channel, 0.0) for channel in channels))
        if typical > 0:
            await asyncio.sleep(typical * random.uniform(0.85, 1.15))

    async def _timed(self, channel: str, provider: str, call) -> None:  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        await self._with_retries(provider, call)
        took = time.perf_counter() - start
        if channel in self._measured:
            self.typical[channel] = 0.8 * self.typical[channel] + 0.2 * took
        else:
            self._measured.add(channel)
            self.typical[channel] = took

    async def _with_retries(self, provider: str, call) -> None:  # type: ignore[no-untyped-def]
        delay = self.backoff
        for attempt in range(1, self.retries + 1):
            try:
                await call()
                return
            except AuthError:
                raise
            except Exception as exc:  # noqa: BLE001 - any provider failure is retried
                log.warning("provider_failed", provider=provider, attempt=attempt, error=type(exc).__name__)
                if attempt == self.retries:
                    break
                await asyncio.sleep(delay)
                delay *= 2
        raise AuthError(ErrorCode.MESSAGE_NOT_SENT)
