"""Sign up with a password (form surface, hosted pages) and the shared user-creation rules."""

from __future__ import annotations

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.users import insert_with_free_username, new_user
from authgate.core.identifiers import clean_username, normalise_email, parse_phone, refuse_control
from authgate.core.model import AuthProvider, RequestContext, User
from authgate.core.service import Core
from authgate.core.sessions import Issued


async def signup_with_password(
    core: Core,
    ctx: RequestContext,
    *,
    email: str,
    password: str,
    username: str | None = None,
    phone: str | None = None,
    full_name: str | None = None,
    start_session: bool = True,
) -> tuple[User, Issued | None]:
    """Create an account with a password; 409 ``user_exists`` when the email or username is taken.

    A username equal to the email (seed 003's sample) means "derive one from the email".
    """
    # A 409 tells the caller the address or username has an account (CONTRACT §1: rate limited
    # per IP): conflicts count against the account-check budget; successful signups do not.
    conflicts = core.guard.budget("signup_conflict", ctx.ip or "", core.settings.limit_account_check)
    await conflicts.check()
    email_norm = normalise_email(email, "email")
    derive = not username or username.strip().lower() == email.strip().lower()
    chosen = None if derive else clean_username(username or "", "username")
    phone_e164 = parse_phone(phone, core.settings.default_region, "metadata.phone-number") if phone else None
    if full_name:
        refuse_control(full_name, "name")  # no name has one, and PostgreSQL cannot store a NUL
    core.policy.check(password, "password")
    password_hash = await core.hasher.hash(password, gone=ctx.gone)
    user = new_user(
        core,
        chosen or "",
        email=email_norm,
        phone=phone_e164,
        password_hash=password_hash,
        full_name=full_name or None,
        auth_provider=AuthProvider.PASSWORD.value,
        locale=ctx.locale,
    )
    try:
        async with core.store.transaction() as tx:
            # The unique indexes decide (CONTRACT: no check-then-insert); a conflict ends the
            # transaction, so the insert needs no savepoint.
            try:
                if chosen:
                    await tx.users.create(user, savepoint=False)
                else:
                    await insert_with_free_username(tx, user, email_norm)
            except AuthError as exc:
                if exc.code is ErrorCode.IDENTIFIER_TAKEN:
                    raise AuthError(ErrorCode.USER_EXISTS, field=exc.field) from None
                raise
            await audit.record(tx, Event.USER_CREATED, ctx, user.id, method="password")
            issued = await core.sessions.start(tx, user, ctx) if start_session else None
            if issued:
                await audit.record(
                    tx, Event.LOGIN_SUCCEEDED, ctx, user.id, method="signup", session=issued.session.id
                )
    except AuthError as exc:
        if exc.code is ErrorCode.USER_EXISTS:
            await conflicts.fail()
        raise
    return user, issued
