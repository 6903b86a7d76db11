"""RateLimiter and SharedCache: Redis when AUTHGATE_REDIS_URL is set (shared by every node), memory
otherwise. Rate limits use the ``limits`` library's moving window; a Redis outage is a 503.

The Redis client lives in ``adapters/redis.py`` and is imported only when Redis is configured
(redis-py costs ~70 ms of start-up on a node that does not use it).
"""

from __future__ import annotations

import math
from collections import OrderedDict
import time

from limits import parse
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from authgate.core.errors import AuthError, ErrorCode


def unavailable(exc: Exception) -> AuthError:
    return AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=f"redis: {type(exc).__name__}")


class LimitsRateLimiter:
    """``errors``: what the storage raises when it is unreachable (a 503)."""

    def __init__(self, storage: Storage, errors: tuple[type[Exception], ...] = ()) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)
        self._errors: tuple[type[Exception], ...] = (StorageError, OSError, *errors)

    @classmethod
    def memory(cls) -> LimitsRateLimiter:
        return cls(MemoryStorage())

    async def _wait(self, item, rule: str, key: str) -> int:  # type: ignore[no-untyped-def]
        stats = await self.strategy.get_window_stats(item, rule, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit(self, rule: str, key: str, limit: str) -> int | None:
        item = parse(limit)
        try:
            if await self.strategy.hit(item, rule, key):
                return None
            return await self._wait(item, rule, key)
        except self._errors as exc:
            raise unavailable(exc) from exc

    async def peek(self, rule: str, key: str, limit: str) -> int | None:
        item = parse(limit)
        try:
            if await self.strategy.test(item, rule, key):
                return None
            return await self._wait(item, rule, key)
        except self._errors as exc:
            raise unavailable(exc) from exc

    async def clear(self, rule: str, key: str, limit: str) -> None:
        try:
            await self.strategy.clear(parse(limit), rule, key)
        except self._errors as exc:
            raise unavailable(exc) from exc

    async def refund(self, rule: str, key: str, limit: str) -> None:
        """``limits`` has no way to give a hit back: the moving window is a list of timestamps,
        newest first (``MemoryStorage.events``; a Redis list filled by LPUSH), so the newest entry
        is dropped. It may be a parallel attempt's rather than this one's: the count is the same
        and the window ends at most one attempt's duration apart."""
        try:
            await self._drop_newest(parse(limit).key_for(rule, key))
        except self._errors as exc:
            raise unavailable(exc) from exc

    async def _drop_newest(self, key: str) -> None:
        if not isinstance(self.storage, MemoryStorage):
            raise NotImplementedError(f"refund on {type(self.storage).__name__}")
        events = self.storage.events.get(key)
        if events:
            del events[0]


class MemoryCache:
    """Set-if-absent with expiry in one process (no Redis). Entries are kept in insertion order,
    so expired ones are dropped from the front in amortised O(1) per add."""

    def __init__(self) -> None:
        self._data: OrderedDict[str, float] = OrderedDict()

    async def add(self, key: str, ttl_seconds: int) -> bool:
        now = time.monotonic()
        while self._data:
            oldest_key, oldest_expiry = next(iter(self._data.items()))
            if oldest_expiry > now:
                break
            self._data.popitem(last=False)
        expires = self._data.get(key)
        if expires is not None and expires > now:
            return False
        self._data[key] = now + ttl_seconds
        self._data.move_to_end(key)
        return True

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
