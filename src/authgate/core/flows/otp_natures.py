"""OTPs by nature (seed 001, CONTRACT §4): log in, sign up, reset a password, change email or phone.

``request_otp`` sends a code and returns an ``otpToken``: a JWT of kind ``otp`` carrying the
loginID, the nature, the channel, the id of the one-time secret and its expiry. The token holds no
secret and not the address the code went to (a username's email must stay blurred to whoever asks),
so it is useless without the code. ``verify_otp`` checks the token, that its nature is the
endpoint's, then the code (single use, 5 tries, expiry: core/otp.py), and completes the nature.

Decisions (docs/surface-app.md): natures 1 and 3 for an unknown account answer 404
``account_not_found`` as account check does; nature 2 for an existing one 409 ``user_exists``;
natures 4 and 5 answer 409 ``identifier_taken`` when another account holds the new address.

Those answers reveal whether an account exists, so (CONTRACT §1: rate limits per IP on every
endpoint that reveals it) they are counted per IP against a budget the size of account check's
(60 a minute), under a rule of their own; an IP that has used it up gets 429 before any lookup.
Only revealing answers count, so ordinary sends are limited by the per-address rules alone. Wrong
codes are counted per IP in core/flows/codes.check_code, whichever surface checks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows import codes, ownership
from authgate.core.flows.login import lock_active
from authgate.core.flows.users import find_user, insert_with_free_username, new_user
from authgate.core.identifiers import LoginId, classify
from authgate.core.model import (
    AccountType,
    AuthProvider,
    OneTimeSecret,
    RequestContext,
    SessionScope,
    TokenType,
    User,
)
from authgate.core.ports import Tx
from authgate.core.service import Core
from authgate.core.sessions import Issued


class Nature(IntEnum):
    LOGIN = 1
    SIGNUP = 2
    RESET_PASSWORD = 3
    UPDATE_EMAIL = 4
    UPDATE_PHONE = 5

    @property
    def needs_session(self) -> bool:
        """Natures 4 and 5 change the caller's own account: they need a Bearer access token."""
        return self in (Nature.UPDATE_EMAIL, Nature.UPDATE_PHONE)

    @property
    def purpose(self) -> str:
        return f"app_{self.name.lower()}"


class SendType(IntEnum):
    NONE = 0  # the loginID is itself the email or phone
    EMAIL = 1  # a username's email
    PHONE = 2  # a username's phone


EMAIL, SMS = "email", "sms"
LOOKUP_RULE = "otp_lookup_ip"  # answers that reveal whether an account exists, per IP


@dataclass(frozen=True)
class OtpTicket:
    token: str
    expires_at: datetime
    channel: str


@dataclass(frozen=True)
class Verified:
    nature: Nature
    user: User
    issued: Issued | None  # a full session (login, signup), a reset session, or None (4 and 5)


