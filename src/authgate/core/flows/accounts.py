"""Looking up accounts: does a loginID exist, a username's blurred contacts, the caller's own.

Account check and username info reveal whether an account exists, so both are rate limited per IP
(CONTRACT §1: 60 a minute by default) before anything is looked up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from authgate.core.blur import blur_email, blur_phone, owner_phone
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows.users import find_user
from authgate.core.identifiers import LoginId, classify, normalise_username
from authgate.core.model import RequestContext, User
from authgate.core.service import Core
from authgate.core.sessions import lock_active


@dataclass(frozen=True)
class AccountCheck:
    login: LoginId
    user: User

    @property
    def has_password(self) -> bool:
        return self.user.password_hash is not None


@dataclass(frozen=True)
class Contacts:
    email: str | None
    phone: str | None


async def check_account(core: Core, ctx: RequestContext, login_id: str, *, field: str = "loginID") -> AccountCheck:
    """The account behind a loginID (username, email or phone), or 404 ``account_not_found``."""
    await core.guard.hit("account_check", ctx.ip or "", core.settings.limit_account_check)
    login = classify(login_id, core.settings.default_region, field)
    async with core.store.transaction(write=False) as tx:
        user = await find_user(tx, login)
    if user is None:
        raise AuthError(ErrorCode.ACCOUNT_NOT_FOUND)
    return AccountCheck(login, user)


async def username_contacts(
    core: Core, ctx: RequestContext, username: str, *, field: str = "username"
) -> Contacts:
    """A username's email and phone, blurred (core/blur.py); None where the account has none."""
    await core.guard.hit("username_info", ctx.ip or "", core.settings.limit_account_check)
    name = username.strip()
    if not name or len(name) > 320:
        raise invalid(field, "must be 1-320 characters")
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_username(normalise_username(name))
    if user is None:
        raise AuthError(ErrorCode.ACCOUNT_NOT_FOUND)
    return Contacts(blur_email(user.email), blur_phone(user.phone))


def own_contacts(core: Core, user: User) -> Contacts:
    """The caller's own email and phone in clear (phone as ``blur.owner_phone`` renders it)."""
    return Contacts(user.email, owner_phone(user.phone, core.settings.default_region))


async def live_user(core: Core, user_id: int, *, locked_ok: bool = False) -> User:
    """The user behind an authenticated session: a deleted one is an invalid token, an inactive one
    is refused, and so is one locked while the lockout lasts (its tokens stop with the lock, as its
    refresh and its cookie sessions do). ``locked_ok``: a password reset's token, which is how a
    locked account gets unlocked."""
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(user_id)
    if user is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    if not user.is_active:
        raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
    if not locked_ok and lock_active(core, user, datetime.now(UTC)):
        raise AuthError(ErrorCode.ACCOUNT_LOCKED)
    return user
