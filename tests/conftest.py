"""Shared fixtures: a migrated SQLite (or PostgreSQL) database, a built core, an ASGI client.

PostgreSQL and Redis come from AUTHGATE_TEST_DATABASE_URL / AUTHGATE_TEST_REDIS_URL (``make test``
sets them when the machine's services answer). Outside CI a test that needs them skips with the
reason; under CI=true it fails instead.

Each test run works in a PostgreSQL database of its own (``<name>_run<pid>``, created next to the
configured one and dropped at the end), because tests empty their tables between cases: two runs
sharing one database (two checkouts, a CI run beside a developer's) would empty each other's.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.app import create_app
from authgate.config import Settings
from authgate.container import Container, build
from authgate.core.service import Core
from authgate.storage.migrate import upgrade

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PG_URL = os.environ.get("AUTHGATE_TEST_DATABASE_URL")
_PG_BASE_URL = PG_URL
REDIS_URL = os.environ.get("AUTHGATE_TEST_REDIS_URL")


def need(value: str | None, what: str) -> str:
    """Skip (outside CI) or fail (under CI) when a service the test needs is not configured."""
    if value:
        return value
    if CI:
        pytest.fail(f"{what} is required under CI=true but is not configured")
    pytest.skip(f"{what} not configured (set it, or run `make test` with the service up)")


async def _pg_admin(url: str, statement: str) -> None:
    import asyncpg

    base, _, _ = url.rpartition("/")
    conn = await asyncpg.connect("postgresql://" + base.split("://", 1)[1] + "/postgres")
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def pytest_configure(config: pytest.Config) -> None:
    """Point the run at a PostgreSQL database of its own (see the module's docstring)."""
    global PG_URL
    if not _PG_BASE_URL or hasattr(config, "workerinput"):
        return
    base, _, name = _PG_BASE_URL.partition("?")[0].rpartition("/")
    own = f"{name}_run{os.getpid()}"
    asyncio.run(_pg_admin(_PG_BASE_URL, f'DROP DATABASE IF EXISTS "{own}" WITH (FORCE)'))
    asyncio.run(_pg_admin(_PG_BASE_URL, f'CREATE DATABASE "{own}"'))
    PG_URL = f"{base}/{own}"
    os.environ["AUTHGATE_TEST_DATABASE_URL"] = PG_URL


def pytest_unconfigure(config: pytest.Config) -> None:
    if PG_URL and PG_URL != _PG_BASE_URL:
        try:
            asyncio.run(_pg_admin(PG_URL, f'DROP DATABASE IF EXISTS "{PG_URL.rpartition("/")[2]}" WITH (FORCE)'))
        except Exception:  # noqa: BLE001 - the server may be gone; a leftover database is harmless
            pass


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def sqlite_url(template: Path, directory: Path) -> str:
    target = directory / "authgate.db"
    shutil.copy(template, target)
    return f"sqlite+aiosqlite:///{target}"


async def reset_postgres(url: str) -> None:
    """Empty every table (schema migrated once per run)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "TRUNCATE users, external_identities, sessions, retired_refresh_tokens, one_time_secrets, signing_keys, "
                "client_apps, audit_events, kv CASCADE"
            )
        )
    await engine.dispose()


_pg_migrated = False


async def postgres_url() -> str:
    global _pg_migrated
    url = need(PG_URL, "AUTHGATE_TEST_DATABASE_URL")
    if not _pg_migrated:
        await asyncio.to_thread(upgrade, url)
        _pg_migrated = True
    await reset_postgres(url)
    return url


def test_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "env": "dev",
        "issuer": "http://testserver",
        "public_url": "http://testserver",
        "log_json": True,
        "redirect_allowlist": ["https://app.example.com", "http://localhost:3000"],
        "provider_backoff": 0.01,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@dataclass
class Harness:
    core: Core
    client: httpx.AsyncClient
    settings: Settings
    container: Container

    @property
    def outbox(self) -> list[tuple[str, str, str]]:
        return self.core.messenger.mailer.outbox  # type: ignore[no-any-return, union-attr]

    @property
    def sms_outbox(self) -> list[tuple[str, str]]:
        return self.core.messenger.sms_sender.outbox  # type: ignore[no-any-return, union-attr]

    def last_code(self) -> str:
        import re

        text = self.outbox[-1][2] if self.outbox else ""
        match = re.search(r"\b(\d{4,8})\b", text)
        assert match, f"no code in {text!r}"
        return match.group(1)


HarnessFactory = Callable[..., Any]


@pytest.fixture
async def make_harness(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[HarnessFactory]:
    """Build harnesses: ``await make_harness(backend="sqlite"|"postgres", internal=False, **settings)``."""
    made: list[Harness] = []

    async def factory(backend: str = "sqlite", internal: bool = False, **overrides: Any) -> Harness:
        if "database_url" in overrides:
            url = overrides.pop("database_url")
        elif backend == "postgres":
            url = await postgres_url()
        else:
            directory = tmp_path / f"db{len(made)}"
            directory.mkdir()
            url = sqlite_url(sqlite_template, directory)
        settings = test_settings(url, **overrides)
        container = await build(settings)
        app = create_app(settings, core=container.core, internal=internal)
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 5555)), base_url="http://testserver"
        )
        harness = Harness(container.core, client, settings, container)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        await harness.client.aclose()
        await harness.container.close()


@pytest.fixture
async def h(make_harness: HarnessFactory) -> Harness:
    """A harness on SQLite with default settings."""
    return await make_harness()  # type: ignore[no-any-return]


@pytest.fixture(params=["sqlite", "postgres"])
async def hdb(request: pytest.FixtureRequest, make_harness: HarnessFactory) -> Harness:
    """The same test on SQLite and on PostgreSQL."""
    return await make_harness(request.param)  # type: ignore[no-any-return]
