"""The Store: engines, transactions and repositories for SQLite (default) and PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with BEGIN IMMEDIATE so two
writers queue on the lock instead of failing half-way, and this process's writers share one
connection (they queue in the pool, not on the file lock). SQLite read transactions run on the
event loop itself (see ``LoopReadSession``). Any driver error that means "the database is not
answering" becomes ``service_unavailable`` (503), never a stack trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from authgate.core.errors import AuthError, ErrorCode
from authgate.storage.repositories import (
    Audit,
    ClientCache,
    Clients,
    Identities,
    Keys,
    Kv,
    Secrets,
    Sessions,
    UserCache,
    Users,
)


# Errors that mean "the database is not answering" (a 503), whatever the driver.
_UNREACHABLE = (OperationalError, PoolTimeout, OSError, asyncio.TimeoutError, ConnectionError)

# The Alembic revision this code expects (tests check it is the migrations' head).
SCHEMA_REVISION = "0001"


class SchemaNotReady(RuntimeError):
    """The database has no authgate schema, or an older one: `authgate migrate` was not run."""


class Tx:
    def __init__(
        self,
        session: AsyncSession,
        cache: UserCache | None = None,
        read_only: bool = False,
        client_cache: ClientCache | None = None,
    ) -> None:
        self.session = session
        self.users = Users(session, cache, read_only)
        self.sessions = Sessions(session)
        self.secrets = Secrets(session)
        self.keys = Keys(session)
        self.identities = Identities(session)
        self.clients = Clients(session, client_cache, read_only)
        self.audit = Audit(session)
        self.kv = Kv(session)


class LazyReadSession:
    """The part of AsyncSession that read repositories use, opened on the first query."""

    def __init__(self, factory: async_sessionmaker[AsyncSession]) -> None:
        self._factory = factory
        self._session: AsyncSession | None = None

    async def _open(self) -> AsyncSession:
        if self._session is None:
            self._session = self._factory()
            await self._session.begin()
        return self._session

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._open()).execute(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._open()).get(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return await (await self._open()).scalar(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name}() in a read-only transaction: use transaction(write=True)")

    async def close(self) -> None:
        if self._session is not None:
            try:
                await self._session.rollback()
            finally:
                await self._session.close()


class LoopReadSession:
    """A SQLite read transaction run on the event loop's own thread, opened on the first query.

    Through aiosqlite every statement is a round trip to its thread and back through the loop: a
    read of one indexed row took 9 of them (~2.6 ms idle; under load each waits for a turn of the
    loop, and a cache miss took ~200 ms while 1,700 requests/s were served). Run here, the same
    read costs tens of microseconds: the file is local, and in WAL mode readers never wait for a
    writer. The rare busy reader (a checkpoint resetting the WAL) waits at most
    ``_READ_BUSY_MS``, then the request is answered 503 like any unreachable database.
    """

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._session: Session | None = None

    def _open(self) -> Session:
        if self._session is None:
            self._session = self._factory()
        return self._session

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return self._open().execute(*args, **kwargs)

    async def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._open().get(*args, **kwargs)

    async def scalar(self, *args: Any, **kwargs: Any) -> Any:
        return self._open().scalar(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"{name}() in a read-only transaction: use transaction(write=True)")

    async def close(self) -> None:
        if self._session is not None:
            try:
                self._session.rollback()
            finally:
                self._session.close()


_READ_BUSY_MS = 250


def _sqlite_loop_reader(url: str) -> Engine:
    """The synchronous (stdlib sqlite3) engine behind ``LoopReadSession``. Its pool never blocks:
    a read transaction spans awaits, so many can be open at once, and waiting for a connection on
    the loop's thread would stop every request."""
    engine = create_engine(
        make_url(url).set(drivername="sqlite+pysqlite"),
        connect_args={"check_same_thread": False, "timeout": _READ_BUSY_MS / 1000},
        pool_size=8,
        max_overflow=-1,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={_READ_BUSY_MS}")
        cur.execute("PRAGMA query_only=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")

    return engine


def _sqlite_engine(url: str, immediate: bool, timeout: float) -> AsyncEngine:
    # SQLite has one writer at a time. Writers of this process queue for one connection in the
    # pool (an asyncio wait, woken the moment it is free) rather than each taking a connection and
    # colliding on the file lock, where SQLite's busy handler sleeps for 1-100 ms between retries:
    # that capped logins at ~115/s with 32 clients whatever the hashing cost. Other processes
    # (--workers, CLI commands) still queue on the lock through busy_timeout.
    pool = {"pool_size": 1, "max_overflow": 0, "pool_timeout": timeout} if immediate else {}
    engine = create_async_engine(url, connect_args={"timeout": timeout}, pool_pre_ping=False, **pool)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class SqlStore:
    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0, cache_seconds: float = 0.0) -> None:
        self.url = url
        self.user_cache = UserCache(cache_seconds)
        self.client_cache = ClientCache(cache_seconds)
        self.is_sqlite = url.startswith("sqlite")
        self.timeout = timeout
        if self.is_sqlite:
            self.writer = _sqlite_engine(url, True, timeout)
            self.reader = _sqlite_engine(url, False, timeout)  # health and schema checks, off the loop
            self.loop_reader: Engine | None = _sqlite_loop_reader(url)
        else:
            self.writer = create_async_engine(
                url,
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=timeout,
                pool_pre_ping=True,
                connect_args={"timeout": timeout, "command_timeout": timeout * 2},
            )
            self.reader = self.writer
            self.loop_reader = None
        self._loop_read_sessions = (
            sessionmaker(self.loop_reader, expire_on_commit=False) if self.loop_reader is not None else None
        )
        self._writer_sessions = async_sessionmaker(self.writer, expire_on_commit=False)
        self._reader_sessions = async_sessionmaker(self.reader, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        try:
            if not write:
                # Read transactions open their session on first use: a request served from the
                # user cache never touches the pool.
                lazy: LazyReadSession | LoopReadSession = (
                    LoopReadSession(self._loop_read_sessions)
                    if self._loop_read_sessions is not None
                    else LazyReadSession(self._reader_sessions)
                )
                try:
                    yield Tx(lazy, self.user_cache, True, self.client_cache)  # type: ignore[arg-type]
                finally:
                    await lazy.close()
                return
            async with self._writer_sessions() as session:
                async with session.begin():
                    tx = Tx(session, self.user_cache, False, self.client_cache)
                    yield tx
                # committed: what this node changed is re-read from the database from now on
                if tx.users.touched:
                    self.user_cache.forget(tx.users.touched)
                if tx.clients.touched:
                    self.client_cache.forget(tx.clients.touched)
        except _UNREACHABLE as exc:
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc
            raise

    async def check_schema(self) -> None:
        """Refuse to start on a database `authgate migrate` has not brought to this code's schema."""
        try:
            async with self.reader.connect() as conn:
                found = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except _UNREACHABLE as exc:
            if not _no_version_table(exc):
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc
            found = None
        except DBAPIError as exc:
            if not _no_version_table(exc):
                raise
            found = None
        if found != SCHEMA_REVISION:
            state = "has no authgate schema" if found is None else f"is at schema revision {found}"
            raise SchemaNotReady(
                f"the database {state}, this authgate needs {SCHEMA_REVISION}: "
                "run `authgate migrate` (or `make run`, which does) first"
            )

    async def ping(self) -> None:
        try:
            async with self.reader.connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc

    @property
    def read_engine(self) -> Engine:
        """The (synchronous) engine read transactions use: for statement hooks in tests."""
        return self.loop_reader if self.loop_reader is not None else self.reader.sync_engine

    async def close(self) -> None:
        if self.loop_reader is not None:
            self.loop_reader.dispose()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _no_version_table(exc: Exception) -> bool:
    """SQLite's "no such table: alembic_version", PostgreSQL's 'relation "alembic_version" does not
    exist' (not a missing database or role, which migrate cannot fix either)."""
    text_ = str(exc).lower()
    return "alembic_version" in text_ and ("no such table" in text_ or "does not exist" in text_)


def _is_connection_error(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__.lower() if exc.orig else ""
    return any(w in name for w in ("connection", "cannotconnect", "interfaceerror", "shutdown", "admin"))
