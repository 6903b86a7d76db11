"""Log in with a password: one flow for the form, app, sync and hosted surfaces.

Order matters for enumeration and timing: the password is always checked (against a dummy hash
for unknown accounts) before anything about the account is revealed; lockout is counted on the
user row, so every spelling of the account (username, email, phone, any case) shares one counter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.users import find_user
from authgate.core.guard import Attempt
from authgate.core.identifiers import classify
from authgate.core.model import RequestContext, User
from authgate.core.ports import Tx
from authgate.core.service import Core
from authgate.core.sessions import Issued
from authgate.core.sessions import lock_active as lock_active  # moved to core/sessions.py; re-exported

MAX_PASSWORD_INPUT = 1024  # longer input is a failed login, never hashed at length


@dataclass
class LoginResult:
    user: User
    issued: Issued | None


async def check_password(
    core: Core, ctx: RequestContext, login_id: str, password: str, *, field: str = "loginID"
) -> User:
    """Return the user whose password this is, or raise; counts failures and locks accounts.

    The attempt is charged to the client IP's failed-login budget before the hash and given back
    when it was no failure, so guesses fired in parallel cannot overshoot the budget."""
    budget = core.guard.budget("failed_login_ip", ctx.ip or "", core.settings.limit_failed_login)
    async with budget.attempt() as attempt:
        return await _check_password(core, ctx, login_id, password, field, attempt)


async def _check_password(
    core: Core, ctx: RequestContext, login_id: str, password: str, field: str, attempt: Attempt
) -> User:
    settings = core.settings
    login = classify(login_id, settings.default_region, field)
    async with core.store.transaction(write=False) as tx:
        user = await find_user(tx, login)
        if user is not None and user.is_locked:  # the read may be cached: the lock is settled fresh
            user = await tx.users.get_any(user.id)
    now = datetime.now(UTC)
    # While a lockout holds, or the account is deactivated, the password is not checked at all (a
    # dummy hash keeps the cost): every attempt, right or wrong, gets the locked (inactive) answer,
    # so guessing on goes nowhere. (An inactive account told a right password from a wrong one.)
    live = user if user is not None and user.deleted_at is None else None
    locked = live is not None and lock_active(core, live, now)
    inactive = live is not None and not locked and not live.is_active
    stored = user.password_hash if user and not locked and not inactive else None
    if len(password) > MAX_PASSWORD_INPUT:
        ok, rehash = False, False
    else:
        ok, rehash = await core.hasher.verify(stored, password, gone=ctx.gone)
    if locked:
        assert user is not None
        attempt.fail()
        await _fail(core, ctx, user, "locked")
        raise AuthError(ErrorCode.ACCOUNT_LOCKED)
    if inactive:
        assert user is not None
        attempt.fail()
        await _fail(core, ctx, user, "inactive")
        raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
    if user is None or user.deleted_at is not None:
        attempt.fail()
        async with core.store.transaction() as tx:
            await audit.record(tx, Event.LOGIN_FAILED, ctx, reason="unknown_user", kind=login.kind.name)
        raise AuthError(ErrorCode.USER_NOT_FOUND)

    # The common case (right password, account not locked) needs no write here: the session's
    # transaction resets the failure count. Failures and locks are settled under a row lock.
    if ok and not user.is_locked and user.is_active:
        return await _maybe_rehash(core, user, password, stored, rehash)
    # AUTHGATE_RATE_LIMITS=off (benchmarks; refused in production) turns lockout off too.
    lockout = bool(settings.lockout_threshold and core.guard.enabled)
    if not ok and not user.is_locked:
        # The common failure: one counting statement. The row is read whole only when this
        # failure locks the account (the read above may be stale: the count decides).
        async with core.store.transaction() as tx:
            counted = await tx.users.add_failed_login(user.id)
            if counted is None:
                raise AuthError(ErrorCode.USER_NOT_FOUND)
            failures, was_locked = counted
            if lockout and failures >= settings.lockout_threshold and not was_locked:
                await _lock(core, tx, ctx, user.id, failures, now)
            await audit.record(tx, Event.LOGIN_FAILED, ctx, user.id, reason="bad_password")
        attempt.fail()
        # Locked since the read (parallel guesses): the locked answer, as the right password gets.
        raise AuthError(ErrorCode.ACCOUNT_LOCKED if was_locked and lockout else ErrorCode.INVALID_CREDENTIALS)
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user.id, for_update=True)
        if fresh is None:
            raise AuthError(ErrorCode.USER_NOT_FOUND)
        user = fresh
        if user.is_locked and not lock_active(core, user, now):
            user.is_locked, user.locked_at, user.failed_logins = False, None, 0
            await tx.users.save(user)
            await audit.record(tx, Event.ACCOUNT_UNLOCKED, ctx, user.id, reason="expired")
        if not ok:
            counted = await tx.users.add_failed_login(user.id)
            failures = counted[0] if counted else 0
            if lockout and failures >= settings.lockout_threshold and not user.is_locked:
                user = await _lock(core, tx, ctx, user.id, failures, now) or user
            await audit.record(tx, Event.LOGIN_FAILED, ctx, user.id, reason="bad_password")
    if not ok:
        attempt.fail()
        raise AuthError(ErrorCode.INVALID_CREDENTIALS)
    if user.is_locked:
        await _fail(core, ctx, user, "locked")
        raise AuthError(ErrorCode.ACCOUNT_LOCKED)
    if not user.is_active:
        await _fail(core, ctx, user, "inactive")
        raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
    return await _maybe_rehash(core, user, password, stored, rehash)


async def _lock(core: Core, tx: Tx, ctx: RequestContext, user_id: int, failures: int, now: datetime) -> User | None:
    """This failure reached the threshold: lock the account (CONTRACT §1: 15 minutes)."""
    user = await tx.users.get(user_id, for_update=True)
    if user is None:
        return None
    user.failed_logins = failures
    user.is_locked, user.locked_at = True, now
    await tx.users.save(user)
    await audit.record(tx, Event.ACCOUNT_LOCKED, ctx, user.id, failures=failures)
    return user


async def _maybe_rehash(core: Core, user: User, password: str, stored: str | None, rehash: bool) -> User:
    """Imported or weaker hashes become argon2id with today's parameters at a successful login."""
    if not rehash:
        return user
    new_hash = await core.hasher.hash(password)
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user.id, for_update=True)
        if fresh and fresh.password_hash == stored:
            fresh.password_hash = new_hash
            await tx.users.save(fresh)
            user = fresh
    return user


