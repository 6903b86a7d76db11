"""Sending and checking OTP codes, shared by the app, form and Firebase surfaces.

Limits (CONTRACT §1), all counted by ``count_send``: one send a minute per address and purpose,
ten an hour per address, and ``AUTHGATE_LIMIT_OTP_SEND_IP`` (30 an hour) per client IP, so one IP
cannot message address after address. The identifier a limit counts is the address messaged (the
mailbox or phone a code or link goes to), whichever surface, flow or spelling of the account sent
it, so one person receives at most ten an hour from authgate as a whole; a pretended send (an
unknown account, which must cost the same) counts the address or username it was asked for.
Verification links (core/flows/verification.py) count through the same function. A code whose
message could not be sent is burnt before the error reaches the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.messages import otp_text
from authgate.core.model import OneTimeSecret, RequestContext, User
from authgate.core.service import Core


def normalise_code(
    core: Core, otp: object, field: str = "otp", *, min_text_digits: int = 1, refusal: str | None = None
) -> str:
    """An OTP as a client sent it: an integer (seed 001; its leading zeros lost, restored here) or
    a string of ASCII digits (seeds 003 and 004, at least ``min_text_digits`` of them). JSON
    ``true`` is not 1. Anything else is 422 naming ``field``, worded ``refusal`` where a surface
    documents its own wording."""
    if isinstance(otp, int) and not isinstance(otp, bool):
        if not 0 <= otp < 10**8:
            raise invalid(field, refusal or "must be an integer of at most 8 digits")
        return str(otp).zfill(core.otp.length)
    if isinstance(otp, str):
        text = otp.strip()
        if text.isascii() and text.isdigit() and min_text_digits <= len(text) <= 8:
            return text.zfill(core.otp.length)
    raise invalid(field, refusal or "must be an integer")


SEND_IP_RULE = "otp_send_ip"  # every send (code or link) per client IP
FAILED_CODE_RULE = "failed_otp_ip"  # wrong codes per client IP, whichever surface checks them


async def count_send(core: Core, ctx: RequestContext, purpose: str, *addresses: str) -> None:
    """Count one send to ``addresses`` (or a send pretended for an unknown account, which must
    cost the same) against every send limit; 429 with Retry-After when one is used up. The IP is
    counted first, so an IP over its budget cannot use up other people's per-address budgets."""
    s = core.settings
    await core.guard.hit(SEND_IP_RULE, ctx.ip or "", s.limit_otp_send_ip)
    for address in addresses:
        await core.guard.hit("otp_send", f"{purpose}:{address}", s.limit_otp_send_purpose)
        await core.guard.hit("otp_send_hourly", address, s.limit_otp_send_hourly)


async def pretend_send(core: Core, ctx: RequestContext, purpose: str, key: str, *channels: str) -> None:
    """A send for an unknown account (or one with nowhere to send to): counted as a real one, and
    answered after about as long as a real send through ``channels`` takes, so neither the limits
    nor the timing tell it apart. Nothing is sent."""
    await count_send(core, ctx, purpose, key)
    await core.messenger.pause_like(*channels)


async def send_failed(core: Core, purpose: str, *addresses: str) -> None:
    """A send that never left (every provider try failed): the one-a-minute wait for these
    addresses and purpose is lifted, so the caller can retry at once (nothing was half-done, so
    nothing is held against it); the hourly and per-IP counts keep it, as they bound how often
    anyone tries."""
    for address in addresses:
        await core.guard.clear("otp_send", f"{purpose}:{address}", core.settings.limit_otp_send_purpose)


@dataclass(frozen=True)
class Destination:
    channel: str  # "email" or "sms"
    address: str


