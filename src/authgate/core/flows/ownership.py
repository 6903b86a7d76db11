"""Who owns an account whose address was never proven (pre-account takeover).

Anyone can open an account with someone else's email or phone and a password of their own, then
wait: when the owner of the address later signs in by a code sent to it (or by a provider that
proved it), they would land in an account whose password, PIN, other address and sessions are
still the stranger's. So when an address is proven to a caller who is *not* already signed in to
the account, and the account had not proven it before, the proof wins: ``claim`` removes the
password, the PIN, the other address and every linked identity but the one that proved it, revokes
every session, and marks the address verified. The owner sets a password again through the usual
reset. Callers decide when the proof is one (core/flows/federated.py: a provider's verified email;
core/flows/otp_natures.py and ui_codes.py: a login or reset code to a self-opened account that
never proved any address); this module is only what the claim does, once, inside the caller's
transaction and before the caller's own session is started.

Not claims: a code confirmed from inside a session (the session's holder proves the address is
theirs) and a verification link (its whole purpose is the sign-up's own confirmation; the email
says to ignore it if you did not sign up). docs/security.md lists both.
"""

from __future__ import annotations

from typing import Any, Literal

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.model import RequestContext, User
from authgate.core.ports import Tx
from authgate.core.service import Core

Address = Literal["email", "phone"]


def never_proven(user: User) -> bool:
    """True while nobody is known to hold the account: no address of it has been proven, and it
    was opened by a sign-up (``created_by`` empty, or a provider's ``firebase:…``), not by an
    operator (a sync client or the CLI), who vouches for the account they set up."""
    if user.email_verified or user.phone_verified:
        return False
    return not user.created_by or user.created_by.startswith("firebase:")


async def claim(
    core: Core,
    tx: Tx,
    ctx: RequestContext,
    user: User,
    proved: Address,
    *,
    keep_identity: tuple[str, str] | None = None,
    **details: Any,
) -> list[str]:
    """Hand ``user`` to whoever just proved its ``proved`` address; return what was removed.

    ``keep_identity`` (provider, subject) is the linked identity that made the proof, if any; every
    other one goes, since it would sign straight back in. ``details`` go into the audit event."""
    other = "phone" if proved == "email" else "email"
    held = (("password", user.password_hash), ("pin", user.pin_hash), (other, getattr(user, other)))
    removed = [name for name, value in held if value]
    user.password_hash = None
    user.pin_hash, user.pin_failures = None, 0
    # The other address too: its holder could have verified it, and would get back in with a code
    # or a reset through it.
    if proved == "email":
        user.phone, user.phone_verified = None, False
        user.email_verified = True
    else:
        user.email, user.email_verified = None, False
        user.phone_verified = True
    provider, subject = keep_identity or ("", "")  # ("", "") keeps none: no row has an empty provider
    if await tx.identities.unlink_others(user.id, provider, subject):
        removed.append("identities")
    reason = f"{proved}_claimed"
    revoked = await core.sessions.revoke_user(tx, user.id, reason)
    event = Event.EMAIL_VERIFIED if proved == "email" else Event.PHONE_VERIFIED
    await audit.record(tx, event, ctx, user.id, **details, credentials_removed=removed or None)
    if "password" in removed:
        await audit.record(tx, Event.PASSWORD_RESET, ctx, user.id, reason=reason, removed=True)
    if revoked:
        await audit.record(tx, Event.SESSION_REVOKED, ctx, user.id, count=len(revoked), reason=reason)
    return removed
