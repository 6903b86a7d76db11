"""PostgreSQL transactions through asyncpg: the engine, a fair admission to its pool, and sessions
without an ORM Session unless one is needed (storage/split.py).

A login's write transaction is BEGIN, a row lock, two INSERTs and COMMIT. Through an AsyncSession
each Core statement also went through the Session's bind lookup, its transaction bookkeeping and
events, and one greenlet more; on the AsyncConnection it is the statement and the driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, create_async_engine

from authgate.storage.split import CoreFirst, ReadOnly


def engine(url: str, *, pool_size: int, timeout: float) -> AsyncEngine:
    made = create_async_engine(
        url,
        pool_size=pool_size,
        # No overflow: past pool_size a request waits for a pooled connection (at most
        # ``timeout``, then 503) instead of opening one that is closed again on return.
        # Under 32 concurrent cache misses the overflow churned: asyncpg's connect (TCP,
        # an SSL attempt, startup) was ~19 % of a username check's CPU. Nothing holds a
        # connection while it needs a second one (the suite passes with a pool of one).
        max_overflow=0,
        pool_timeout=timeout,
        # No pre-ping: on asyncpg it is BEGIN, a query and ROLLBACK (three round trips) on
        # every checkout. A connection the server closed (a restart, a failover) is seen
        # for free at checkout (_discard_closed); one that breaks mid-request gives that
        # request 503 and makes the pool replace every older connection.
        pool_pre_ping=False,
        pool_recycle=600,
        connect_args={"timeout": timeout, "command_timeout": timeout * 2},
    )
    event.listen(made.sync_engine, "checkout", _discard_closed)
    return made


def _discard_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """A pooled asyncpg connection whose server side has gone is replaced at checkout (the pool
    retries with a fresh one), without a round trip."""
    raw = getattr(dbapi_connection, "_connection", None)
    if raw is not None and raw.is_closed():
        raise DisconnectionError("connection closed by the server")


class Admission:
    """At most ``size`` of the pool's connections out at once, handed out in arrival order.

    SQLAlchemy's async pool queues its waiters on an asyncio.Queue, which is not fair: a
    connection put back wakes the first waiter, but a request that asks before that waiter runs
    takes the connection, and the waiter goes to the back of the queue. With more transactions
    at once than connections some requests starved: W6 on PostgreSQL (32 clients refreshing, a
    pool of 10) answered p50 23-32 ms, p99 215-385 ms; with a pool of 40, p99 31 ms. asyncio's
    Semaphore queues a newcomer behind its waiters and hands a release to the first of them, so
    in front of the pool it keeps the order, and the pool itself never has a waiter.
    """

    def __init__(self, size: int, timeout: float) -> None:
        self.size = size
        self.timeout = timeout
        self._slots = asyncio.Semaphore(size)  # bound to a loop only when someone first waits

    async def acquire(self, engine: AsyncEngine) -> AsyncConnection:
        """A pooled connection, after the requests that asked first; PoolTimeout (503) past
        ``timeout``. The caller gives it back with ``release``."""
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await slots.acquire()
            except TimeoutError as exc:
                raise PoolTimeout(f"no connection of the pool ({self.size}) came free in {self.timeout:g} s") from exc
        else:
            await slots.acquire()  # a free slot: taken without suspending
        try:
            return await engine.connect()
        except BaseException:
            slots.release()
            raise

    async def release(self, conn: AsyncConnection) -> None:
        try:
            await conn.close()  # back to the pool
        finally:
            self._slots.release()

    @asynccontextmanager
    async def connect(self, engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
        conn = await self.acquire(engine)
        try:
            yield conn
        finally:
            await self.release(conn)


@asynccontextmanager
async def write_session(writer: AsyncEngine, admission: Admission) -> AsyncIterator[ConnectionSession]:
    """One write transaction: committed when the block ends, rolled back when it raises."""
    async with admission.connect(writer) as conn:
        await conn.begin()  # BEGIN goes out with the first statement
        session = ConnectionSession(conn)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
        finally:
            await session.release()


class ConnectionSession(CoreFirst[AsyncConnection, AsyncSession]):
    """The part of AsyncSession the repositories use, over one AsyncConnection in a transaction."""

    def _new_session(self, conn: AsyncConnection) -> AsyncSession:
        # rollback_only: the Session leaves the commit of the connection's transaction to commit().
        return AsyncSession(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only")

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._for(statement).execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._for(statement).scalar(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await self._s().get(*args, **kwargs)

    async def flush(self) -> None:
        if self._session is not None:  # without a Session nothing is pending
            await self._session.flush()

    def add(self, instance: Any) -> None:
        self._s().add(instance)

    def begin_nested(self) -> Any:
        return self._s().begin_nested()

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()  # flushes; the transaction itself is the connection's
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.commit()

    async def rollback(self) -> None:
        if self._session is not None:
            await self._session.rollback()
        if self._conn is not None and self._conn.in_transaction():
            await self._conn.rollback()

    async def release(self) -> None:
        if self._session is not None:
            await self._session.close()


class ConnectionReadSession(ReadOnly, ConnectionSession):
    """A read on the AUTOCOMMIT engine: a pooled connection taken at the first statement, each
    statement its own snapshot (no BEGIN, no ROLLBACK)."""

    def __init__(self, reader: AsyncEngine, admission: Admission) -> None:
        super().__init__()
        self._reader = reader
        self._admission = admission

    async def _open(self) -> AsyncConnection:
        if self._conn is None:
            conn = await self._admission.acquire(self._reader)
            if self._conn is None:
                self._conn = conn
            else:  # two first statements at once: one connection is the transaction's
                await self._admission.release(conn)
        return self._conn

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._open()
        return await super().execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        await self._open()
        return await super().scalar(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        await self._open()
        return await super().get(*args, **kwargs)

    async def close(self) -> None:
        try:
            await self.release()
        finally:
            if self._conn is not None:
                await self._admission.release(self._conn)