async def _fail(core: Core, ctx: RequestContext, user: User, reason: str) -> None:
    async with core.store.transaction() as tx:
        await audit.record(tx, Event.LOGIN_FAILED, ctx, user.id, reason=reason)


async def password_login(
    core: Core,
    ctx: RequestContext,
    login_id: str,
    password: str,
    *,
    field: str = "loginID",
    device_token: str | None = None,
    device_type: int | None = None,
    device_info: str | None = None,
) -> LoginResult:
    """Check the password and open a session."""
    user = await check_password(core, ctx, login_id, password, field=field)
    async with core.store.transaction() as tx:
        # Only the lock columns, under the row lock: the rest of ``user`` was read a moment ago.
        state = await tx.users.lock_state(user.id)
        if state is None:
            raise AuthError(ErrorCode.USER_NOT_FOUND)
        user.is_active, user.is_locked, user.locked_at = state.is_active, state.is_locked, state.locked_at
        if state.is_locked and lock_active(core, user, datetime.now(UTC)):
            raise AuthError(ErrorCode.ACCOUNT_LOCKED)  # locked since the password was checked
        if not state.is_active:
            raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
        if state.failed_logins:
            await tx.users.reset_failed_logins(user.id)
        user.failed_logins = 0
        issued = await core.sessions.start(
            tx, user, ctx, device_token=device_token, device_type=device_type, device_info=device_info
        )
        await audit.record(tx, Event.LOGIN_SUCCEEDED, ctx, user.id, method="password", session=issued.session.id)
    return LoginResult(user, issued)
