"""SQLite transactions on the event loop's own thread (stdlib sqlite3 through SQLAlchemy's sync API).

Through aiosqlite every statement is a round trip to its thread and back through the loop: a read
of one indexed row took 9 of them (~2.6 ms on an idle server; under load each waits for a turn of
the loop, and a user-cache miss took ~200 ms while 1,700 requests/s were served), and a login's
write transaction held the one writer connection for ~7 ms. Run here, the same work costs what
SQLite itself costs, tens of microseconds a statement: the file is local, in WAL mode readers
never wait for a writer, and a commit does not fsync (``synchronous=NORMAL``). What could block
the loop is bounded instead of waited out:

- **Readers** wait for a lock at most ``READ_BUSY_MS`` (a checkpoint resetting the WAL), then the
  request is answered 503 like any unreachable database. They are ``query_only`` and run outside
  a transaction, Core statements straight on the pooled connection (``LoopReadSession``).
- **Writers** of this process queue on an ``asyncio.Lock`` (they were one pooled connection before:
  the same queue). ``BEGIN IMMEDIATE`` never sleeps on the loop: with ``busy_timeout=0`` a lock held
  by another process (another worker, a CLI command) is retried with asyncio sleeps until the
  store's timeout, then 503.
- **Checkpoints** (copying the WAL into the database file, with an fsync) run off the loop through
  aiosqlite: the loop's writer has ``wal_autocheckpoint`` off, and the store checkpoints in the
  background every ``CHECKPOINT_EVERY`` write transactions, holding this process's writers back
  meanwhile so that the copy completes and the WAL starts over (``checkpoint``).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session

from authgate.core.errors import AuthError, ErrorCode
from authgate.storage.split import CoreFirst, ReadOnly

READ_BUSY_MS = 250
CHECKPOINT_EVERY = 200
CHECKPOINT_BUSY_MS = 200
WAL_SIZE_LIMIT = 64 * 1024 * 1024  # a WAL that grew past this is cut back when it starts over


def async_engine(url: str, timeout: float) -> AsyncEngine:
    """aiosqlite, off the loop: health checks, the schema check and WAL checkpoints."""
    engine = create_async_engine(url, connect_args={"timeout": timeout}, pool_pre_ping=False)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _loop_engine(url: str, *, pool_size: int, max_overflow: int, pragmas: list[str]) -> Engine:
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        connect_args={"check_same_thread": False, "timeout": 0},
        pool_size=pool_size,
        max_overflow=max_overflow,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun explicitly
        cur = dbapi_conn.cursor()
        for pragma in pragmas:
            cur.execute(pragma)
        cur.close()

    return engine


def loop_reader(url: str) -> Engine:
    """Readers: a pool that never blocks (a read transaction spans awaits, so many are open at once,
    and waiting for a connection on the loop's thread would stop every request). No BEGIN: each
    statement reads its own snapshot, as on PostgreSQL (storage/db.py), and a one-query read
    costs one statement."""
    return _loop_engine(
        url, pool_size=8, max_overflow=-1,
        pragmas=[f"PRAGMA busy_timeout={READ_BUSY_MS}", "PRAGMA query_only=ON"],
    )


def loop_writer(url: str) -> Engine:
    """The writer: one connection, taken only under the store's write lock. BEGIN IMMEDIATE is
    issued by ``write_session`` (it must be retried without blocking), not on SQLAlchemy's begin."""
    return _loop_engine(
        url, pool_size=1, max_overflow=0,
        pragmas=[
            "PRAGMA journal_mode=WAL", "PRAGMA busy_timeout=0", "PRAGMA synchronous=NORMAL",
            "PRAGMA foreign_keys=ON", "PRAGMA wal_autocheckpoint=0",
            f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}",
        ],
    )


async def _begin_immediate(raw: sqlite3.Connection, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="OperationalError") from exc
            if loop.time() >= deadline:
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="database locked") from exc
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)


