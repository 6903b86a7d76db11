"""One-time codes for the hosted pages: log in by code, and the first half of "forgot password".

Unlike seed 001's OTP natures, the pages never say whether an account exists: an unknown loginID
gets the same answer ("if an account matches, we sent it a code"), costs the same rate limits, and
leads to a code page whose every code fails. The code is bound to the account (identifier
``user:<id>``), not to the spelling the visitor typed, so every spelling shares one send limit,
and to the address it went to (mixed into its MAC, core/otp.py), so it proves that address: a
right code marks it verified and, on an account nobody has proven yet, hands the account to its
recipient (core/flows/ownership.py), as the app surface's codes do. A code whose address the
account has changed since is simply wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from authgate.core import audit, ids
from authgate.core.audit import Event
from authgate.core.blur import blur_email, blur_phone
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows import codes, ownership
from authgate.core.flows.ownership import Address
from authgate.core.flows.login import LoginResult, lock_active
from authgate.core.flows.users import find_user
from authgate.core.identifiers import classify
from authgate.core.model import AccountType, RequestContext, SessionScope, TokenType, User
from authgate.core.ports import Tx
from authgate.core.service import Core
from authgate.core.sessions import Issued

LOGIN_PURPOSE = "ui_login"
RESET_PURPOSE = "ui_reset"


@dataclass(frozen=True)
class SentCode:
    """What the code page needs: the secret's id (useless without the code) and a blurred hint."""

    secret_id: str
    purpose: str
    shown_to: str | None  # blurred destination, or None when it must not be shown


def _destination(core: Core, user: User, kind: AccountType) -> codes.Destination | None:
    m = core.messenger
    if kind is AccountType.EMAIL:
        return codes.Destination("email", user.email) if user.email and m.has_email else None
    if kind is AccountType.PHONE:
        return codes.Destination("sms", user.phone) if user.phone and m.has_sms else None
    if user.email and m.has_email:
        return codes.Destination("email", user.email)
    if user.phone and m.has_sms:
        return codes.Destination("sms", user.phone)
    return None


def _hint(dest: codes.Destination) -> str | None:
    return blur_email(dest.address) if dest.channel == "email" else blur_phone(dest.address)


async def send_account_code(
    core: Core, ctx: RequestContext, login_id: str, purpose: str, *, field: str = "login"
) -> SentCode:
    """Send a code for ``purpose`` to the account behind ``login_id``; pretend for unknown ones.

    A channel the service has no provider for is a configuration fact, not an account fact, so it
    is reported (``no_channel``) whether or not the account exists.
    """
    login = classify(login_id, core.settings.default_region, field)
    m = core.messenger
    if (login.kind is AccountType.EMAIL and not m.has_email) or (
        login.kind is AccountType.PHONE and not m.has_sms
    ) or not (m.has_email or m.has_sms):
        raise AuthError(ErrorCode.NO_CHANNEL)
    async with core.store.transaction(write=False) as tx:
        user = await find_user(tx, login)
    dest = _destination(core, user, login.kind) if user is not None else None
    if user is None or dest is None:
        # Same limits as a real send, nothing sent, a secret id that matches no code.
        await codes.pretend_send(core, ctx, purpose, login.value, "sms" if login.kind is AccountType.PHONE else "email")
        shown = None
        if login.kind is AccountType.EMAIL:
            shown = blur_email(login.value)
        elif login.kind is AccountType.PHONE:
            shown = blur_phone(login.value)
        return SentCode(ids.short_id(), purpose, shown)
    row = await codes.send_code(
        core, ctx, purpose=purpose, identifier=f"user:{user.id}", destinations=[dest], user_id=user.id,
        bound_to=dest.address,
    )
    return SentCode(row.id, purpose, _hint(dest) if login.kind is not AccountType.USERNAME else None)


def _address(user: User | None, channel: str | None) -> str | None:
    """The account's current address on the channel a code went through."""
    if user is None:
        return None
    return user.email if channel == "email" else user.phone if channel == "sms" else None


@dataclass(frozen=True)
class _Proof:
    """What a right code proved: which of the account's addresses, and its value when checked."""

    kind: Address
    address: str


