"""RateLimiter and SharedCache: Redis when AUTHGATE_REDIS_URL is set (shared by every node), memory
otherwise. Rate limits use the ``limits`` library's moving window; a Redis outage is a 503.
"""

from __future__ import annotations

import math
from collections import OrderedDict
import time

import redis.asyncio as aioredis
from limits import parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from redis.exceptions import RedisError

from authgate.core.errors import AuthError, ErrorCode


def _unavailable(exc: Exception) -> AuthError:
    return AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=f"redis: {type(exc).__name__}")


class LimitsRateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def memory(cls) -> LimitsRateLimiter:
        return cls(MemoryStorage())

    @classmethod
    def redis(cls, url: str, timeout: float = 1.0) -> LimitsRateLimiter:
        uri = "async+" + url if not url.startswith("async+") else url
        return cls(
            RedisStorage(
                uri,
                implementation="redispy",
                wrap_exceptions=True,
                key_prefix="authgate:rl",
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
            )
        )

    async def _wait(self, item, rule: str, key: str) -> int:  # type: ignore[no-untyped-def]
        stats = await self.strategy.get_window_stats(item, rule, key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def hit(self, rule: str, key: str, limit: str) -> int | None:
        item = parse(limit)
        try:
            if await self.strategy.hit(item, rule, key):
                return None
            return await self._wait(item, rule, key)
        except (StorageError, RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def peek(self, rule: str, key: str, limit: str) -> int | None:
        item = parse(limit)
        try:
            if await self.strategy.test(item, rule, key):
                return None
            return await self._wait(item, rule, key)
        except (StorageError, RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def clear(self, rule: str, key: str, limit: str) -> None:
        try:
            await self.strategy.clear(parse(limit), rule, key)
        except (StorageError, RedisError, OSError) as exc:
            raise _unavailable(exc) from exc


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


class RedisCache:
    def __init__(self, url: str, timeout: float = 1.0) -> None:
        self.client = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def add(self, key: str, ttl_seconds: int) -> bool:
        try:
            return bool(await self.client.set(f"authgate:{key}", b"1", nx=True, ex=ttl_seconds))
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise _unavailable(exc) from exc

    async def close(self) -> None:
        await self.client.aclose()
