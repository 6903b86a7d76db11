"""The signed-in user's own account on the hosted pages: password change, sessions.

Changing a password needs the current one, checked by the login flow (so wrong guesses count
towards the lockout like any failed login); it then revokes every other session of the user.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows import codes, login, passwords
from authgate.core.model import RequestContext, Session, User
from authgate.core.service import Core


def _login_id(user: User) -> str:
    # The email or phone resolve to exactly this account; an all-digit username could parse as a phone.
    return user.email or user.phone or user.username


async def change_password(
    core: Core, ctx: RequestContext, user: User, session_id: str, current: str, new: str
) -> int:
    """Replace the password (after checking the current one, when there is one); returns how many
    other sessions were signed out."""
    if user.password_hash is not None:
        if not current:
            raise AuthError(ErrorCode.INVALID_CREDENTIALS, field="current_password")
        try:
            await login.check_password(core, ctx, _login_id(user), current, field="current_password")
        except AuthError as exc:
            if exc.code in (ErrorCode.INVALID_CREDENTIALS, ErrorCode.USER_NOT_FOUND):
                raise AuthError(ErrorCode.INVALID_CREDENTIALS, field="current_password") from None
            raise
    return await passwords.reset_password(core, ctx, user.id, new, keep_session=session_id, field="password")


async def active_sessions(core: Core, user_id: int) -> Sequence[Session]:
    async with core.store.transaction(write=False) as tx:
        return await tx.sessions.list_active(user_id, datetime.now(UTC))


async def revoke_own_session(core: Core, ctx: RequestContext, user_id: int, session_id: str) -> None:
    """Sign out one of the caller's own sessions; another user's session is "not found"."""
    async with core.store.transaction() as tx:
        session = await tx.sessions.get(session_id)
        if session is None or session.user_id != user_id or session.revoked_at is not None:
            raise AuthError(ErrorCode.NOT_FOUND)
        await core.sessions.revoke(tx, session_id, "user")
        await audit.record(tx, Event.SESSION_REVOKED, ctx, user_id, session=session_id, reason="user")


async def revoke_other_sessions(core: Core, ctx: RequestContext, user_id: int, keep: str) -> int:
    async with core.store.transaction() as tx:
        revoked = await core.sessions.revoke_user(tx, user_id, "user_others", except_id=keep)
        if revoked:
            await audit.record(tx, Event.SESSION_REVOKED, ctx, user_id, count=len(revoked), reason="user_others")
    return len(revoked)


# --- proving the email and phone ------------------------------------------------------------------
def _channels(channel: str) -> str:
    return "email" if channel == "email" else "sms"


async def send_channel_code(core: Core, ctx: RequestContext, user: User, channel: str) -> None:
    """Send a code to the account's email (``channel`` "email") or phone ("phone")."""
    if not (user.email if channel == "email" else user.phone):
        raise invalid(channel, "the account has none")
    if not codes.channel_destinations(core, user.email, user.phone, _channels(channel)):
        raise AuthError(ErrorCode.NO_CHANNEL)
    await codes.send_channel_code(core, ctx, user, _channels(channel))


async def send_first_email_code(core: Core, ctx: RequestContext, user: User) -> bool:
    """Right after sign-up: the account exists whatever happens here, so a code that cannot be sent
    (no provider, provider down) is reported as False and the verify page offers to send again."""
    try:
        await send_channel_code(core, ctx, user, "email")
    except AuthError:
        return False
    return True


async def confirm_channel(core: Core, ctx: RequestContext, user_id: int, code: str, channel: str) -> User:
    """Mark ``channel`` verified with the latest channel code, only if that code went to it: an SMS
    code never proves the email, nor an email code the phone."""
    async with core.store.transaction(write=False) as tx:
        row = await tx.secrets.get_active(codes.CHANNEL_PURPOSE, f"user:{user_id}")
    if row is None or _channels(channel) not in (row.channel or "").split("+"):
        raise AuthError(ErrorCode.OTP_INVALID, field="code")
    try:
        return await codes.confirm_channel(core, ctx, user_id, code.strip(), channel)
    except AuthError as exc:
        if exc.code is ErrorCode.OTP_INVALID:
            raise AuthError(ErrorCode.OTP_INVALID, field="code") from None
        raise
