"""Rate limits (CONTRACT §1), counted across nodes when Redis is configured, in memory otherwise.

Rules are named here once; surfaces never pick limits of their own.
"""

from __future__ import annotations

import ipaddress

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.ports import RateLimiter


_IP_CHARS = "0123456789abcdef:."


def limit_key(key: str) -> str:
    """The key a limit counts under: lower case, and an IPv6 client by its /64. One subscriber
    is handed a whole /64 (RFC 6177), so counting each of its 2^64 addresses apart gave anyone with
    one as many budgets as they liked, for every per-IP rule (an IPv4-mapped address counts as its
    IPv4 address)."""
    key = key.lower()
    if ":" not in key or key.strip(_IP_CHARS):
        return key
    try:
        ip = ipaddress.IPv6Address(key)
    except ValueError:
        return key
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return f"{ipaddress.IPv6Network((int(ip) >> 64 << 64, 64))}"


class Guard:
    def __init__(self, limiter: RateLimiter, enabled: bool = True) -> None:
        self.limiter = limiter
        self.enabled = enabled

    async def hit(self, rule: str, key: str, limit: str) -> None:
        """Count one event; raise 429 (with Retry-After) when over ``limit``."""
        if not self.enabled or not key:
            return
        wait = await self.limiter.hit(rule, limit_key(key), limit)
        if wait is not None:
            raise AuthError(ErrorCode.RATE_LIMITED, retry_after=max(1, wait))

    async def check(self, rule: str, key: str, limit: str) -> None:
        """Refuse when ``limit`` is already used up, without counting (failed-login budgets)."""
        if not self.enabled or not key:
            return
        wait = await self.limiter.peek(rule, limit_key(key), limit)
        if wait is not None:
            raise AuthError(ErrorCode.RATE_LIMITED, retry_after=max(1, wait))

    async def count(self, rule: str, key: str, limit: str) -> None:
        """Count without refusing (the refusal comes from ``check`` on the next attempt)."""
        if self.enabled and key:
            await self.limiter.hit(rule, limit_key(key), limit)

    async def clear(self, rule: str, key: str, limit: str) -> None:
        if self.enabled and key:
            await self.limiter.clear(rule, limit_key(key), limit)

    async def refund(self, rule: str, key: str, limit: str) -> None:
        """Give back one counted event (an attempt charged up front that was no failure)."""
        if self.enabled and key:
            await self.limiter.refund(rule, limit_key(key), limit)

    def budget(self, rule: str, key: str, limit: str) -> Budget:
        """One failure budget (``rule`` for ``key`` within ``limit``): ``check`` it before the
        attempt, ``fail`` it when the attempt turns out to be a failure."""
        return Budget(self, rule, key, limit)


class Budget:
    """A budget of failures that refuses the next attempt once used up (failed logins, wrong
    codes or PINs, answers that reveal an account): the attempt is refused up front by ``check``
    (429 with Retry-After, nothing counted), and only what the caller calls a failure is counted,
    by ``fail``, never refused on the spot. Keys are lower-cased; an empty key is never limited.
    """

    __slots__ = ("guard", "key", "limit", "rule")

    def __init__(self, guard: Guard, rule: str, key: str, limit: str) -> None:
        self.guard = guard
        self.rule = rule
        self.key = key
        self.limit = limit

    async def check(self) -> None:
        """Raise 429 (with Retry-After) when the budget is used up; counts nothing."""
        await self.guard.check(self.rule, self.key, self.limit)

    async def fail(self) -> None:
        """Count one failure; the refusal comes from ``check`` on the next attempt."""
        await self.guard.count(self.rule, self.key, self.limit)

    def attempt(self) -> Attempt:
        """One attempt charged to the budget before it runs, for attempts that take long enough
        (a password or PIN hash) for parallel ones to overshoot a check-then-count budget:
        ``check`` and ``fail`` counted only what had finished, so N guesses fired at once all
        passed the check of a budget with one failure left. Entering counts the attempt (429 when
        the budget is used up); leaving gives it back unless ``Attempt.fail`` was called."""
        return Attempt(self)


class Attempt:
    """``async with budget.attempt() as attempt:``; call ``attempt.fail()`` when it failed."""

    __slots__ = ("budget", "failed")

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.failed = False

    def fail(self) -> None:
        self.failed = True

    async def __aenter__(self) -> Attempt:
        budget = self.budget
        await budget.guard.hit(budget.rule, budget.key, budget.limit)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.failed:
            budget = self.budget
            await budget.guard.refund(budget.rule, budget.key, budget.limit)
