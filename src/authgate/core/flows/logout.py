"""Ending sessions: one, or all of a user's."""

from __future__ import annotations

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.model import RequestContext
from authgate.core.service import Core


async def logout(core: Core, ctx: RequestContext, user_id: int | None, session_id: str) -> None:
    async with core.store.transaction() as tx:
        if await core.sessions.revoke(tx, session_id, "logout"):
            await audit.record(tx, Event.SESSION_REVOKED, ctx, user_id, session=session_id, reason="logout")


async def logout_everywhere(core: Core, ctx: RequestContext, user_id: int, reason: str = "logout_all") -> int:
    async with core.store.transaction() as tx:
        revoked = await core.sessions.revoke_user(tx, user_id, reason)
        if revoked:
            await audit.record(tx, Event.SESSION_REVOKED, ctx, user_id, count=len(revoked), reason=reason)
    return len(revoked)
