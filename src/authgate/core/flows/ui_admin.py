"""The admin console's actions: every one checks the actor's role and is audited with the actor.

Rules: the actor must be ``ROLE_ADMIN`` or above; nobody acts on their own account here (an admin
locking themselves out is an accident, not a feature), nor on an account of a higher role (an
admin cannot lock a super admin). A lock set by an admin has no expiry (``lockedAt`` is null): it
lasts until an admin unlocks it or the user resets the password, as the lockout does (CONTRACT §1).
Deactivation is the lasting switch. Locking or deactivating also signs the user out everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.clients import register_client
from authgate.core.model import ROLE_RANK, AuditEvent, ExternalIdentity, RequestContext, Role, Session, User
from authgate.core.ports import Tx
from authgate.core.service import Core

CLIENT_REGISTERED = "client.registered"  # not in audit.Event: written as a plain AuditEvent type


def require_admin(actor: User) -> None:
    if not actor.is_active or not actor.has_role_at_least(Role.ADMIN):
        raise AuthError(ErrorCode.FORBIDDEN)


def actor_id(actor: User) -> str:
    return str(actor.id)


async def _target(tx: Tx, actor: User, user_id: int) -> User:
    require_admin(actor)
    user = await tx.users.get(user_id, for_update=True)
    if user is None:
        raise AuthError(ErrorCode.NOT_FOUND)
    if user.id == actor.id or ROLE_RANK[user.top_role] > ROLE_RANK[actor.top_role]:
        raise AuthError(ErrorCode.FORBIDDEN)
    return user


def _touch(user: User, actor: User) -> None:
    user.updated_at = datetime.now(UTC)
    user.updated_by = actor_id(actor)


async def _sign_out(core: Core, tx: Tx, ctx: RequestContext, actor: User, user: User, reason: str) -> int:
    revoked = await core.sessions.revoke_user(tx, user.id, reason)
    if revoked:
        await audit.record(
            tx, Event.SESSION_REVOKED, ctx, user.id, actor=actor_id(actor), count=len(revoked), reason=reason
        )
    return len(revoked)


async def lock_user(core: Core, ctx: RequestContext, actor: User, user_id: int) -> User:
    async with core.store.transaction() as tx:
        user = await _target(tx, actor, user_id)
        user.is_locked, user.locked_at = True, None
        _touch(user, actor)
        await tx.users.save(user)
        await audit.record(tx, Event.ACCOUNT_LOCKED, ctx, user.id, actor=actor_id(actor), by="admin")
        await _sign_out(core, tx, ctx, actor, user, "admin_lock")
    return user


async def unlock_user(core: Core, ctx: RequestContext, actor: User, user_id: int) -> User:
    async with core.store.transaction() as tx:
        user = await _target(tx, actor, user_id)
        user.is_locked, user.locked_at, user.failed_logins = False, None, 0
        _touch(user, actor)
        await tx.users.save(user)
        await audit.record(tx, Event.ACCOUNT_UNLOCKED, ctx, user.id, actor=actor_id(actor), by="admin")
    return user


async def set_active(core: Core, ctx: RequestContext, actor: User, user_id: int, active: bool) -> User:
    async with core.store.transaction() as tx:
        user = await _target(tx, actor, user_id)
        user.is_active = active
        _touch(user, actor)
        await tx.users.save(user)
        await audit.record(tx, Event.USER_UPDATED, ctx, user.id, actor=actor_id(actor), isActive=active)
        if not active:
            await _sign_out(core, tx, ctx, actor, user, "admin_deactivate")
    return user


async def revoke_sessions(core: Core, ctx: RequestContext, actor: User, user_id: int) -> int:
    async with core.store.transaction() as tx:
        user = await _target(tx, actor, user_id)
        return await _sign_out(core, tx, ctx, actor, user, "admin")


async def register_client_app(
    core: Core, ctx: RequestContext, actor: User, name: str, platforms: list[str], min_versions: list[str]
) -> dict[str, Any]:
    require_admin(actor)
    made = await register_client(core, name, platforms, min_versions)
    async with core.store.transaction() as tx:
        await tx.audit.add(
            AuditEvent(
                type=CLIENT_REGISTERED,
                at=datetime.now(UTC),
                user_id=actor.id,
                ip=ctx.ip,
                user_agent=(ctx.user_agent or "")[:255] or None,
                actor=actor_id(actor),
                detail={"clientId": made["clientId"], "name": made["name"], "platforms": made["platforms"]},
            )
        )
    return made


# --- reading -------------------------------------------------------------------------------------
async def search_users(
    core: Core, actor: User, search: str | None, limit: int, after_id: int | None
) -> Sequence[User]:
    require_admin(actor)
    async with core.store.transaction(write=False) as tx:
        return await tx.users.list((search or "").strip() or None, limit, after_id)


@dataclass
class UserDetail:
    user: User
    identities: Sequence[ExternalIdentity]
    sessions: Sequence[Session]
    events: Sequence[AuditEvent]


async def user_detail(core: Core, actor: User, user_id: int, events: int = 50) -> UserDetail:
    require_admin(actor)
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get_any(user_id)
        if user is None:
            raise AuthError(ErrorCode.NOT_FOUND)
        return UserDetail(
            user,
            await tx.identities.for_user(user_id),
            await tx.sessions.list_active(user_id, datetime.now(UTC)),
            await tx.audit.list(user_id=user_id, limit=events),
        )


@dataclass
class Series:
    name: str
    days: list[date]
    counts: list[int]

    @property
    def total(self) -> int:
        return sum(self.counts)


async def dashboard(core: Core, actor: User, days: int = 14, today: date | None = None) -> list[Series]:
    """Sign-ups, logins and failed logins per UTC day over the last ``days`` days, from the audit log."""
    require_admin(actor)
    last = today or datetime.now(UTC).date()
    first = last - timedelta(days=days - 1)
    since = datetime(first.year, first.month, first.day, tzinfo=UTC)
    until = since + timedelta(days=days)
    span = [first + timedelta(days=i) for i in range(days)]
    out = []
    async with core.store.transaction(write=False) as tx:
        for name, event in (
            ("signups", Event.USER_CREATED),
            ("logins", Event.LOGIN_SUCCEEDED),
            ("failed_logins", Event.LOGIN_FAILED),
        ):
            per_day = await tx.audit.count_per_day(event.value, since, until)  # counted by the database
            out.append(Series(name, span, [per_day.get(d, 0) for d in span]))
    return out
