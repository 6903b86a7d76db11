"""SingleFlight: one load per key however many requests miss a per-node cache at once.

When a popular entry expires (a user, a client app, a session's liveness), the requests that
wanted it wait for the first one's query instead of each sending their own (no herd at expiry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


class SingleFlight:
    def __init__(self) -> None:
        self._inflight: dict[Any, asyncio.Future[Any]] = {}

    async def load(self, key: Any, fetch: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """(value, shared): ``shared`` means another request fetched it (copy before changing)."""
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending), True
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
            future.set_result(value)
            return value, False
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as unhandled
            raise
        finally:
            self._inflight.pop(key, None)
