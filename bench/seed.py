"""Users for the benchmark: names, and bulk seeding of PostgreSQL with COPY for ``--scale``.

Every benchmark user is ``<prefix><7 digits>`` (1-based) with the email
``<username>@bench.example.com`` and the same password, so the Lua scripts can pick one at random
from a count alone. Seeded rows carry one argon2id hash computed with the server's parameters, so
a login checks exactly what it would for a user who signed up.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

PREFIX = "bu"
PASSWORD = "Bench-pass-7429!"
WRONG_PASSWORD = "Wrong-pass-7429!"
ID_BASE = 1_000_000_000  # far below any snowflake id the server mints (41 bits of ms << 22)

COLUMNS = (
    "id", "guid", "username", "username_norm", "email", "email_norm", "email_verified",
    "phone_verified", "password_hash", "pin_failures", "full_name", "roles", "roles_set",
    "auth_provider", "is_active", "is_locked", "failed_logins", "created_at", "created_by",
    "updated_at", "updated_by",
)


def username(i: int, prefix: str = PREFIX) -> str:
    return f"{prefix}{i:07d}"


def email(i: int, prefix: str = PREFIX) -> str:
    return f"{username(i, prefix)}@bench.example.com"


def rows(start: int, stop: int, password_hash: str, now: datetime | None = None) -> Iterator[tuple[object, ...]]:
    """Rows for users ``start``..``stop - 1`` in COLUMNS order."""
    now = now or datetime.now(UTC)
    roles = json.dumps(["ROLE_USER"])
    for i in range(start, stop):
        name = username(i)
        mail = email(i)
        yield (
            ID_BASE + i, f"user_bench{i:021d}", name, name.casefold(), mail, mail.lower(), True,
            False, password_hash, 0, "Bench User", roles, False,
            "PASSWORD", True, False, 0, now, "__bench", now, "__bench",
        )


def asyncpg_dsn(url: str) -> str:
    """``postgresql+asyncpg://…`` (the server's form) → a DSN asyncpg accepts."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def database_name(url: str) -> str:
    return urlsplit(asyncpg_dsn(url)).path.lstrip("/")


def check_dedicated(url: str) -> None:
    """The benchmark drops every table of the database it is given: refuse one not meant for it."""
    name = database_name(url)
    if "bench" not in name:
        raise SystemExit(
            f"--postgres: the database {name!r} would be wiped; use a dedicated one whose name "
            "contains 'bench' (created if missing), e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/bench"
        )


async def reset(url: str) -> None:
    """Empty the dedicated database, creating it first if the server has none of that name."""
    import asyncpg

    try:
        conn = await asyncpg.connect(asyncpg_dsn(url))
    except asyncpg.InvalidCatalogNameError:
        parts = urlsplit(asyncpg_dsn(url))
        admin = await asyncpg.connect(parts._replace(path="/postgres").geturl())
        try:
            await admin.execute(f'CREATE DATABASE "{database_name(url)}"')
        finally:
            await admin.close()
        conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;")
    finally:
        await conn.close()


async def copy_users(
    url: str,
    start: int,
    stop: int,
    password_hash: str,
    batch: int = 100_000,
    progress: Callable[[int, float], None] | None = None,
) -> float:
    """COPY users ``start``..``stop - 1`` in batches; seconds taken."""
    import asyncpg

    t0 = time.perf_counter()
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        for lo in range(start, stop, batch):
            hi = min(stop, lo + batch)
            await conn.copy_records_to_table("users", records=rows(lo, hi, password_hash), columns=COLUMNS)
            if progress:
                progress(hi - start, time.perf_counter() - t0)
        # What autovacuum would otherwise do in the middle of the measurements (a million new rows
        # pass its insert threshold): statistics, the visibility map, hint bits; then a checkpoint,
        # so the writes are not flushed while the workloads run.
        await conn.execute("VACUUM (ANALYZE) users")
        try:
            await conn.execute("CHECKPOINT")
        except asyncpg.InsufficientPrivilegeError:  # needs superuser or pg_checkpoint: optional
            pass
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def count_users(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return int(await conn.fetchval("SELECT count(*) FROM users"))
    finally:
        await conn.close()
