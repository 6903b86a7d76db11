"""The Redis side of rate limiting and the shared cache (AUTHGATE_REDIS_URL): every node sees the
same counters, nonces and one-time marks. Imported only when Redis is configured."""

from __future__ import annotations

import redis.asyncio as aioredis
from limits.aio.storage import RedisStorage
from redis.exceptions import RedisError

from authgate.adapters.ratelimit import LimitsRateLimiter, unavailable


def redis_limiter(url: str, timeout: float = 1.0) -> LimitsRateLimiter:
    uri = "async+" + url if not url.startswith("async+") else url
    storage = RedisStorage(
        uri,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix="authgate:rl",
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return LimitsRateLimiter(storage, errors=(RedisError,))


class RedisCache:
    def __init__(self, url: str, timeout: float = 1.0) -> None:
        self.client = aioredis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)

    async def add(self, key: str, ttl_seconds: int) -> bool:
        try:
            return bool(await self.client.set(f"authgate:{key}", b"1", nx=True, ex=ttl_seconds))
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from exc

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise unavailable(exc) from exc

    async def close(self) -> None:
        await self.client.aclose()
