"""The Store: engines, transactions and repositories for SQLite (default) and PostgreSQL.

On SQLite, transactions run on the event loop's own thread (``storage/sqlite.py`` says why and how
nothing there can block the loop for long); write transactions start with BEGIN IMMEDIATE, so two
writers queue on the lock instead of failing half-way. On PostgreSQL, asyncpg. Any driver error
that means "the database is not answering" becomes ``service_unavailable`` (503), never a stack
trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import cached_property

import structlog
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from authgate.core.errors import AuthError, ErrorCode
from authgate.storage import postgres, sqlite
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
from authgate.storage.split import DbSession


log = structlog.get_logger("authgate.storage")

# Errors that mean "the database is not answering" (a 503), whatever the driver.
_UNREACHABLE = (OperationalError, PoolTimeout, OSError, asyncio.TimeoutError, ConnectionError)

# The Alembic revision this code expects (tests check it is the migrations' head).
SCHEMA_REVISION = "0003"


class SchemaNotReady(RuntimeError):
    """The database has no authgate schema, or an older one: `authgate migrate` was not run."""


class Tx:
    """One transaction's repositories, each made on first use: a request touches one or two of
    the eight, and building all of them was ~3 % of a signed username check."""

    def __init__(
        self,
        session: DbSession,
        cache: UserCache | None = None,
        read_only: bool = False,
        client_cache: ClientCache | None = None,
    ) -> None:
        self.session = session
        self._cache = cache
        self._read_only = read_only
        self._client_cache = client_cache

    @cached_property
    def users(self) -> Users:
        return Users(self.session, self._cache, self._read_only)

    @cached_property
    def clients(self) -> Clients:
        return Clients(self.session, self._client_cache, self._read_only)

    @cached_property
    def sessions(self) -> Sessions:
        return Sessions(self.session)

    @cached_property
    def secrets(self) -> Secrets:
        return Secrets(self.session)

    @cached_property
    def keys(self) -> Keys:
        return Keys(self.session)

    @cached_property
    def identities(self) -> Identities:
        return Identities(self.session)

    @cached_property
    def audit(self) -> Audit:
        return Audit(self.session)

    @cached_property
    def kv(self) -> Kv:
        return Kv(self.session)

    async def flush(self) -> None:
        """Before the commit: write what the repositories hold back (the audit events)."""
        if "audit" in self.__dict__:
            await self.audit.flush()

    def touched(self) -> tuple[set[int], set[str]]:
        """Users and client apps this transaction changed (without making the repositories)."""
        made = self.__dict__
        return (made["users"].touched if "users" in made else set(),
                made["clients"].touched if "clients" in made else set())


class SqlStore:
    def __init__(self, url: str, *, pool_size: int = 10, timeout: float = 5.0, cache_seconds: float = 0.0) -> None:
        self.url = url
        self.user_cache = UserCache(cache_seconds)
        self.client_cache = ClientCache(cache_seconds)
        self.is_sqlite = url.startswith("sqlite")
        self.timeout = timeout
        self.loop_reader: Engine | None = None
        self.loop_writer: Engine | None = None
        self.admission: postgres.Admission | None = None
        if self.is_sqlite:
            self.reader = sqlite.async_engine(url, timeout)  # health, schema check, checkpoints
            self.writer = self.reader
            self.loop_reader = sqlite.loop_reader(url)
            self.loop_writer = sqlite.loop_writer(url)
            self._write_lock = asyncio.Lock()
            self._writes_since_checkpoint = 0
            self._checkpointing: asyncio.Task[None] | None = None
        else:
            self.writer = postgres.engine(url, pool_size=pool_size, timeout=timeout)
            self.admission = postgres.Admission(pool_size, timeout)  # every checkout, in arrival order
            # Reads run outside a transaction: each statement under READ COMMITTED (PostgreSQL's
            # default) sees its own snapshot anyway, so BEGIN and ROLLBACK were two round trips
            # that bought nothing. Same pool; writes keep their transactions.
            self.reader = self.writer.execution_options(isolation_level="AUTOCOMMIT")

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Tx]:
        try:
            if not write:
                # Read transactions take a pooled connection at their first statement: a request
                # served from the user cache never touches the pool.
                lazy: postgres.ConnectionReadSession | sqlite.LoopReadSession = (
                    sqlite.LoopReadSession(self.loop_reader)
                    if self.loop_reader is not None
                    else postgres.ConnectionReadSession(self.reader, self._admitted())
                )
                try:
                    yield Tx(lazy, self.user_cache, True, self.client_cache)
                finally:
                    await lazy.close()
                return
            if self.loop_writer is not None:
                if self._checkpointing is not None:
                    # A free write lock is taken without a pause: give a checkpoint that is due
                    # the turn it needs to queue for the lock first (writes that never yield
                    # would otherwise keep it waiting, and the WAL growing).
                    await asyncio.sleep(0)
                async with sqlite.write_session(self.loop_writer, self._write_lock, self.timeout) as loop_session:
                    tx = Tx(loop_session, self.user_cache, False, self.client_cache)
                    yield tx
                    await tx.flush()
                self._after_sqlite_write()
            else:
                async with postgres.write_session(self.writer, self._admitted()) as session:
                    tx = Tx(session, self.user_cache, False, self.client_cache)
                    yield tx
                    await tx.flush()
            # committed: what this node changed is re-read from the database from now on
            users, clients = tx.touched()
            if users:
                self.user_cache.forget(users)
            if clients:
                self.client_cache.forget(clients)
        except _UNREACHABLE as exc:
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc
            raise

    def _after_sqlite_write(self) -> None:
        self._writes_since_checkpoint += 1
        if self._writes_since_checkpoint >= sqlite.CHECKPOINT_EVERY and self._checkpointing is None:
            self._writes_since_checkpoint = 0
            self._checkpointing = asyncio.get_running_loop().create_task(self._checkpoint())

    async def _checkpoint(self) -> None:
        try:
            if not await sqlite.checkpoint(self.reader, self._write_lock):
                log.info("sqlite_checkpoint_busy")  # a reader or another process: next time
        except Exception as exc:  # noqa: BLE001 - the next one retries; the WAL only grows meanwhile
            log.warning("sqlite_checkpoint_failed", error=type(exc).__name__)
        finally:
            self._checkpointing = None

    async def check_schema(self) -> None:
        """Refuse to start on a database `authgate migrate` has not brought to this code's schema."""
        try:
            async with self._connect() as conn:
                found = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
        except _UNREACHABLE as exc:
            if not _no_version_table(exc):
                raise AuthError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    detail=f"the database at AUTHGATE_DATABASE_URL does not answer ({type(exc).__name__})",
                ) from exc
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
            async with self._connect() as conn:
                await asyncio.wait_for(conn.execute(text("SELECT 1")), self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail=type(exc).__name__) from exc

    def _admitted(self) -> postgres.Admission:
        assert self.admission is not None, "PostgreSQL only"
        return self.admission

    def _connect(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection of the reader's pool: on PostgreSQL through the admission (in turn)."""
        return self.admission.connect(self.reader) if self.admission is not None else self.reader.connect()

    @property
    def read_engine(self) -> Engine:
        """The (synchronous) engine read transactions use: for statement hooks in tests."""
        return self.loop_reader if self.loop_reader is not None else self.reader.sync_engine

    async def close(self) -> None:
        if self.loop_reader is not None and self.loop_writer is not None:
            if self._checkpointing is not None:
                await asyncio.gather(self._checkpointing, return_exceptions=True)
            self.loop_reader.dispose()
            self.loop_writer.dispose()
        await self.writer.dispose()  # the PostgreSQL reader shares the writer's pool


def _no_version_table(exc: Exception) -> bool:
    """SQLite's "no such table: alembic_version", PostgreSQL's 'relation "alembic_version" does not
    exist' (not a missing database or role, which migrate cannot fix either)."""
    text_ = str(exc).lower()
    return "alembic_version" in text_ and ("no such table" in text_ or "does not exist" in text_)


def _is_connection_error(exc: DBAPIError) -> bool:
    name = type(exc.orig).__name__.lower() if exc.orig else ""
    return any(w in name for w in ("connection", "cannotconnect", "interfaceerror", "shutdown", "admin"))
