"""Rate limits (CONTRACT §1), counted across nodes when Redis is configured, in memory otherwise.

Rules are named here once; surfaces never pick limits of their own.
"""

from __future__ import annotations

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.ports import RateLimiter


class Guard:
    def __init__(self, limiter: RateLimiter, enabled: bool = True) -> None:
        self.limiter = limiter
        self.enabled = enabled

    async def hit(self, rule: str, key: str, limit: str) -> None:
        """Count one event; raise 429 (with Retry-After) when over ``limit``."""
        if not self.enabled or not key:
            return
        wait = await self.limiter.hit(rule, key.lower(), limit)
        if wait is not None:
            raise AuthError(ErrorCode.RATE_LIMITED, retry_after=max(1, wait))

    async def check(self, rule: str, key: str, limit: str) -> None:
        """Refuse when ``limit`` is already used up, without counting (failed-login budgets)."""
        if not self.enabled or not key:
            return
        wait = await self.limiter.peek(rule, key.lower(), limit)
        if wait is not None:
            raise AuthError(ErrorCode.RATE_LIMITED, retry_after=max(1, wait))

    async def count(self, rule: str, key: str, limit: str) -> None:
        """Count without refusing (the refusal comes from ``check`` on the next attempt)."""
        if self.enabled and key:
            await self.limiter.hit(rule, key.lower(), limit)

    async def clear(self, rule: str, key: str, limit: str) -> None:
        if self.enabled and key:
            await self.limiter.clear(rule, key.lower(), limit)
