"""Housekeeping (core/maintenance.py): expired sessions, retired refresh tokens and one-time
secrets are deleted once expired for longer than AUTHGATE_PURGE_AFTER; nothing live is touched."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from authgate.cli import cli
from authgate.core import maintenance
from authgate.core.flows.users import new_user
from authgate.core.model import RequestContext
from authgate.storage.tables import RetiredRefreshRow, SecretRow, SessionRow
from tests.conftest import Harness, HarnessFactory

CTX = RequestContext(ip="198.51.100.20", user_agent="pytest", surface="test")
DAY = timedelta(days=1)


async def _counts(h: Harness) -> dict[str, int]:
    out = {}
    async with h.core.store.transaction(write=False) as tx:
        db = tx.secrets.s  # type: ignore[attr-defined]  # the transaction's session
        for name, table in (("secrets", SecretRow), ("sessions", SessionRow), ("retired", RetiredRefreshRow)):
            out[name] = int(await db.scalar(select(func.count()).select_from(table)))
    return out


async def _populate(h: Harness) -> str:
    """A user with one session rotated three times (three retired tokens) and two codes; the
    refresh token the session now answers to is returned."""
    async with h.core.store.transaction() as tx:
        user = await tx.users.create(new_user(h.core, "purger", email="purger@example.com"))
        issued = await h.core.sessions.start(tx, user, CTX)
        await h.core.otp.issue(tx, "login", "purger@example.com", user_id=user.id)
        await h.core.otp.issue(tx, "reset", "purger@example.com", user_id=user.id)
    refresh = issued.refresh_token
    for _ in range(3):
        _, issued = await h.core.sessions.refresh(refresh, CTX)
        refresh = issued.refresh_token
    return refresh


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_purge_deletes_only_what_expired_long_enough_ago(make_harness: HarnessFactory, backend: str) -> None:
    h = await make_harness(backend, refresh_rotation=True, refresh_grace_seconds=0, purge_after=3600)
    refresh = await _populate(h)
    before = await _counts(h)
    assert before == {"secrets": 2, "sessions": 1, "retired": 2}, before  # the previous hash stays on the row
    now = datetime.now(UTC)
    # Codes expire in minutes, the session in 30 days: an hour past the codes' expiry takes them
    assert await maintenance.purge(h.core, now) == {"secrets": 0, "sessions": 0}
    assert await maintenance.purge(h.core, now + timedelta(hours=2)) == {"secrets": 2, "sessions": 0}
    assert await _counts(h) == {"secrets": 0, "sessions": 1, "retired": 2}
    _, issued = await h.core.sessions.refresh(refresh, CTX)  # the session is untouched
    # 30 days and an hour on, the session and its retired tokens go too; run again: nothing left
    late = now + timedelta(seconds=h.settings.refresh_ttl) + timedelta(hours=2)
    assert await maintenance.purge(h.core, late, batch=2) == {"secrets": 0, "sessions": 1 + 3}
    assert await _counts(h) == {"secrets": 0, "sessions": 0, "retired": 0}
    assert await maintenance.purge(h.core, late) == {"secrets": 0, "sessions": 0}


async def test_purge_works_through_a_backlog_in_batches(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    async with h.core.store.transaction() as tx:
        for i in range(7):
            await h.core.otp.issue(tx, "login", f"user{i}@example.com")
    later = datetime.now(UTC) + timedelta(seconds=h.settings.purge_after) + DAY
    assert await maintenance.purge(h.core, later, batch=3) == {"secrets": 7, "sessions": 0}
    assert (await _counts(h))["secrets"] == 0


async def test_the_server_purges_on_its_schedule_on_one_node_per_interval(make_harness: HarnessFactory) -> None:
    """The schedule started by the app's lifespan: a purge round runs, and a second node sharing
    the cache skips the round the first one took."""
    h = await make_harness(purge_after=0, purge_interval=1)
    async with h.core.store.transaction() as tx:
        row, _ = await h.core.otp.issue(tx, "login", "sched@example.com", ttl=-5)  # expired
    assert await h.core.cache.add("maintenance:purge", 5) is True  # another node took this round
    stop = maintenance.schedule(h.core)
    try:
        await asyncio.sleep(1.5)
        assert (await _counts(h))["secrets"] == 1  # skipped: the round was taken
    finally:
        await stop()
    other = await make_harness(purge_after=0, purge_interval=1, database_url=h.settings.database_url)
    stop = maintenance.schedule(other.core)  # a cache of its own (no Redis): it is elected
    try:
        for _ in range(40):
            await asyncio.sleep(0.1)
            if (await _counts(h))["secrets"] == 0:
                break
        assert (await _counts(h))["secrets"] == 0
    finally:
        await stop()
    async with h.core.store.transaction(write=False) as tx:
        assert await tx.secrets.get(row.id) is None


def test_cli_purge_prints_the_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("AUTHGATE_PURGE_AFTER", "0")
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0

    async def issue_expired() -> None:
        from authgate.config import Settings
        from authgate.container import build

        container = await build(Settings())
        try:
            async with container.core.store.transaction() as tx:
                for purpose in ("login", "reset"):
                    await container.core.otp.issue(tx, purpose, "cli@example.com", ttl=-5)
        finally:
            await container.close()

    asyncio.run(issue_expired())
    out = runner.invoke(cli, ["purge"])
    assert out.exit_code == 0, out.output
    assert out.stdout.strip().splitlines()[-1] == '{"secrets": 2, "sessions": 0}'
    again = runner.invoke(cli, ["purge"])
    assert again.stdout.strip().splitlines()[-1] == '{"secrets": 0, "sessions": 0}'
