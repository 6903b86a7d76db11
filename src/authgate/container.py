"""One place builds everything: plain constructors chosen from Settings."""

from __future__ import annotations

import os
import secrets as pysecrets
from dataclasses import dataclass, field
from typing import Any

from authgate.adapters.email.console import ConsoleMailer, ConsoleSms
from authgate.adapters.idp import build_idp
from authgate.adapters.ratelimit import LimitsRateLimiter, MemoryCache
from authgate.config import Settings
from authgate.core.crypto import Keyed
from authgate.core.guard import Guard
from authgate.core.ids import Snowflake
from authgate.core.messages import Messenger
from authgate.core.otp import OtpService
from authgate.core.passwords import PasswordHasher, PasswordPolicy
from authgate.core.service import Core
from authgate.core.sessions import SessionService
from authgate.core.tokens import KeyRing, TokenService
from authgate.storage.db import SqlStore


@dataclass
class Container:
    core: Core
    closers: list[Any] = field(default_factory=list)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            result = closer()
            if hasattr(result, "__await__"):
                await result


def build_mailer(settings: Settings) -> Any:
    kind = settings.resolved_email_provider
    if kind == "console":
        return ConsoleMailer()
    if kind == "smtp":
        from authgate.adapters.email.smtp import SmtpMailer

        if not settings.smtp_url:
            raise ValueError("AUTHGATE_SMTP_URL is required for the smtp email provider")
        return SmtpMailer(settings.smtp_url, settings.mail_from, settings.smtp_timeout)
    if kind in ("sendgrid", "mandrill"):
        from authgate.adapters.email import http as email_http

        return email_http.build(kind, settings)
    return None


def build_sms(settings: Settings) -> Any:
    kind = settings.resolved_sms_provider
    if kind == "console":
        return ConsoleSms()
    if kind == "webhook":
        from authgate.adapters.sms.webhook import WebhookSms

        if not settings.sms_webhook_url:
            raise ValueError("AUTHGATE_SMS_WEBHOOK_URL is required for the webhook sms provider")
        return WebhookSms(settings.sms_webhook_url, settings.provider_timeout)
    if kind in ("twilio", "gupshup"):
        from authgate.adapters.sms import http as sms_http

        return sms_http.build(kind, settings)
    return None


def usable_cores() -> int:
    """Cores this process may run on (taskset/cgroups pinning), not all the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return os.cpu_count() or 1


async def secret_key(settings: Settings, store: SqlStore) -> bytes:
    """AUTHGATE_SECRET_KEY, or in dev a random key generated once and kept in the database."""
    if settings.secret_key is not None and settings.secret_key.get_secret_value():
        return settings.secret_key.get_secret_value().encode()
    if not settings.dev:
        raise ValueError("AUTHGATE_SECRET_KEY must be set in production")
    async with store.transaction() as tx:
        value = await tx.kv.put_if_absent("dev_secret_key", pysecrets.token_urlsafe(48))
    return value.encode()


async def build(settings: Settings) -> Container:
    closers: list[Any] = []
    store = SqlStore(
        settings.database_url,
        pool_size=settings.database_pool_size,
        timeout=settings.database_timeout,
        cache_seconds=settings.revocation_cache_seconds,
    )
    closers.append(store.close)
    try:
        await store.check_schema()
    except BaseException:
        await store.close()
        raise
    key = await secret_key(settings, store)
    keyed = Keyed(key)
    if settings.redis_url:
        from authgate.adapters.redis import RedisCache, redis_limiter

        limiter = redis_limiter(settings.redis_url, settings.redis_timeout)
        cache: Any = RedisCache(settings.redis_url, settings.redis_timeout)
    else:
        limiter = LimitsRateLimiter.memory()
        cache = MemoryCache()
    closers.append(cache.close)
    guard = Guard(limiter, enabled=settings.rate_limits == "on")
    hasher = PasswordHasher(
        memory_kib=settings.argon2_memory_kib,
        time_cost=settings.argon2_time_cost,
        parallelism=settings.argon2_parallelism,
        workers=settings.hash_workers or usable_cores(),
        queue_limit=settings.hash_queue_limit,
        max_wait=settings.hash_max_wait_seconds,
        firebase=settings.firebase_scrypt,
    )
    closers.append(hasher.close)
    keys = KeyRing(store, key, settings.key_refresh_seconds)
    await keys.ensure()
    tokens = TokenService(keys, settings.issuer, settings.audience, settings.jwt_leeway)
    sessions = SessionService(
        store,
        tokens,
        keyed,
        access_ttl=settings.access_ttl,
        refresh_ttl=settings.refresh_ttl,
        reset_ttl=settings.reset_token_ttl,
        rotation=settings.refresh_rotation,
        grace_seconds=settings.refresh_grace_seconds,
        cache_seconds=settings.revocation_cache_seconds,
        lockout_minutes=settings.lockout_minutes,
    )
    otp = OtpService(
        store,
        keyed,
        guard,
        length=settings.otp_length,
        ttl=settings.otp_ttl,
        max_tries=settings.otp_max_tries,
        daily_failures=settings.otp_daily_failures,
    )
    mailer, sms = build_mailer(settings), build_sms(settings)
    for provider in (mailer, sms):
        if hasattr(provider, "aclose"):
            closers.append(provider.aclose)
    messenger = Messenger(mailer, sms, settings.provider_retries, settings.provider_backoff)
    core = Core(
        settings=settings,
        store=store,
        keyed=keyed,
        hasher=hasher,
        policy=PasswordPolicy(
            settings.password_min_length,
            settings.password_max_length,
            settings.password_any_printable,
            settings.password_check_common,
        ),
        keys=keys,
        tokens=tokens,
        sessions=sessions,
        otp=otp,
        messenger=messenger,
        guard=guard,
        cache=cache,
        snowflake=Snowflake(settings.node_id),
        idp=build_idp(settings),
    )
    return Container(core, closers)
