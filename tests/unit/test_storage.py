"""The storage contract: the same repository behaviour on SQLite and PostgreSQL, and migrations
that match the models on both."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from authgate.core.errors import AuthError
from authgate.core.flows.users import insert_with_free_username, new_user
from authgate.core.model import AuditEvent, OneTimeSecret
from authgate.storage.tables import Base
from tests.conftest import Harness


async def test_users_unique_case_insensitive_and_soft_delete(hdb: Harness) -> None:
    core = hdb.core
    first = new_user(core, "Alice.Smith", email="Alice@Example.com", phone="+85268098227")
    async with core.store.transaction() as tx:
        await tx.users.create(first)
    for clash, field in (
        (dict(username="ALICE.smith", email="other@example.com"), "username"),
        (dict(username="someone", email="alice@example.com"), "email"),
        (dict(username="someone2", phone="+85268098227"), "phone"),
    ):
        user = new_user(core, clash.pop("username"), **clash)
        with pytest.raises(AuthError) as err:
            async with core.store.transaction() as tx:
                await tx.users.create(user)
        assert err.value.field == field and err.value.status == 409
    async with core.store.transaction(write=False) as tx:
        assert (await tx.users.get_by_username("alice.SMITH")).id == first.id
        assert (await tx.users.get_by_email("ALICE@example.com")).id == first.id
        assert (await tx.users.get_by_phone("+85268098227")).id == first.id
    # soft delete hides the user and frees the identifiers
    async with core.store.transaction() as tx:
        user = await tx.users.get(first.id, for_update=True)
        user.deleted_at = datetime.now(UTC)
        await tx.users.save(user)
    async with core.store.transaction(write=False) as tx:
        assert await tx.users.get(first.id) is None
        assert (await tx.users.get_any(first.id)).deleted_at is not None
    again = new_user(core, "alice.smith", email="alice@example.com")
    async with core.store.transaction() as tx:
        await tx.users.create(again)


async def test_a_failed_insert_does_not_spoil_the_transaction(hdb: Harness) -> None:
    core = hdb.core
    async with core.store.transaction() as tx:
        await tx.users.create(new_user(core, "taken.name", email="t@example.com"))
    user = new_user(core, "", email="other@example.com")
    async with core.store.transaction() as tx:
        with pytest.raises(AuthError):
            await tx.users.create(new_user(core, "TAKEN.NAME", email="x@example.com"))
        created = await insert_with_free_username(tx, user, "taken.name@example.com")
    assert created.username.startswith("taken.name") and created.username != "taken.name"


async def test_racing_inserts_of_one_email_one_wins(hdb: Harness) -> None:
    core = hdb.core

    async def one(i: int) -> bool:
        try:
            async with core.store.transaction() as tx:
                await tx.users.create(new_user(core, f"racer{i}", email="race@example.com"))
            return True
        except AuthError:
            return False

    results = await asyncio.gather(*(one(i) for i in range(10)))
    assert results.count(True) == 1


async def test_sessions_secrets_audit_kv(hdb: Harness) -> None:
    core = hdb.core
    user = new_user(core, "sess.owner")
    async with core.store.transaction() as tx:
        await tx.users.create(user)
    from authgate.core.model import RequestContext

    ctx = RequestContext(ip="192.0.2.1")
    async with core.store.transaction() as tx:
        s1 = await core.sessions.start(tx, user, ctx)
        s2 = await core.sessions.start(tx, user, ctx)
    async with core.store.transaction() as tx:
        revoked = await tx.sessions.revoke_user(user.id, "test", datetime.now(UTC), except_id=s1.session.id)
        assert revoked == [s2.session.id]
        active = await tx.sessions.list_active(user.id, datetime.now(UTC))
        assert [s.id for s in active] == [s1.session.id]
    now = datetime.now(UTC)
    async with core.store.transaction() as tx:
        await tx.secrets.create(OneTimeSecret(id="sec1", purpose="p", identifier="i", secret_hash="h",
                                              expires_at=now + timedelta(minutes=5), created_at=now))
        assert (await tx.secrets.get_active("p", "i")).id == "sec1"
        await tx.secrets.invalidate("p", "i", now)
        assert await tx.secrets.get_active("p", "i") is None
        for i in range(3):
            await tx.audit.add(AuditEvent(type="t.x" if i < 2 else "t.y", at=now, user_id=user.id))
    async with core.store.transaction(write=False) as tx:
        page = await tx.audit.list(user_id=user.id, type="t.x", limit=1)
        assert len(page) == 1
        rest = await tx.audit.list(user_id=user.id, type="t.x", limit=5, before_id=page[0].id)
        assert len(rest) == 1
    async with core.store.transaction() as tx:
        assert await tx.kv.put_if_absent("k", "v1") == "v1"
        assert await tx.kv.put_if_absent("k", "v2") == "v1"


async def test_audit_events_commit_with_their_transaction_in_order(hdb: Harness) -> None:
    """Events are held until the commit (one INSERT for all of them): a rolled-back transaction
    leaves none, a committed one all in the order recorded, and listing inside the transaction
    sees the ones it recorded."""
    core = hdb.core
    now = datetime.now(UTC)
    user = new_user(core, "audit.owner")
    async with core.store.transaction() as tx:
        await tx.users.create(user)
    with pytest.raises(RuntimeError):
        async with core.store.transaction() as tx:
            await tx.audit.add(AuditEvent(type="t.gone", at=now, user_id=user.id))
            raise RuntimeError("rolled back")
    async with core.store.transaction() as tx:
        for kind in ("t.first", "t.second", "t.third"):
            await tx.audit.add(AuditEvent(type=kind, at=now, user_id=user.id, detail={"k": kind}))
        assert [e.type for e in await tx.audit.list(user_id=user.id)] == ["t.third", "t.second", "t.first"]
        await tx.audit.add(AuditEvent(type="t.fourth", at=now, user_id=user.id))
    async with core.store.transaction(write=False) as tx:
        events = await tx.audit.list(user_id=user.id)
    assert [e.type for e in events] == ["t.fourth", "t.third", "t.second", "t.first"]
    assert events[1].detail == {"k": "t.third"}


def _diff(conn):  # type: ignore[no-untyped-def]
    ctx = MigrationContext.configure(conn)
    return compare_metadata(ctx, Base.metadata)


async def test_migrations_match_the_models(hdb: Harness) -> None:
    engine = create_async_engine(hdb.settings.database_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    await engine.dispose()
    assert diff == [], diff


def test_migrations_downgrade_and_upgrade(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from authgate.storage.migrate import downgrade, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url)
    downgrade(url, "base")
    upgrade(url)


async def test_concurrent_cache_misses_send_one_query_per_key(hdb: Harness) -> None:
    """When a cached user or client app expires, the requests that miss at once share one query."""
    from sqlalchemy import event

    from authgate.core.flows.clients import register_client

    core = hdb.core
    user = new_user(core, "flight.user")
    async with core.store.transaction() as tx:
        await tx.users.create(user)
    made = await register_client(core, "flight app", ["ios"], [])
    core.store.user_cache.forget({user.id})
    core.store.client_cache.forget({made["clientId"]})

    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(core.store.read_engine, "before_cursor_execute", count)
    try:
        async def by_name() -> object:
            async with core.store.transaction(write=False) as tx:
                return await tx.users.get_by_username("FLIGHT.user")

        async def client() -> object:
            async with core.store.transaction(write=False) as tx:
                return await tx.clients.get(made["clientId"])

        users = await asyncio.gather(*(by_name() for _ in range(12)))
        clients = await asyncio.gather(*(client() for _ in range(12)))
    finally:
        event.remove(core.store.read_engine, "before_cursor_execute", count)
    assert {u.id for u in users} == {user.id} and {c.client_id for c in clients} == {made["clientId"]}
    # each caller has its own copy: changing one does not change the others or the cache
    users[0].roles.append("ROLE_ADMIN")
    assert all("ROLE_ADMIN" not in u.roles for u in users[1:])
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len([s for s in selects if "users" in s]) == 1
    assert len([s for s in selects if "client" in s]) == 1


async def test_concurrent_misses_of_different_users_share_one_query(hdb: Harness) -> None:
    """Requests that miss the user cache in the same turn of the event loop (a username check of a
    million users misses on nearly every request) are answered by one query, by username and by
    id; each gets its own user, a deleted or unknown one gets None, and all are cached after. The
    list is padded to a power of two (one prepared statement per length on PostgreSQL)."""
    from sqlalchemy import event

    core = hdb.core
    users = [new_user(core, f"batch.user{i}") for i in range(6)]
    async with core.store.transaction() as tx:
        for user in users:
            await tx.users.create(user)
        users[5].deleted_at = datetime.now(UTC)
        await tx.users.save(users[5])
    core.store.user_cache.forget({u.id for u in users})

    statements: list[str] = []
    sizes: list[int] = []

    def count(conn, cursor, statement, parameters, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)
        sizes.append(len(parameters))

    async def by_name(name: str) -> Any:
        async with core.store.transaction(write=False) as tx:
            return await tx.users.get_by_username(name)

    async def by_id(user_id: int) -> Any:
        async with core.store.transaction(write=False) as tx:
            return await tx.users.get(user_id)

    names = ["BATCH.user0", "batch.user1", "batch.user2", "batch.user5", "nobody.here", "batch.user1"]
    event.listen(core.store.read_engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(*(by_name(n) for n in names))
        selects_by_name = len(statements)
        statements.clear()
        core.store.user_cache.forget({u.id for u in users})
        found_by_id = await asyncio.gather(*(by_id(u.id) for u in users[2:]), by_id(999_999_999))
        selects_by_id = len(statements)
        statements.clear()
        cached = await asyncio.gather(*(by_name(f"batch.user{i}") for i in range(2, 5)))
    finally:
        event.remove(core.store.read_engine, "before_cursor_execute", count)
    assert [u and u.id for u in found] == [users[0].id, users[1].id, users[2].id, None, None, users[1].id]
    assert found[1] is not found[5]  # the same user asked twice: each caller has its own copy
    assert [u and u.id for u in found_by_id] == [users[2].id, users[3].id, users[4].id, None, None]
    assert (selects_by_name, selects_by_id) == (1, 1)
    assert sizes == [8, 8]  # five names (one asked twice) and five ids, padded to eight
    assert statements == [] and [u.id for u in cached] == [u.id for u in users[2:5]]


def test_the_expected_schema_revision_is_the_migrations_head() -> None:
    from alembic.script import ScriptDirectory

    from authgate.storage.db import SCHEMA_REVISION
    from authgate.storage.migrate import alembic_config

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head() == SCHEMA_REVISION


def test_the_server_refuses_a_database_that_was_not_migrated(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from authgate.config import Settings
    from authgate.container import build
    from authgate.storage.db import SchemaNotReady
    from authgate.storage.migrate import downgrade, upgrade

    url = f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
    settings = Settings(_env_file=None, database_url=url, dev=True)  # type: ignore[call-arg]

    async def start() -> None:
        container = await build(settings)
        await container.close()

    with pytest.raises(SchemaNotReady, match=r"no authgate schema.*authgate migrate"):
        asyncio.run(start())
    upgrade(url)
    downgrade(url, "base")  # the version table stays, empty
    with pytest.raises(SchemaNotReady, match="authgate migrate"):
        asyncio.run(start())
    upgrade(url)
    asyncio.run(start())


async def test_sqlite_transactions_run_on_the_loop_without_aiosqlite_round_trips(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite transactions never hop to aiosqlite's thread (9 hops a read, each waiting for a turn
    of the loop under load)."""
    import aiosqlite.core

    core = h.core
    user = new_user(core, "loop.reader")
    hops: list[str] = []
    original = aiosqlite.core.Connection._execute

    async def counted(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        hops.append(getattr(fn, "__name__", "?"))
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    async with core.store.transaction() as tx:
        await tx.users.create(user)
    core.store.user_cache.forget({user.id})
    async with core.store.transaction(write=False) as tx:
        assert (await tx.users.get_by_username("LOOP.reader")).id == user.id
        assert (await tx.users.get(user.id)).username == "loop.reader"
    assert hops == []


async def test_a_sqlite_reader_locked_out_is_a_503_after_a_short_wait(h: Harness) -> None:
    """Readers on the loop wait for a lock at most a quarter second (they would stop every request),
    then the request is 'service unavailable' like any database that does not answer."""
    import sqlite3
    import time

    from authgate.core.errors import ErrorCode

    store = h.core.store
    await store.writer.dispose()  # the exclusive lock below needs every other connection closed
    await store.reader.dispose()
    store.loop_reader.dispose()
    store.loop_writer.dispose()
    blocker = sqlite3.connect(store.url.split("///", 1)[1], isolation_level=None)
    try:
        blocker.execute("PRAGMA locking_mode=EXCLUSIVE")
        blocker.execute("BEGIN EXCLUSIVE")
        started = time.perf_counter()
        with pytest.raises(AuthError) as err:
            async with h.core.store.transaction(write=False) as tx:
                await tx.users.get_by_username("nobody.here")
        assert err.value.code is ErrorCode.SERVICE_UNAVAILABLE
        assert time.perf_counter() - started < 2.0
    finally:
        blocker.rollback()
        blocker.close()
    async with h.core.store.transaction(write=False) as tx:
        assert await tx.users.get_by_username("nobody.here") is None


async def test_a_read_transaction_cannot_write(h: Harness) -> None:
    from sqlalchemy import text

    with pytest.raises(AuthError) as err:
        async with h.core.store.transaction(write=False) as tx:
            await tx.session.execute(text("DELETE FROM users"))
    assert "readonly database" in str(err.value.__cause__)  # PRAGMA query_only on the loop's readers


async def test_sqlite_checkpoints_run_in_the_background(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop's writer never checkpoints inside a commit (an fsync on the loop); the store copies
    the WAL into the database file off the loop every CHECKPOINT_EVERY write transactions."""
    import os

    from authgate.storage import sqlite

    store = h.core.store
    path = store.url.split("///", 1)[1]
    with store.loop_writer.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
    assert await sqlite.checkpoint(store.reader, store._write_lock)
    before = os.path.getsize(path)
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY", 2)
    store._writes_since_checkpoint = 0
    users = [new_user(h.core, f"ckpt.user{i}", email=f"ckpt{i}@example.com") for i in range(300)]
    async with store.transaction() as tx:
        await tx.users.create_many(users)
    assert store._checkpointing is None and os.path.getsize(path) == before  # still only in the WAL
    async with store.transaction() as tx:
        await tx.users.create(new_user(h.core, "ckpt.last"))
    assert store._checkpointing is not None
    await store._checkpointing
    assert os.path.getsize(path) > before


async def test_the_sqlite_wal_starts_over_under_a_steady_stream_of_writes(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes that never pause (a login flood) must not grow the WAL for ever: a checkpoint that
    let writers go on while it copied never caught up, and SQLite never began the WAL again."""
    import os

    from authgate.storage import sqlite

    store = h.core.store
    wal = store.url.split("///", 1)[1] + "-wal"
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY", 10)
    store._writes_since_checkpoint = 0
    sizes = []
    for i in range(300):
        async with store.transaction() as tx:
            await tx.users.create(new_user(h.core, f"flood.user{i}", email=f"flood{i}@example.com"))
        sizes.append(os.path.getsize(wal))
    if store._checkpointing is not None:
        await store._checkpointing
    # Past the first checkpoints the WAL is overwritten from its start: it stops growing (a cycle
    # may use a few frames more than the last). Without starting over: 1.8 MB here, then 8.9 MB.
    assert sizes[-1] < 2 * sizes[59], (sizes[:60:10], sizes[-1])
    async with store.transaction(write=False) as tx:
        assert await tx.users.get_by_username("flood.user299") is not None


async def test_a_sqlite_writer_waits_for_another_process_without_blocking_the_loop(
    make_harness: Any,
) -> None:
    """Another process holding SQLite's write lock (a second worker, a CLI command): the write
    transaction waits with asyncio sleeps, the loop keeps serving, and past the store's timeout
    the answer is 503."""
    import sqlite3
    import time

    from authgate.core.errors import ErrorCode

    h = await make_harness(database_timeout=1.0)
    store = h.core.store
    other = sqlite3.connect(store.url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        other.rollback()

    task = asyncio.create_task(ticker())
    try:
        release = asyncio.create_task(release_later())
        async with store.transaction() as tx:
            await tx.users.create(new_user(h.core, "waited.writer"))
        await release
        assert ticks >= 10  # the loop ran while the writer waited ~0.3 s
        other.execute("BEGIN IMMEDIATE")
        started = time.perf_counter()
        with pytest.raises(AuthError) as err:
            async with store.transaction() as tx:
                await tx.users.create(new_user(h.core, "never.written"))
        assert err.value.code is ErrorCode.SERVICE_UNAVAILABLE
        assert 0.9 < time.perf_counter() - started < 3.0
    finally:
        task.cancel()
        other.rollback()
        other.close()
    async with store.transaction(write=False) as tx:
        assert await tx.users.get_by_username("waited.writer") is not None
        assert await tx.users.get_by_username("never.written") is None


async def _in_transaction(tx: Any) -> bool:
    raw = await tx.session._conn.get_raw_connection()  # the AsyncConnection statements ran on
    return bool(raw.driver_connection.is_in_transaction())


async def test_a_write_mixing_core_and_orm_statements_commits_or_rolls_back_as_one(hdb: Harness) -> None:
    """Core statements run on the connection and the first ORM use opens a Session over it
    (storage/split.py): both halves are one transaction, a savepoint included."""
    h = hdb
    store = h.core.store
    async with store.transaction() as tx:
        await tx.users.create(new_user(h.core, "mixed.one"))  # Core, before any Session
        await tx.kv.put("mixed:one", "1")  # ORM get/add/flush in a savepoint
        assert await tx.kv.put_if_absent("mixed:one", "2") == "1"
        await tx.users.create(new_user(h.core, "mixed.two"))  # Core again, now through the Session
    with pytest.raises(RuntimeError):
        async with store.transaction() as tx:
            await tx.users.create(new_user(h.core, "mixed.three"))
            await tx.kv.put("mixed:three", "3")
            raise RuntimeError("the request failed")
    async with store.transaction() as tx:
        assert await tx.kv.get("mixed:one") == "1" and await tx.kv.get("mixed:three") is None
    async with store.transaction(write=False) as tx:
        assert await tx.users.get_by_username("mixed.one") and await tx.users.get_by_username("mixed.two")
        assert await tx.users.get_by_username("mixed.three") is None


async def test_sqlite_reads_run_outside_a_transaction(make_harness: Any) -> None:
    """As on PostgreSQL, a read is its statements and nothing else: no BEGIN or ROLLBACK around a
    one-query read, and a Core statement runs on the pooled connection without an ORM Session.
    Statements over mapped classes still get one (and their entities)."""
    from sqlalchemy import event, select, text

    from authgate.storage import split
    from authgate.storage.tables import KeyRow, UserRow

    h = await make_harness("sqlite")
    store = h.core.store
    statements: list[str] = []
    event.listen(store.read_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    async with store.transaction(write=False) as tx:
        assert (await tx.session.execute(text("SELECT 1"))).scalar() == 1
        assert tx.session._session is None  # no ORM Session for a Core statement
        assert tx.session._conn.connection.driver_connection.in_transaction is False
        keys = (await tx.session.execute(select(KeyRow))).scalars().all()
        assert keys and all(isinstance(k, KeyRow) for k in keys)  # an ORM statement: entities
    assert statements[0] == "SELECT 1" and not any(s.split()[0] in ("BEGIN", "ROLLBACK") for s in statements)
    # What picks the way: SQLAlchemy marks statements over mapped classes (an upgrade that
    # changed it would send ORM selects to the connection; this says so first).
    assert split.is_orm(select(UserRow)) and not split.is_orm(select(UserRow.__table__))
    assert not split.is_orm(text("SELECT 1"))


@pytest.mark.postgres
async def test_postgres_reads_run_without_a_transaction_and_checkouts_without_a_ping(
    make_harness: Any,
) -> None:
    """A read is its one statement (no BEGIN/ROLLBACK around it); a checkout sends nothing (no
    pre-ping, which on asyncpg was three round trips). Writes keep their transaction."""
    from sqlalchemy import event, text

    h = await make_harness("postgres")
    statements: list[str] = []
    event.listen(h.core.store.writer.sync_engine, "before_cursor_execute",
                 lambda *a: statements.append(a[2]))
    async with h.core.store.transaction(write=False) as tx:
        assert (await tx.session.execute(text("SELECT 1"))).scalar() == 1
        assert await _in_transaction(tx) is False
    async with h.core.store.transaction() as tx:
        await tx.session.execute(text("SELECT 2"))
        assert await _in_transaction(tx) is True
    assert statements == ["SELECT 1", "SELECT 2"]  # and no ping on either checkout


@pytest.mark.postgres
async def test_postgres_requests_past_the_pool_wait_for_a_connection_and_none_needs_two(
    make_harness: Any,
) -> None:
    """The pool never grows past AUTHGATE_DATABASE_POOL_SIZE (an overflow connection was opened
    and closed again for each burst: asyncpg's connect was ~19 % of a username check's CPU), and
    no flow holds a connection while it needs another, so a pool of one serves them all. (A read
    that had its connection used to wait for another request's fetch of the same user, queued for
    that connection: with the fair admission all 22 waited on each other until 503.)"""
    import asyncio

    from sqlalchemy import event

    h = await make_harness("postgres", database_pool_size=1, database_timeout=2.0)
    opened: list[object] = []
    event.listen(h.core.store.writer.sync_engine, "connect", lambda *a: opened.append(a[0]))  # new ones
    c = h.client
    r = await c.post("/api/auth/v1/signup", json={"email": "pool@example.com", "password": "P00l-S3cure-9"})
    assert r.status_code == 201, r.text
    token = r.headers["x-qt-auth"]
    r = await c.post("/app/auth/login", json={"loginID": "pool@example.com", "password": "P00l-S3cure-9",
                                               "deviceToken": "d1"})
    assert r.status_code == 200, r.text
    access = r.json()["data"]["accessToken"]
    answers = await asyncio.gather(
        *(c.get("/app/auth/info", headers={"Authorization": f"Bearer {access}"}) for _ in range(10)),
        *(c.get("/api/auth/v1/users/me", headers={"x-qt-auth": token}) for _ in range(10)),
        c.post("/api/auth/v1/login", json={"email": "pool@example.com", "password": "P00l-S3cure-9"}),
        c.post("/app/auth/login", json={"loginID": "pool@example.com", "password": "wrong-Passw0rd",
                                        "deviceToken": "d2"}),
    )
    assert [a.status_code for a in answers] == [200] * 20 + [201, 401], [a.text for a in answers if a.status_code >= 500]
    assert opened == []  # the connection start-up opened served every request
    pool = h.core.store.writer.sync_engine.pool
    assert pool.checkedin() + pool.checkedout() == 1


@pytest.mark.postgres
async def test_postgres_connections_go_to_the_requests_that_asked_first(make_harness: Any) -> None:
    """SQLAlchemy's pool queue lets a request that asks while a connection is being put back take
    it before the first waiter runs (who then goes to the back: under more transactions than
    connections W6's p99 was 10x its p50). Here A holds the only connection, B waits for it, and C
    asks just as A's connection goes back (from the pool's checkin, before the put): B first."""
    from sqlalchemy import event, text

    h = await make_harness("postgres", database_pool_size=1, database_timeout=2.0)
    store = h.core.store
    order: list[str] = []
    tasks: list[asyncio.Task[None]] = []
    b_waiting, a_may_end = asyncio.Event(), asyncio.Event()

    async def a() -> None:
        async with store.transaction() as tx:
            await tx.session.execute(text("SELECT 1"))
            await a_may_end.wait()

    async def b() -> None:
        b_waiting.set()
        async with store.transaction(write=False) as tx:
            await tx.session.execute(text("SELECT 2"))
            order.append("B")

    async def c() -> None:
        async with store.transaction() as tx:
            await tx.session.execute(text("SELECT 3"))
            order.append("C")

    def arrives(*_: object) -> None:
        if a_may_end.is_set() and not tasks[2:]:
            tasks.append(asyncio.get_running_loop().create_task(c()))

    event.listen(store.writer.sync_engine, "checkin", arrives)
    tasks += [asyncio.create_task(a())]
    await asyncio.sleep(0.05)
    tasks += [asyncio.create_task(b())]
    await b_waiting.wait()
    await asyncio.sleep(0.05)  # B is queued for the connection
    a_may_end.set()
    await asyncio.wait_for(asyncio.gather(*tasks[:2]), 5)
    await asyncio.wait_for(tasks[2], 5)
    assert order == ["B", "C"]


@pytest.mark.postgres
async def test_postgres_two_first_statements_at_once_share_one_connection_and_give_back_every_slot(
    make_harness: Any,
) -> None:
    from sqlalchemy import text

    h = await make_harness("postgres", database_pool_size=2)
    store = h.core.store
    await store.writer.dispose()  # an empty pool: the first statement waits for a new connection
    async with store.transaction(write=False) as tx:
        a, b = await asyncio.gather(tx.session.execute(text("SELECT pg_backend_pid()")),
                                    tx.session.execute(text("SELECT pg_backend_pid()")))
        assert a.scalar() == b.scalar()  # one connection is the transaction's
    assert store.admission._slots._value == 2  # nothing kept a slot
    pool = store.writer.sync_engine.pool
    assert pool.checkedout() == 0


@pytest.mark.postgres
async def test_postgres_a_request_that_gets_no_connection_in_time_is_answered_503(make_harness: Any) -> None:
    from sqlalchemy import text

    h = await make_harness("postgres", database_pool_size=1, database_timeout=0.5)
    release = asyncio.Event()

    async def hold() -> None:
        async with h.core.store.transaction() as tx:
            await tx.session.execute(text("SELECT 1"))
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0.05)
    r = await h.client.post("/app/auth/login", json={"loginID": "nobody@example.com", "password": "x" * 10,
                                                       "deviceToken": "d"})
    release.set()
    await holder
    assert r.status_code == 503, r.text
    assert r.json() == {"success": False, "message": "The service is temporarily unavailable", "data": None}
    # and the slot came back: the next request is served
    async with h.core.store.transaction(write=False) as tx:
        assert (await tx.session.execute(text("SELECT 4"))).scalar() == 4


@pytest.mark.postgres
async def test_postgres_a_pooled_connection_the_server_closed_is_replaced_at_checkout(
    make_harness: Any,
) -> None:
    import asyncpg
    from sqlalchemy import text

    from tests.conftest import PG_URL

    h = await make_harness("postgres")
    async with h.core.store.transaction(write=False) as tx:
        mine = (await tx.session.execute(text("SELECT pg_backend_pid()"))).scalar()
    # The server ends that pooled connection, as a restart or failover would.
    admin = await asyncpg.connect("postgresql://" + (PG_URL or "").split("://", 1)[1])
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", mine) is True
    finally:
        await admin.close()
    await asyncio.sleep(0.2)
    for _ in range(3):  # every pooled connection may be tried: none may fail the request
        async with h.core.store.transaction(write=False) as tx:
            assert (await tx.session.execute(text("SELECT 1"))).scalar() == 1


async def test_a_wrong_password_costs_one_counting_statement_and_no_user_reread(hdb: Harness) -> None:
    """A failed login's write is the count (UPDATE … RETURNING) and its audit row; the next try
    for the same account still finds the user in this node's cache (the count is read only under
    the row lock, never from the cache)."""
    from sqlalchemy import event

    from authgate.core.flows import login
    from authgate.core.model import RequestContext

    core = hdb.core
    user = new_user(core, "wrong.guess", password_hash=await core.hasher.hash("R1ght-pass"))
    async with core.store.transaction() as tx:
        await tx.users.create(user)
    ctx = RequestContext(ip="203.0.113.9")
    engines = {core.store.read_engine, core.store.writer.sync_engine}
    if core.store.loop_writer is not None:
        engines.add(core.store.loop_writer)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_rest):  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split()[:2]).upper())

    for engine in engines:
        event.listen(engine, "before_cursor_execute", seen)
    for attempt in range(3):
        with pytest.raises(AuthError):
            await login.check_password(core, ctx, "wrong.guess", "not-it")
        if attempt == 0:
            statements.clear()  # the first try read the user into the cache
    assert [s for s in statements if not s.startswith(("SAVEPOINT", "RELEASE"))] == [
        "UPDATE USERS", "INSERT INTO", "UPDATE USERS", "INSERT INTO"
    ], statements
    async with core.store.transaction() as tx:
        state = await tx.users.lock_state(user.id)
    assert state is not None and state.failed_logins == 3 and not state.is_locked


