"""Email verification links (form surface, hosted pages) and the redirect allowlist.

A redirect URL is followed only when its origin is in AUTHGATE_REDIRECT_ALLOWLIST, checked both
when the link is sent and when it is opened: no open redirect.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlencode, urlsplit

from authgate.core import audit, ids
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows import codes
from authgate.core.messages import link_text
from authgate.core.model import RequestContext, User
from authgate.core.service import Core

PURPOSE = "verify_email"
# "<secret id>.<secret>", both URL-safe base64: anything else (a NUL, which PostgreSQL refuses even
# in a lookup, or any other byte) is an invalid link, never a database error.
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (the default port left out, as browsers write an
    origin), or None for anything else: another scheme, no host, a user:password@, a bad port."""
    try:
        parts = urlsplit(url.strip())
        number = parts.port  # raises for a port that is not a number in range
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    port = f":{number}" if number and number != _DEFAULT_PORTS[parts.scheme] else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{port}"


def check_redirect(core: Core, url: str | None) -> str | None:
    """The redirect URL if its origin is allowed; None when absent; 400 otherwise."""
    if url is None or url == "":
        return None
    origin = origin_of(url)
    allowed = {origin_of(item) for item in core.settings.redirect_allowlist}
    if origin is None or origin not in allowed or any(ch in url for ch in "\r\n\\"):
        raise AuthError(ErrorCode.REDIRECT_NOT_ALLOWED, field="redirect-url")
    return url


async def send_link(
    core: Core, ctx: RequestContext, user: User, verify_path: str, redirect_url: str | None
) -> None:
    redirect = check_redirect(core, redirect_url)
    if not user.email:
        raise AuthError(ErrorCode.NO_CHANNEL, detail="email")
    await codes.count_send(core, ctx, PURPOSE, user.email)
    async with core.store.transaction() as tx:
        secret = ids.token(24)
        row, _ = await core.otp.issue(
            tx,
            PURPOSE,
            user.email,
            user_id=user.id,
            channel="email",
            ttl=core.settings.verification_ttl,
            code=secret,
        )
    query = {"token": f"{row.id}.{secret}"}
    if redirect:
        query["redirect-url"] = redirect
    link = f"{core.settings.public_url.rstrip('/')}{verify_path}?{urlencode(query)}"
    subject, text = link_text(ctx.locale, link, core.settings.verification_ttl)
    try:
        await core.messenger.email(user.email, subject, text)
    except AuthError:
        await core.otp.burn(row.id)
        await codes.send_failed(core, PURPOSE, user.email)
        raise


async def send_link_to(
    core: Core, ctx: RequestContext, email: str, verify_path: str, redirect_url: str | None
) -> None:
    """Send a verification link to the account of ``email``; an unknown email is answered the same
    (same rate limit, nothing sent), so the endpoint does not reveal who has an account."""
    check_redirect(core, redirect_url)
    if not core.messenger.has_email:
        raise AuthError(ErrorCode.NO_CHANNEL)
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email(email)
    if user is None:
        await codes.pretend_send(core, ctx, PURPOSE, email, "email")
        return
    await send_link(core, ctx, user, verify_path, redirect_url)


async def open_link(core: Core, ctx: RequestContext, token: str, redirect_url: str | None) -> str | None:
    """Use a verification token: mark the email verified; return where to redirect, if anywhere.

    A bad token counts against the client IP's budget of wrong codes (CONTRACT §1: every
    endpoint that checks a secret is limited per IP), as a wrong OTP does (codes.check_code)."""
    redirect = check_redirect(core, redirect_url)
    if len(token) > 200 or not _TOKEN_SHAPE.fullmatch(token):
        budget = core.guard.budget(codes.FAILED_CODE_RULE, ctx.ip or "", core.settings.limit_failed_login)
        await budget.check()
        await budget.fail()
        raise AuthError(ErrorCode.VERIFICATION_INVALID)
    secret_id, secret = token.split(".")
    try:
        row = await codes.check_code(core, ctx, secret_id=secret_id, code=secret, purpose=PURPOSE)
    except AuthError as exc:
        if exc.code is ErrorCode.OTP_INVALID:
            raise AuthError(ErrorCode.VERIFICATION_INVALID) from None
        raise
    async with core.store.transaction() as tx:
        user = await tx.users.get(row.user_id or 0, for_update=True)
        if user is None or (user.email or "") != row.identifier:
            raise AuthError(ErrorCode.VERIFICATION_INVALID)
        user.email_verified = True
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)
        await audit.record(tx, Event.EMAIL_VERIFIED, ctx, user.id, method="link")
    return redirect
