"""Sign in with an identity proven by a federated provider (Firebase: Google, Apple, email/password).

The external identity is keyed by (``firebase``, Firebase uid): one Firebase account keeps its uid
whichever sign-in method it uses, so a user who adds Apple to their Firebase account stays one
user here. Resolution order:

1. a known (provider, subject) → its user;
2. else a live user with the same email, when the provider says the email is verified → linked
   (the user now has one more identity; audit ``identity.linked``). If the account had never
   verified that email, whoever set its password may not own the address: as Firebase does, its
   password, PIN and phone are removed and its sessions revoked (``_claim_unverified_account``); an
   account whose email was verified keeps them;
3. else a live user with the same email but an UNVERIFIED email claim → 409
   ``federated_email_conflict``: anyone can create a Firebase email/password account for an address
   they do not own, so an unverified claim never takes over (nor shadows) an existing account;
4. else a new user: username derived from the email, the provider's name, photo and
   email_verified, the preferred language, onboarding ``PENDING_PHONE_VERIFICATION``.

Then a session is started. Inactive or locked accounts are refused (``account_inactive`` /
``account_locked``) before anything is linked or issued.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows import ownership
from authgate.core.flows.onboarding import DEFAULT_LANGUAGE, check_language
from authgate.core.flows.users import insert_with_free_username, new_user
from authgate.core.identifiers import has_control, is_web_url, normalise_email, refuse_control
from authgate.core.model import AuthProvider, ExternalIdentity, Onboarding, RequestContext, Role, User
from authgate.core.ports import Tx
from authgate.core.service import Core
from authgate.core.sessions import Issued, lock_active

IDENTITY_PROVIDER = "firebase"
MAX_DEVICE_INFO = 255
_NAME_MAX = 200
_URL_MAX = 2048


@dataclass(frozen=True)
class FederatedIdentity:
    provider: str  # our authProvider: GOOGLE, APPLE or EMAIL
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    picture: str | None

    @classmethod
    def from_claims(cls, claims: dict[str, Any]) -> FederatedIdentity:
        provider = str(claims.get("provider") or "")
        if provider not in (AuthProvider.GOOGLE, AuthProvider.APPLE, AuthProvider.EMAIL):
            raise AuthError(ErrorCode.FEDERATED_TOKEN_INVALID)
        email = claims.get("email")
        try:
            email = normalise_email(email) if isinstance(email, str) and email else None
        except AuthError:
            email = None  # an address we cannot use is treated as no address
        # The name and photo are the user's own (Firebase updateProfile): one with a control
        # character or a lone surrogate (which PostgreSQL or the encoder refuse) is left out.
        name = claims.get("name") if _clean(claims.get("name")) else None
        picture = claims.get("picture") if _clean(claims.get("picture")) else None
        return cls(
            provider=provider,
            subject=str(claims["subject"]),
            email=email,
            email_verified=bool(claims.get("email_verified")) and email is not None,
            name=name.strip()[:_NAME_MAX] if isinstance(name, str) and name.strip() else None,
            picture=picture
            if isinstance(picture, str) and is_web_url(picture, https_only=True, max_length=_URL_MAX)
            else None,
        )


def _clean(value: Any) -> bool:
    return isinstance(value, str) and not has_control(value)


@dataclass
class FederatedLogin:
    user: User
    issued: Issued
    created: bool
    linked: bool


async def federated_login(
    core: Core,
    ctx: RequestContext,
    token: str,
    *,
    preferred_language: str | None = None,
    device_info: str | None = None,
) -> FederatedLogin:
    """Verify ``token`` with the configured identity provider, find/link/create the user, open a session."""
    blank = preferred_language is None or not preferred_language.strip()
    language = DEFAULT_LANGUAGE if blank else check_language(preferred_language or "")
    if device_info is not None and len(device_info) > MAX_DEVICE_INFO:
        raise AuthError(ErrorCode.INVALID_FIELD, field="deviceInfo", detail="Device info must be at most 255 characters")
    if device_info is not None:
        refuse_control(device_info, "deviceInfo")  # stored on the session: PostgreSQL refuses a NUL
    if core.idp is None:
        raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="federated sign-in is not configured")
    budget = core.guard.budget("failed_login_ip", ctx.ip or "", core.settings.limit_failed_login)
    await budget.check()
    try:
        identity = FederatedIdentity.from_claims(await core.idp.verify(token))
    except AuthError as exc:
        if exc.code is ErrorCode.FEDERATED_TOKEN_INVALID:
            # A bad token is a failed login: it counts against the IP's budget like a bad password.
            await budget.fail()
            async with core.store.transaction() as tx:
                await audit.record(tx, Event.LOGIN_FAILED, ctx, reason="federated_token_invalid", method="firebase")
        raise
    # Two first sign-ins of one account can race: the loser's insert hits a unique index (email
    # or identity) and rolls back; the second attempt then finds the winner's rows.
    for attempt in range(3):
        try:
            return await _sign_in(core, ctx, identity, language, device_info)
        except AuthError as exc:
            if attempt == 2 or exc.code is not ErrorCode.IDENTIFIER_TAKEN or exc.field not in ("email", "identity"):
                raise
    raise AssertionError("unreachable")


class _Refused(Exception):
    def __init__(self, code: ErrorCode, user_id: int, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.user_id, self.reason, self.field = code, user_id, reason, field


async def _sign_in(
    core: Core, ctx: RequestContext, identity: FederatedIdentity, language: str, device_info: str | None
) -> FederatedLogin:
    refused: _Refused | None = None
    async with core.store.transaction() as tx:
        try:
            user, created, linked = await _resolve(core, tx, ctx, identity, language)
        except _Refused as exc:
            # Commit the audit of the refusal (nothing else was written), then refuse.
            refused = exc
            await audit.record(tx, Event.LOGIN_FAILED, ctx, exc.user_id, reason=exc.reason, method=IDENTITY_PROVIDER)
        else:
            issued = await core.sessions.start(tx, user, ctx, device_info=device_info or None)
            await audit.record(
                tx, Event.LOGIN_SUCCEEDED, ctx, user.id, method=IDENTITY_PROVIDER, provider=identity.provider,
                session=issued.session.id,
            )
    if refused is not None:
        raise AuthError(refused.code, field=refused.field)
    return FederatedLogin(user, issued, created, linked)


async def _resolve(
    core: Core, tx: Tx, ctx: RequestContext, identity: FederatedIdentity, language: str
) -> tuple[User, bool, bool]:
    """The user this identity signs in as: (user, created, linked). Raises _Refused before writing."""
    known = await tx.identities.get(IDENTITY_PROVIDER, identity.subject)
    if known is not None:
        user = await tx.users.get(known.user_id, for_update=True)
        if user is None:  # the account was deleted: its identity does not sign in again
            raise _Refused(ErrorCode.ACCOUNT_INACTIVE, known.user_id, "deleted")
        _check_usable(core, user)
        if not user.email_verified and _proves_email(user, identity):
            # The same uid, now proving the email (Firebase keeps a password account's uid when
            # Google signs in to it): whoever set up the account before it was proven may not own
            # the address, so the claim is the one a new link makes.
            await _claim_unverified_account(core, tx, ctx, user, identity)
        _refresh_profile(user, identity)
        await tx.users.save(user)
        return user, False, False
    existing = await tx.users.get_by_email(identity.email) if identity.email else None
    if existing is not None:
        if not identity.email_verified:
            raise _Refused(ErrorCode.FEDERATED_EMAIL_CONFLICT, existing.id, "unverified_email", "email")
        user = await tx.users.get(existing.id, for_update=True) or existing
        _check_usable(core, user)
        await tx.identities.create(_identity_row(identity, user.id))
        claimed = not user.email_verified
        if claimed:
            await _claim_unverified_account(core, tx, ctx, user, identity)
        _refresh_profile(user, identity)
        await tx.users.save(user)
        await audit.record(
            tx, Event.IDENTITY_LINKED, ctx, user.id, provider=IDENTITY_PROVIDER, auth_provider=identity.provider,
            claimed_unverified=claimed or None,
        )
        return user, False, True
    user = new_user(
        core,
        "",
        email=identity.email,
        email_verified=identity.email_verified,
        full_name=identity.name,
        avatar_url=identity.picture,
        locale=language,
        auth_provider=identity.provider,
        onboarding=Onboarding.PENDING_PHONE_VERIFICATION.value,
        roles=[Role.USER.value],
        created_by=f"{IDENTITY_PROVIDER}:{identity.provider.lower()}",
    )
    await insert_with_free_username(tx, user, username_seed(identity))
    await tx.identities.create(_identity_row(identity, user.id))
    await audit.record(tx, Event.USER_CREATED, ctx, user.id, method=IDENTITY_PROVIDER, provider=identity.provider)
    return user, True, False


async def _claim_unverified_account(
    core: Core, tx: Tx, ctx: RequestContext, user: User, identity: FederatedIdentity
) -> None:
    """The provider proved the email; the account had never proved it: as Firebase does when a
    trusted provider signs in to an unverified email/password account, the account goes to the
    owner of the email (core/flows/ownership.claim: password, PIN, phone, other identities and
    sessions removed). Runs inside the sign-in's transaction, before its own session is started."""
    await ownership.claim(
        core, tx, ctx, user, "email", keep_identity=(IDENTITY_PROVIDER, identity.subject),
        method=IDENTITY_PROVIDER, provider=identity.provider,
    )


