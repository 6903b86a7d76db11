"""Shared loads: however many requests miss a per-node cache at once, the database hears once.

SingleFlight: one load per key. When a popular entry expires (a session's liveness), the requests
that wanted it wait for the first one's query instead of each sending their own (no herd at
expiry).

BatchFlight: one load per key, and one query for many keys. The first request to miss waits one
turn of the event loop; every other key missed in that turn joins its batch, and all are loaded by
one query (users by id and by username, client apps: a username check of a million users misses
on nearly every request, and one query of n keys costs the loop little more than one of a single
key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


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


_AGAIN: Any = object()  # a batch whose leader was cancelled: its other keys are asked again


class BatchFlight(Generic[K, V]):
    """Misses of different keys in one turn of the loop share one ``fetch_many`` (a DataLoader).

    The batch's query runs in the first caller's transaction (its leader): callers that join wait
    for it, so a caller that already holds a database connection must not join (it would wait on a
    leader that may be queued for that very connection; storage's callers fetch themselves then).
    At most ``limit`` keys go in one query; a caller past it starts the next batch.
    """

    def __init__(self, limit: int = 64) -> None:
        self.limit = limit
        self._inflight: dict[K, asyncio.Future[V | None]] = {}
        self._open: list[K] | None = None  # the batch still taking keys (its leader's first turn)

    async def load(
        self, key: K, fetch_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]
    ) -> tuple[V | None, bool]:
        """(value or None when absent, shared): ``shared`` means another caller asked for the same
        key and got the same object (copy before changing)."""
        while True:
            pending = self._inflight.get(key)
            if pending is not None:
                value = await asyncio.shield(pending)
                if value is _AGAIN:
                    continue
                return value, True
            future: asyncio.Future[V | None] = asyncio.get_running_loop().create_future()
            self._inflight[key] = future
            if self._open is not None and len(self._open) < self.limit:
                self._open.append(key)  # the leader resolves this key's future, found or not
                value = await asyncio.shield(future)
                if value is _AGAIN:
                    continue
                return value, False
            return await self._lead(key, fetch_many), False

    async def _lead(self, key: K, fetch_many: Callable[[Sequence[K]], Awaitable[Mapping[K, V]]]) -> V | None:
        batch = self._open = [key]
        try:
            try:
                await asyncio.sleep(0)  # the rest of this turn's misses join
            finally:
                if self._open is batch:
                    self._open = None
            found = await fetch_many(batch)
        except BaseException as exc:
            self._settle(batch, None, exc)
            raise
        self._settle(batch, found, None)
        return found.get(key)

    def _settle(self, batch: list[K], found: Mapping[K, V] | None, exc: BaseException | None) -> None:
        for k in batch:
            future = self._inflight.pop(k)
            if future.done():
                continue
            if found is not None:
                future.set_result(found.get(k))
            elif isinstance(exc, asyncio.CancelledError):
                future.set_result(_AGAIN)  # the leader's request went away, not the database
            else:
                future.set_exception(exc)  # type: ignore[arg-type]
                future.exception()  # retrieved: waiters re-raise it, nobody logs it as unhandled