# --- sending -------------------------------------------------------------------------------------
async def request_otp(
    core: Core,
    ctx: RequestContext,
    nature: Nature,
    login_id: str,
    send_type: SendType,
    *,
    user_id: int | None = None,
    field: str = "loginID",
) -> OtpTicket:
    """Send a code for ``nature`` and return its otpToken. ``user_id`` is the Bearer's (natures 4, 5)."""
    if nature.needs_session and user_id is None:
        raise AuthError(ErrorCode.TOKEN_MISSING)
    # Every answer that tells whether an account exists counts against the IP's lookup budget.
    lookups = core.guard.budget(LOOKUP_RULE, ctx.ip or "", core.settings.limit_account_check)
    await lookups.check()
    login = classify(login_id, core.settings.default_region, field)
    if login.kind is AccountType.USERNAME and send_type is SendType.NONE:
        raise invalid("sendType", "must be 1 (email) or 2 (phone) for a username loginID")
    if login.kind is not AccountType.USERNAME and send_type is not SendType.NONE:
        raise invalid("sendType", "must be 0 for an email or phone loginID")
    async with core.store.transaction(write=False) as tx:
        owner = await find_user(tx, login)
    if nature.needs_session:
        wanted = AccountType.EMAIL if nature is Nature.UPDATE_EMAIL else AccountType.PHONE
        if login.kind is not wanted:
            raise invalid(field, "must be an email" if wanted is AccountType.EMAIL else "must be a phone number")
        if owner is not None and owner.id != user_id:
            await lookups.fail()
            raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field=_address_field(login.kind))
        address, target = login.value, user_id
    elif nature is Nature.SIGNUP:
        if login.kind is AccountType.USERNAME:
            raise invalid(field, "an email or phone number is required to sign up")
        if owner is not None:
            await lookups.fail()
            raise AuthError(ErrorCode.USER_EXISTS, field=_address_field(login.kind))
        address, target = login.value, None
    else:
        if owner is None:
            await lookups.fail()
            raise AuthError(ErrorCode.ACCOUNT_NOT_FOUND)
        try:
            address, target = _address_of(owner, login, send_type), owner.id
        except AuthError:  # "the account has no email/phone" tells that it exists
            await lookups.fail()
            raise
    channel = EMAIL if _is_email(login, send_type) else SMS
    row = await codes.send_code(
        core,
        ctx,
        purpose=nature.purpose,
        identifier=address,
        destinations=[codes.Destination(channel, address)],
        user_id=target,
    )
    ttl = max(1, int((row.expires_at - datetime.now(UTC)).total_seconds()))
    token, _ = await core.tokens.sign(
        TokenType.OTP,
        login.value,
        ttl,
        loginID=login_id.strip(),
        nature=int(nature),
        channel=channel,
        oid=row.id,
        expiry=row.expires_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return OtpTicket(token, row.expires_at, channel)


def _is_email(login: LoginId, send_type: SendType) -> bool:
    return login.kind is AccountType.EMAIL or send_type is SendType.EMAIL


def _address_field(kind: AccountType) -> str:
    return "email" if kind is AccountType.EMAIL else "phone"


def _address_of(user: User, login: LoginId, send_type: SendType) -> str:
    if login.kind is not AccountType.USERNAME:
        return login.value
    if send_type is SendType.EMAIL:
        if not user.email:
            raise invalid("sendType", "the account has no email")
        return user.email
    if not user.phone:
        raise invalid("sendType", "the account has no phone")
    return user.phone


# --- verifying -----------------------------------------------------------------------------------
async def verify_otp(
    core: Core,
    ctx: RequestContext,
    nature: Nature,
    otp_token: str,
    otp: object,
    *,
    user_id: int | None = None,
    device_token: str | None = None,
    device_type: int | None = None,
) -> Verified:
    """Check an otpToken of ``nature`` and its code, then complete the nature."""
    code = codes.normalise_code(core, otp)
    if nature.needs_session and user_id is None:
        raise AuthError(ErrorCode.TOKEN_MISSING)
    claims = await core.tokens.verify(otp_token, TokenType.OTP)
    if claims.raw.get("nature") != int(nature) or isinstance(claims.raw.get("nature"), bool):
        raise AuthError(ErrorCode.OTP_NATURE_MISMATCH)
    secret_id = claims.raw.get("oid")
    if not isinstance(secret_id, str) or not secret_id:
        raise AuthError(ErrorCode.OTP_TOKEN_INVALID)
    async with core.store.transaction(write=False) as tx:
        pending = await tx.secrets.get(secret_id)
    if pending is not None and nature.needs_session:
        # The code was sent for another account's change: refuse before it costs that account a try.
        if pending.user_id != user_id:
            raise AuthError(ErrorCode.OTP_TOKEN_INVALID)
        await _ensure_free(core, pending, user_id)
    row = await codes.check_code(
        core,
        ctx,
        secret_id=secret_id,
        code=code,
        purpose=nature.purpose,
        identifier=pending.identifier if pending else None,
        user_id=pending.user_id if pending else None,
    )
    if nature is Nature.SIGNUP:
        return await _signup(core, ctx, row, device_token, device_type)
    if nature.needs_session:
        return await _update_address(core, ctx, nature, row)
    async with core.store.transaction() as tx:
        user = await _owner(tx, row)
        if not user.is_active:
            raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
        if ownership.never_proven(user):
            # The first proof of any address, by someone not signed in: the account is theirs, not
            # whoever set its password (core/flows/ownership.py). Rolled back if refused below.
            await ownership.claim(
                core, tx, ctx, user, "email" if row.channel == EMAIL else "phone", method="otp", nature=int(nature)
            )
        else:
            _mark_verified(user, row)
        now = datetime.now(UTC)
        if nature is Nature.LOGIN:
            if lock_active(core, user, now):
                raise AuthError(ErrorCode.ACCOUNT_LOCKED)
            if user.is_locked:  # the lock has run out
                user.is_locked, user.locked_at, user.failed_logins = False, None, 0
            user.updated_at = now
            await tx.users.save(user)
            issued = await core.sessions.start(tx, user, ctx, device_token=device_token, device_type=device_type)
            await audit.record(tx, Event.LOGIN_SUCCEEDED, ctx, user.id, method="otp", session=issued.session.id)
        else:
            user.updated_at = now
            await tx.users.save(user)
            issued = await core.sessions.start(tx, user, ctx, scope=SessionScope.RESET)
    return Verified(nature, user, issued)


async def _owner(tx: Tx, row: OneTimeSecret) -> User:
    """The account the code was sent for, provided it still has the address the code went to."""
    user = await tx.users.get(row.user_id or 0, for_update=True)
    if user is None:
        raise AuthError(ErrorCode.ACCOUNT_NOT_FOUND)
    current = user.email if row.channel == EMAIL else user.phone
    if (current or "").lower() != row.identifier.lower():
        raise AuthError(ErrorCode.OTP_TOKEN_INVALID)
    return user


def _mark_verified(user: User, row: OneTimeSecret) -> None:
    """Receiving the code proves the address: the channel it went to is verified."""
    if row.channel == EMAIL:
        user.email_verified = True
    else:
        user.phone_verified = True


async def _signup(
    core: Core, ctx: RequestContext, row: OneTimeSecret, device_token: str | None, device_type: int | None
) -> Verified:
    email = row.identifier if row.channel == EMAIL else None
    phone = row.identifier if row.channel == SMS else None
    user = new_user(
        core,
        "",
        email=email,
        email_verified=email is not None,
        phone=phone,
        phone_verified=phone is not None,
        auth_provider=AuthProvider.PASSWORD.value,
        locale=ctx.locale,
    )
    async with core.store.transaction() as tx:
        try:
            # A phone number is never made into a username: usernames are shown to others.
            await insert_with_free_username(tx, user, email or "user")
        except AuthError as exc:
            if exc.code is ErrorCode.IDENTIFIER_TAKEN:  # signed up in the meantime
                raise AuthError(ErrorCode.USER_EXISTS, field=exc.field) from None
            raise
        await audit.record(tx, Event.USER_CREATED, ctx, user.id, method="otp", channel=row.channel)
        issued = await core.sessions.start(tx, user, ctx, device_token=device_token, device_type=device_type)
        await audit.record(tx, Event.LOGIN_SUCCEEDED, ctx, user.id, method="signup", session=issued.session.id)
    return Verified(Nature.SIGNUP, user, issued)


async def _ensure_free(core: Core, row: OneTimeSecret, user_id: int | None) -> None:
    async with core.store.transaction(write=False) as tx:
        if row.channel == EMAIL:
            holder = await tx.users.get_by_email(row.identifier)
        else:
            holder = await tx.users.get_by_phone(row.identifier)
    if holder is not None and holder.id != user_id:
        raise AuthError(ErrorCode.IDENTIFIER_TAKEN, field="email" if row.channel == EMAIL else "phone")


async def _update_address(core: Core, ctx: RequestContext, nature: Nature, row: OneTimeSecret) -> Verified:
    async with core.store.transaction() as tx:
        user = await tx.users.get(row.user_id or 0, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if nature is Nature.UPDATE_EMAIL:
            user.email, user.email_verified, event = row.identifier, True, Event.EMAIL_VERIFIED
        else:
            user.phone, user.phone_verified, event = row.identifier, True, Event.PHONE_VERIFIED
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)  # the unique index settles a race: 409 identifier_taken
        await audit.record(tx, event, ctx, user.id, method="otp")
        changed = "email" if nature is Nature.UPDATE_EMAIL else "phone"
        await audit.record(tx, Event.USER_UPDATED, ctx, user.id, changed=changed)
    return Verified(nature, user, None)
