"""PostgreSQL transactions through asyncpg: the engine, and sessions without an ORM Session
unless one is needed (storage/split.py).

A login's write transaction is BEGIN, a row lock, two INSERTs and COMMIT. Through an AsyncSession
each Core statement also went through the Session's bind lookup, its transaction bookkeeping and
events, and one greenlet more; on the AsyncConnection it is the statement and the driver.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
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


@asynccontextmanager
async def write_session(writer: AsyncEngine) -> AsyncIterator[ConnectionSession]:
    """One write transaction: committed when the block ends, rolled back when it raises."""
    async with writer.connect() as conn:
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

    def __init__(self, reader: AsyncEngine) -> None:
        super().__init__()
        self._reader = reader

    async def _open(self) -> AsyncConnection:
        if self._conn is None:
            self._conn = await self._reader.connect()
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
                await self._conn.close()  # back to the pool
