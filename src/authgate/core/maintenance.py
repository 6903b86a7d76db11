"""Housekeeping: rows past their use are deleted, so the tables a login or a code writes to do not
grow for ever.

Expired one-time secrets (codes, links, reset tokens: an expired one is refused like a wrong one),
expired sessions and the refresh tokens their rotations retired are deleted once they have been
expired for ``AUTHGATE_PURGE_AFTER`` seconds (a week by default: until then an expired refresh
token still gets its own answer, ``refresh_expired``). Users and audit events are never purged.

Deletes go in batches of ``BATCH`` rows, each its own short transaction, so a large backlog never
holds a long lock; each batch is idempotent, so two nodes purging at once only share the work.
The schedule (``run_periodically``) runs on one node per interval, elected by the shared cache
(Redis in a cluster): the others skip that round.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import structlog

from authgate.core.errors import AuthError
from authgate.core.service import Core

log = structlog.get_logger("authgate.maintenance")

BATCH = 5000


async def purge(core: Core, now: datetime | None = None, *, batch: int = BATCH) -> dict[str, int]:
    """Delete what expired more than ``purge_after`` seconds before ``now``; the counts deleted."""
    before = (now or datetime.now(UTC)) - timedelta(seconds=core.settings.purge_after)
    counts = {"secrets": 0, "sessions": 0}
    for name in counts:
        while True:
            async with core.store.transaction() as tx:
                repo = tx.secrets if name == "secrets" else tx.sessions
                deleted = await repo.purge_expired(before, batch)
            counts[name] += deleted
            if deleted == 0:
                break
    return counts


async def run_periodically(core: Core) -> None:
    """Purge every ``purge_interval`` seconds until cancelled, on one node per interval. A failing
    database is logged and tried again next round, never raised: the server goes on serving."""
    interval = core.settings.purge_interval
    # The first round comes a random part of an interval after start-up, so the nodes of a
    # cluster started together do not all ask at once, and a restart loop does not purge each time.
    await asyncio.sleep(random.uniform(0.1, 1.0) * interval)
    while True:
        try:
            if await core.cache.add("maintenance:purge", max(1, interval - 1)):
                counts = await purge(core)
                log.info("purged", **counts)
        except AuthError as exc:  # the database or Redis down: a 503 everywhere else
            log.warning("purge_failed", error=exc.detail or exc.code.value)
        except Exception:  # noqa: BLE001 - a dead schedule would go unnoticed: say it, go on
            log.exception("purge_failed")
        await asyncio.sleep(interval)


def schedule(core: Core) -> Callable[[], Awaitable[None]]:
    """Start ``run_periodically`` on the running loop; the returned closer stops it and waits
    until it has (so a purge in progress is rolled back before the store closes)."""
    task = asyncio.get_running_loop().create_task(run_periodically(core), name="authgate-purge")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return stop