async def test_a_login_opens_no_orm_session_on_either_backend(hdb: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A login's reads and its write transaction (row lock, session, audit event) are Core
    statements on the connection: no ORM Session is made for them (storage/split.py). On
    PostgreSQL the write went through an AsyncSession before, its bookkeeping around every
    statement."""
    from sqlalchemy.orm import Session as OrmSession

    c = hdb.client
    r = await c.post("/api/auth/v1/signup", json={"email": "core.first@example.com", "password": "C0re-First-pass"})
    assert r.status_code == 201, r.text
    made: list[object] = []
    init = OrmSession.__init__

    def counted(self: OrmSession, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(OrmSession, "__init__", counted)
    r = await c.post("/app/auth/login", json={"loginID": "core.first@example.com", "password": "C0re-First-pass",
                                               "deviceToken": "d1"})
    assert r.status_code == 200, r.text
    assert made == []
    async with hdb.core.store.transaction() as tx:  # and an ORM use still gets its Session
        await tx.kv.put("core:first", "1")
    assert len(made) == 1


async def test_a_read_transaction_refuses_writes_on_either_backend(hdb: Harness) -> None:
    """A read-only transaction names the write it was asked for instead of taking it (on SQLite a
    savepoint on the read connection would have opened a Session and written nothing)."""
    from authgate.storage.tables import KvRow

    async with hdb.core.store.transaction(write=False) as tx:
        with pytest.raises(RuntimeError, match=r"add\(\) in a read-only"):
            tx.session.add(KvRow(name="ro", value="1"))
        with pytest.raises(RuntimeError, match=r"flush\(\) in a read-only"):
            await tx.session.flush()
        with pytest.raises(RuntimeError, match=r"begin_nested\(\) in a read-only"):
            async with tx.session.begin_nested():
                pass
        with pytest.raises(RuntimeError, match=r"merge\(\) in a read-only"):
            tx.session.merge  # noqa: B018 - anything else a write would use is refused by name
        assert await tx.kv.get("ro") is None


async def test_concurrent_misses_of_different_client_apps_share_one_query(hdb: Harness) -> None:
    """Client apps missed in one turn of the event loop are read together, as users are."""
    from sqlalchemy import event

    from authgate.core.flows.clients import register_client

    core = hdb.core
    made = [await register_client(core, f"batch app {i}", ["ios"], []) for i in range(3)]
    ids = [m["clientId"] for m in made]
    core.store.client_cache.forget(set(ids))
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    async def client(client_id: str) -> Any:
        async with core.store.transaction(write=False) as tx:
            return await tx.clients.get(client_id)

    event.listen(core.store.read_engine, "before_cursor_execute", count)
    try:
        found = await asyncio.gather(*(client(c) for c in [*ids, "no-such-app", ids[0]]))
    finally:
        event.remove(core.store.read_engine, "before_cursor_execute", count)
    assert [c and c.client_id for c in found] == [*ids, None, ids[0]]
    assert found[0] is not found[4]
    assert len(statements) == 1
    found[0].platforms.append("web")  # a caller's copy is its own: the cached app is unchanged
    assert (await client(ids[0])).platforms == ["ios"]


def test_the_user_cache_holds_its_ttl_of_entries_not_every_user_ever_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Expired entries leave as new ones arrive (a username check of a million users had kept
    100,000 dead entries: memory, and long pauses of the cyclic GC), and past ``limit`` the oldest
    go first; a user put again is the newest, a renamed user is not found by the old name."""
    from authgate.core.model import User
    from authgate.storage import repositories

    clock = [1000.0]
    monkeypatch.setattr(repositories.time, "monotonic", lambda: clock[0])
    cache = repositories.UserCache(ttl=0.5, limit=3)
    people = [User(id=i, guid=f"g{i}", username=f"Person{i}") for i in range(6)]
    for person in people[:3]:
        cache.put(person)
        clock[0] += 0.1
    assert len(cache) == 3 and cache.by_username("person0").id == 0  # type: ignore[union-attr]
    cache.put(people[0])  # put again: now the newest
    cache.put(people[3])  # past the limit: the oldest (person1) goes
    assert cache.by_username("person1") is None and cache.get(1) is None
    assert [u.id for u in map(cache.get, (0, 2, 3))] == [0, 2, 3]  # type: ignore[union-attr]
    clock[0] += 0.45  # person2 (put at 1000.2) has expired; 0 and 3 (1000.3) have not
    cache.put(people[4])
    assert len(cache) == 3 and cache.get(2) is None and cache.by_username("person3").id == 3  # type: ignore[union-attr]
    clock[0] += 1.0  # everything has expired: the next put leaves only itself
    cache.put(people[5])
    assert len(cache) == 1 and cache._by_name == {"person5": 5}
    renamed = User(id=5, guid="g5", username="Someone")
    cache.put(renamed)
    assert cache.by_username("person5") is None and cache.by_username("someone").id == 5  # type: ignore[union-attr]
    cache.forget({5})
    assert len(cache) == 0 and cache._by_name == {}
