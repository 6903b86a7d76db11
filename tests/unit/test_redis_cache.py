"""The shared cache on Redis: nonces are batched, one script call per batch, each key still set if absent."""

from __future__ import annotations

import asyncio
import secrets

import pytest

from authgate.core.errors import AuthError
from tests.conftest import REDIS_URL, need
from tests.faults import CuttableProxy


async def test_concurrent_adds_share_round_trips_and_keep_set_if_absent() -> None:
    from authgate.adapters.redis import RedisCache

    cache = RedisCache(need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL"))
    round_trips = 0
    real_add_all = cache._add_all

    async def counting_add_all(*args, **kwargs):  # type: ignore[no-untyped-def]
        nonlocal round_trips
        round_trips += 1
        return await real_add_all(*args, **kwargs)

    cache._add_all = counting_add_all  # type: ignore[method-assign]
    try:
        run = secrets.token_hex(6)
        keys = [f"test:{run}:{i}" for i in range(60)] + [f"test:{run}:7"]  # one key twice
        results = await asyncio.gather(*(cache.add(k, 30) for k in keys))
        assert results[:60] == [True] * 60 and results[60] is False
        assert round_trips < 10  # 61 adds of one loop turn: a handful of round trips, not 61
        assert await cache.add(f"test:{run}:0", 30) is False  # already there
        assert await cache.add(f"test:{run}:alone", 30) is True
        assert await cache.client.ttl(f"authgate:test:{run}:alone") > 0
    finally:
        await cache.close()


async def test_every_waiter_gets_503_when_redis_is_cut() -> None:
    from authgate.adapters.redis import RedisCache

    url = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    with CuttableProxy.for_url(url) as proxy:
        cache = RedisCache(proxy.url_via(url), timeout=0.5)
        try:
            assert await cache.add(f"test:{secrets.token_hex(6)}", 30) is True
            proxy.cut()
            results = await asyncio.wait_for(
                asyncio.gather(*(cache.add(f"test:cut:{i}", 30) for i in range(20)), return_exceptions=True), 10
            )
            assert all(isinstance(r, AuthError) and r.status == 503 for r in results), results
        finally:
            await cache.close()


async def test_close_leaves_no_waiter_hanging() -> None:
    from authgate.adapters.redis import RedisCache

    url = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    with CuttableProxy(*_host_port(url), hang=True) as proxy:
        cache = RedisCache(proxy.url_via(url), timeout=5)
        proxy.cut()
        waiter = asyncio.ensure_future(cache.add("test:hung", 30))
        await asyncio.sleep(0.1)
        await asyncio.wait_for(cache.close(), 5)
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(waiter, 5)


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 6379


async def test_adds_survive_redis_forgetting_the_script() -> None:
    """A Redis restart (or SCRIPT FLUSH) drops loaded scripts: the next batch loads it again."""
    from authgate.adapters.redis import RedisCache

    cache = RedisCache(need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL"))
    try:
        run = secrets.token_hex(6)
        assert await cache.add(f"test:{run}:a", 30) is True
        await cache.client.script_flush()
        assert await cache.add(f"test:{run}:b", 30) is True
        assert await cache.add(f"test:{run}:a", 30) is False
        assert 0 < await cache.client.ttl(f"authgate:test:{run}:b") <= 30
    finally:
        await cache.close()
