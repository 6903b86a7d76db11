"""Setting a first password and resetting one (seed 001 ``POST``/``PUT /app/auth/password``).

A reset replaces the password, unlocks the account (CONTRACT §1: a password reset unlocks it)
and revokes every other session of the user; a reset made with a reset-limited token revokes that
token's session too, so the token works once.
"""

from __future__ import annotations

import secrets
import string
from datetime import UTC, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.model import RequestContext
from authgate.core.passwords import PasswordPolicy
from authgate.core.service import Core

GENERATED_LENGTH = 16  # ~100 bits from a 76-character alphabet
_SPECIALS = "!#$%&*+-.=?@^_~"
_ALPHABET = string.ascii_letters + string.digits + _SPECIALS


def generate_password(policy: PasswordPolicy) -> str:
    """A random password that passes ``policy``: letters, digits and specials, each at least once."""
    length = min(max(GENERATED_LENGTH, policy.min_length), policy.max_length)
    while True:
        candidate = "".join(secrets.choice(_ALPHABET) for _ in range(length))
        if (
            any(c.islower() for c in candidate)
            and any(c.isupper() for c in candidate)
            and any(c.isdigit() for c in candidate)
            and any(c in _SPECIALS for c in candidate)
        ):
            try:
                policy.check(candidate)
            except AuthError:
                continue
            return candidate


async def set_first_password(
    core: Core, ctx: RequestContext, user_id: int, password: str | None, *, field: str = "password"
) -> str | None:
    """Give an account without a password its first one; 409 when it has one.

    With ``password`` None the system generates one and returns it (the only time it is ever
    shown); otherwise returns None.
    """
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(user_id)
    if user is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    if user.password_hash is not None:
        raise AuthError(ErrorCode.PASSWORD_ALREADY_SET)
    generated = None
    if password is None:
        password = generated = generate_password(core.policy)
    else:
        core.policy.check(password, field)
    digest = await core.hasher.hash(password, gone=ctx.gone)
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user_id, for_update=True)
        if fresh is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if fresh.password_hash is not None:  # set by a concurrent request
            raise AuthError(ErrorCode.PASSWORD_ALREADY_SET)
        fresh.password_hash = digest
        fresh.updated_at = datetime.now(UTC)
        await tx.users.save(fresh)
        await audit.record(tx, Event.PASSWORD_SET, ctx, fresh.id, generated=generated is not None)
    return generated


async def reset_password(
    core: Core,
    ctx: RequestContext,
    user_id: int,
    password: str,
    *,
    keep_session: str | None,
    field: str = "password",
) -> int:
    """Replace the password, clear the lockout and revoke every session but ``keep_session``.

    Returns how many sessions were revoked.
    """
    core.policy.check(password, field)
    digest = await core.hasher.hash(password, gone=ctx.gone)
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        was_locked = user.is_locked
        user.password_hash = digest
        user.is_locked, user.locked_at, user.failed_logins = False, None, 0
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)
        revoked = await core.sessions.revoke_user(tx, user.id, "password_reset", except_id=keep_session)
        await audit.record(tx, Event.PASSWORD_RESET, ctx, user.id, sessions_revoked=len(revoked))
        if was_locked:
            await audit.record(tx, Event.ACCOUNT_UNLOCKED, ctx, user.id, reason="password_reset")
        if revoked:
            await audit.record(
                tx, Event.SESSION_REVOKED, ctx, user.id, count=len(revoked), reason="password_reset"
            )
    return len(revoked)