def username_seed(identity: FederatedIdentity) -> str:
    """What the new user's username is derived from: the email's local part with only its letters
    and digits, as seed 004 shows (john.doe@gmail.com → ``johndoe``); else the name, else "user"."""
    if identity.email:
        local = unicodedata.normalize("NFKC", identity.email.split("@", 1)[0])
        letters = "".join(ch for ch in local if ch.isalnum())
        if letters:
            return letters
    return identity.name or "user"


def _identity_row(identity: FederatedIdentity, user_id: int) -> ExternalIdentity:
    return ExternalIdentity(
        provider=IDENTITY_PROVIDER,
        subject=identity.subject,
        user_id=user_id,
        email=identity.email,
        created_at=datetime.now(UTC),
    )


def _proves_email(user: User, identity: FederatedIdentity) -> bool:
    return bool(identity.email_verified and user.email and identity.email == user.email.lower())


def _refresh_profile(user: User, identity: FederatedIdentity) -> None:
    """Fill what the account lacks from the provider; never overwrite what the user chose."""
    if _proves_email(user, identity):
        user.email_verified = True
    if not user.full_name and identity.name:
        user.full_name = identity.name
    if not user.avatar_url and identity.picture:
        user.avatar_url = identity.picture
    user.updated_at = datetime.now(UTC)


def _check_usable(core: Core, user: User) -> None:
    if not user.is_active:
        raise _Refused(ErrorCode.ACCOUNT_INACTIVE, user.id, "inactive")
    if lock_active(core, user, datetime.now(UTC)):
        raise _Refused(ErrorCode.ACCOUNT_LOCKED, user.id, "locked")


async def refresh_tokens(core: Core, ctx: RequestContext, refresh_token: str) -> tuple[User, Issued]:
    """Exchange a refresh token (core.sessions.refresh); wrong tokens count against the IP's budget."""
    budget = core.guard.budget("failed_login_ip", ctx.ip or "", core.settings.limit_failed_login)
    await budget.check()
    try:
        return await core.sessions.refresh(refresh_token, ctx)
    except AuthError as exc:
        if exc.code is ErrorCode.REFRESH_INVALID:
            await budget.fail()
        raise