@asynccontextmanager
async def write_session(engine: Engine, lock: asyncio.Lock, timeout: float) -> AsyncIterator[LoopSession]:
    """One write transaction on the loop's writer: committed when the block ends, rolled back when
    it raises."""
    if lock.locked():
        try:
            async with asyncio.timeout(timeout):
                await lock.acquire()
        except TimeoutError:
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="write queue") from None
    else:
        await lock.acquire()  # free: taken without a wait (or a timer)
    try:
        with engine.connect() as conn:
            raw: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
            await _begin_immediate(raw, timeout)
            session = LoopSession(conn)
            try:
                yield session
                session.commit()
                if raw.in_transaction:  # a block that ran no statement: SQLAlchemy began nothing
                    raw.commit()
            except BaseException:
                session.rollback()
                if raw.in_transaction:
                    raw.rollback()
                raise
            finally:
                session.release()
    finally:
        lock.release()


class LoopSession(CoreFirst[Connection, Session]):
    """The part of AsyncSession the repositories use, over a connection on the loop's thread
    (Core statements on the connection, a Session from the first ORM use on: storage/split.py).
    A login's transaction never needs a Session."""

    def _new_session(self, conn: Connection) -> Session:
        # rollback_only: a Session joining a transaction Core statements began leaves its
        # commit to commit() below.
        return Session(bind=conn, expire_on_commit=False, join_transaction_mode="rollback_only")

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self._for(statement).execute(statement, *args, **kwargs)

    async def scalar(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self._for(statement).scalar(statement, *args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._s().get(*args, **kwargs)

    async def flush(self) -> None:
        if self._session is not None:  # without a Session nothing is pending
            self._session.flush()

    def add(self, instance: Any) -> None:
        self._s().add(instance)

    @asynccontextmanager
    async def begin_nested(self) -> AsyncIterator[None]:
        with self._s().begin_nested():
            yield

    def commit(self) -> None:
        if self._session is not None:
            self._session.commit()  # flushes; the transaction itself is the connection's
        if self._conn is not None and self._conn.in_transaction():
            self._conn.commit()

    def rollback(self) -> None:
        if self._session is not None:
            self._session.rollback()
        if self._conn is not None and self._conn.in_transaction():
            self._conn.rollback()

    def release(self) -> None:
        if self._session is not None:
            self._session.close()


class LoopReadSession(ReadOnly, LoopSession):
    """A read: statements on a pooled connection taken at the first one, outside a transaction
    (each statement reads its own snapshot, as PostgreSQL's reads do)."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self._engine = engine

    def _c(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    async def close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            if self._conn is not None:
                self._conn.close()  # back to the pool, which rolls it back


async def checkpoint(engine: AsyncEngine, lock: asyncio.Lock) -> bool:
    """Copy the WAL into the database file and start it over (RESTART), off the loop, with this
    process's writers held back on ``lock``; True when the WAL was started over.

    A PASSIVE checkpoint copies only what was committed before it began: under a steady stream of
    writes some frames were always newer, the WAL was never wholly copied, and SQLite never began
    it again: it grew by every commit (~480 MB in a minute of logins), each commit extending the
    file. Holding the writers back for the copy (a few ms every CHECKPOINT_EVERY writes) lets it
    finish; the next write then overwrites the WAL from its start. A reader or another process's
    writer is waited for at most CHECKPOINT_BUSY_MS: then the WAL stays as it is until next time.
    """
    async with lock, engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        busy = (await (await raw.execute("PRAGMA busy_timeout")).fetchone())[0]  # type: ignore[union-attr]
        await raw.execute(f"PRAGMA busy_timeout={CHECKPOINT_BUSY_MS}")  # type: ignore[union-attr]
        try:
            cursor = await raw.execute("PRAGMA wal_checkpoint(RESTART)")  # type: ignore[union-attr]
            blocked, _frames, _copied = await cursor.fetchone()
        finally:
            await raw.execute(f"PRAGMA busy_timeout={busy}")  # type: ignore[union-attr]
    return not blocked