async def _user_for_code(
    core: Core, ctx: RequestContext, secret_id: str, code: str, purpose: str
) -> tuple[User, _Proof]:
    """The account a right code was sent for, and the address the code proved."""
    async with core.store.transaction(write=False) as tx:
        pending = await tx.secrets.get(secret_id)
        holder = await tx.users.get(pending.user_id) if pending is not None and pending.user_id else None
    # A wrong code is audited against the account it was sent for (none for a pretended send).
    owner = pending.user_id if pending is not None and pending.purpose == purpose else None
    bound = _address(holder, pending.channel if pending is not None else None) or ""
    row = await codes.check_code(
        core, ctx, secret_id=secret_id, code=code.strip(), purpose=purpose, user_id=owner, bound_to=bound
    )
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(row.user_id or 0)
    if user is None or row.identifier != f"user:{user.id}" or row.channel not in ("email", "sms"):
        raise AuthError(ErrorCode.OTP_INVALID)
    return user, _Proof("email" if row.channel == "email" else "phone", bound)


async def _prove(core: Core, tx: Tx, ctx: RequestContext, user: User, proof: _Proof, purpose: str) -> None:
    """Receiving the code proved an address: verify it or, on an account nobody has proven, claim
    it. Inside the caller's transaction, before its session is started; ``user`` is locked for
    update, so the address compared here is the one that gets verified."""
    proved = proof.kind
    if _address(user, "email" if proved == "email" else "sms") != proof.address:
        raise AuthError(ErrorCode.OTP_INVALID)  # the address changed after the code was checked
    if ownership.never_proven(user):
        await ownership.claim(core, tx, ctx, user, proved, method="otp", purpose=purpose)
    elif proved == "email" and not user.email_verified:
        user.email_verified = True
        await audit.record(tx, Event.EMAIL_VERIFIED, ctx, user.id, method="otp", purpose=purpose)
    elif proved == "phone" and not user.phone_verified:
        user.phone_verified = True
        await audit.record(tx, Event.PHONE_VERIFIED, ctx, user.id, method="otp", purpose=purpose)
    else:
        return
    user.updated_at = datetime.now(UTC)
    await tx.users.save(user)


async def login_with_code(
    core: Core, ctx: RequestContext, secret_id: str, code: str, *, device_info: str | None = None
) -> LoginResult:
    """Check a login code and open a full session; locked or inactive accounts are refused."""
    user, proof = await _user_for_code(core, ctx, secret_id, code, LOGIN_PURPOSE)
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user.id, for_update=True)
        if fresh is None:
            raise AuthError(ErrorCode.OTP_INVALID)
        reason = None
        if lock_active(core, fresh, datetime.now(UTC)):
            reason, error = "locked", ErrorCode.ACCOUNT_LOCKED
        elif not fresh.is_active:
            reason, error = "inactive", ErrorCode.ACCOUNT_INACTIVE
        if reason is None:
            await _prove(core, tx, ctx, fresh, proof, LOGIN_PURPOSE)
            issued = await core.sessions.start(tx, fresh, ctx, device_info=device_info)
            await audit.record(
                tx, Event.LOGIN_SUCCEEDED, ctx, fresh.id, method="otp", session=issued.session.id
            )
            return LoginResult(fresh, issued)
        await audit.record(tx, Event.LOGIN_FAILED, ctx, fresh.id, reason=reason, method="otp")
    raise AuthError(error)


async def open_reset(core: Core, ctx: RequestContext, secret_id: str, code: str) -> Issued:
    """Check a reset code; return a reset-limited session (it may only set a new password)."""
    user, proof = await _user_for_code(core, ctx, secret_id, code, RESET_PURPOSE)
    async with core.store.transaction() as tx:
        fresh = await tx.users.get(user.id, for_update=True)
        if fresh is None:
            raise AuthError(ErrorCode.OTP_INVALID)
        await _prove(core, tx, ctx, fresh, proof, RESET_PURPOSE)
        return await core.sessions.start(tx, fresh, ctx, scope=SessionScope.RESET)


async def reset_session_user(core: Core, reset_token: str | None) -> tuple[int, str]:
    """(user id, session id) of a live reset-limited token, or 401."""
    principal = await core.sessions.authenticate(reset_token, TokenType.RESET)
    if principal.user_id is None or principal.session_id is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    return principal.user_id, principal.session_id