async def send_code(
    core: Core,
    ctx: RequestContext,
    *,
    purpose: str,
    identifier: str,
    destinations: list[Destination],
    user_id: int | None = None,
    bound_to: str | None = None,
) -> OneTimeSecret:
    """Issue one code for ``purpose``/``identifier`` and send it to every destination
    (``bound_to``: see core/otp.py ``issue``)."""
    if not destinations:
        raise AuthError(ErrorCode.NO_CHANNEL)
    addresses = [d.address for d in destinations]
    await count_send(core, ctx, purpose, *addresses)
    channel = "+".join(d.channel for d in destinations)
    async with core.store.transaction() as tx:
        row, code = await core.otp.issue(
            tx, purpose, identifier, user_id=user_id, channel=channel, bound_to=bound_to
        )
    subject, text = otp_text(ctx.locale, code, max(1, core.otp.ttl // 60))
    try:
        for dest in destinations:
            if dest.channel == "email":
                await core.messenger.email(dest.address, subject, text)
            else:
                await core.messenger.sms(dest.address, text)
    except AuthError:
        await core.otp.burn(row.id)
        await send_failed(core, purpose, *addresses)
        raise
    async with core.store.transaction() as tx:
        await audit.record(tx, Event.OTP_SENT, ctx, user_id, purpose=purpose, channel=channel)
    return row


async def check_code(
    core: Core,
    ctx: RequestContext,
    *,
    secret_id: str,
    code: str,
    purpose: str,
    identifier: str | None = None,
    user_id: int | None = None,
    bound_to: str | None = None,
) -> OneTimeSecret:
    """Consume the code; a wrong one is audited as ``otp.failed`` against ``user_id``, the account
    the code was sent for (CONTRACT §1: every OTP failure is logged with its user), and counted
    per client IP against a budget the size of the failed-login one (every endpoint that checks a
    secret is limited per IP), on top of the 5 tries per code; past it, 429 before the code is
    looked at."""
    budget = core.guard.budget(FAILED_CODE_RULE, ctx.ip or "", core.settings.limit_failed_login)
    async with budget.attempt() as attempt:  # charged up front: see Budget.attempt
        try:
            row = await core.otp.consume(
                secret_id, code, purpose=purpose, identifier=identifier, bound_to=bound_to
            )
        except AuthError as exc:
            if exc.code is ErrorCode.OTP_INVALID:
                attempt.fail()
                async with core.store.transaction() as tx:
                    await audit.record(tx, Event.OTP_FAILED, ctx, user_id, purpose=purpose)
            raise
    async with core.store.transaction() as tx:
        await audit.record(tx, Event.OTP_VERIFIED, ctx, row.user_id, purpose=purpose)
    return row


CHANNEL_PURPOSE = "verify_channel"


def channel_configured(core: Core, channels: str) -> bool:
    email = channels in ("email", "both") and core.messenger.has_email
    sms = channels in ("sms", "both") and core.messenger.has_sms
    return bool(email or sms)


_ANY_PHONE = "+0"  # stands for "the account has a phone" where only the channels are wanted


def channel_destinations(core: Core, email: str | None, phone: str | None, channels: str) -> list[Destination]:
    """Where an account's verification code goes: email, SMS or both, as configured and possible."""
    out = []
    if channels in ("email", "both") and email and core.messenger.has_email:
        out.append(Destination("email", email))
    if channels in ("sms", "both") and phone and core.messenger.has_sms:
        out.append(Destination("sms", phone))
    return out


async def send_channel_code(core: Core, ctx: RequestContext, user: User, channels: str) -> None:
    """Send one code to the account's email and/or phone, to prove it owns them."""
    destinations = channel_destinations(core, user.email, user.phone, channels)
    await send_code(
        core,
        ctx,
        purpose=CHANNEL_PURPOSE,
        identifier=f"user:{user.id}",
        destinations=destinations,
        user_id=user.id,
    )


async def send_channel_code_to(core: Core, ctx: RequestContext, email: str, channels: str) -> None:
    """Send a channel code to the account of ``email``. An unknown email gets the same answer and
    the same rate limit, and nothing is sent, so the endpoint does not reveal who has an account;
    so does an account with nowhere to send to (AUTHGATE_FORM_OTP_CHANNELS=sms and no phone).

    The pretended send is counted against the email asked for, as a real one is (with the phone
    too when the code also goes there), so an unknown email runs out of sends as an account's does."""
    if not channel_configured(core, channels):
        raise AuthError(ErrorCode.NO_CHANNEL)
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email(email)
    if user is None or not channel_destinations(core, user.email, user.phone, channels):
        # As long as a send to an account with both an email and a phone would take.
        likely = channel_destinations(core, email, phone=_ANY_PHONE, channels=channels)
        await pretend_send(core, ctx, CHANNEL_PURPOSE, email, *(d.channel for d in likely))
        return
    await send_channel_code(core, ctx, user, channels)


async def confirm_channel(core: Core, ctx: RequestContext, user_id: int, code: str, channel: str) -> User:
    """Check the latest channel code and mark ``channel`` ("email" or "phone") verified."""
    identifier = f"user:{user_id}"
    async with core.store.transaction(write=False) as tx:
        row = await tx.secrets.get_active(CHANNEL_PURPOSE, identifier)
    if row is None:
        raise AuthError(ErrorCode.OTP_INVALID)
    # A code proves only the channel it was sent through: an emailed code cannot verify the phone.
    sent_through = (row.channel or "").split("+")
    if ("email" if channel == "email" else "sms") not in sent_through:
        raise AuthError(ErrorCode.OTP_INVALID)
    await check_code(
        core,
        ctx,
        secret_id=row.id,
        code=code,
        purpose=CHANNEL_PURPOSE,
        identifier=identifier,
        user_id=user_id,
    )
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if channel == "email":
            if not user.email:
                raise AuthError(ErrorCode.INVALID_FIELD, field="user.verification-status", detail="no email")
            user.email_verified = True
            event = Event.EMAIL_VERIFIED
        else:
            if not user.phone:
                raise AuthError(ErrorCode.INVALID_FIELD, field="user.verification-status", detail="no phone")
            user.phone_verified = True
            event = Event.PHONE_VERIFIED
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)
        await audit.record(tx, event, ctx, user.id, method="otp")
    return user
