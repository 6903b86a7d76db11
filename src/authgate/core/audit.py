"""The audit log: every security event with user, IP, user agent and time; never a secret."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import structlog

from authgate.core.model import AuditEvent, RequestContext
from authgate.core.ports import Tx

log = structlog.get_logger("authgate.audit")


class Event(StrEnum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    OTP_SENT = "otp.sent"
    OTP_VERIFIED = "otp.verified"
    OTP_FAILED = "otp.failed"
    PASSWORD_SET = "password.set"
    PASSWORD_RESET = "password.reset"
    ACCOUNT_LOCKED = "account.locked"
    ACCOUNT_UNLOCKED = "account.unlocked"
    SESSION_REVOKED = "session.revoked"
    USER_CREATED = "user.created"
    USER_SYNCED = "user.synced"
    USER_UPDATED = "user.updated"
    USER_DELETED = "user.deleted"
    EMAIL_VERIFIED = "email.verified"
    PHONE_VERIFIED = "phone.verified"
    PIN_SET = "pin.set"
    PIN_FAILED = "pin.failed"
    TOKEN_REFRESHED = "token.refreshed"
    REFRESH_REUSED = "refresh.reused"
    IDENTITY_LINKED = "identity.linked"
    CUSTOMER_LINKED = "customer.linked"
    BILLING_EVENT_IGNORED = "billing.event_ignored"  # a stale Stripe event: seen, nothing changed


async def record(
    tx: Tx,
    event: Event,
    ctx: RequestContext | None,
    user_id: int | None = None,
    actor: str | None = None,
    **detail: object,
) -> None:
    """Write one audit event inside ``tx`` (so it commits with the change it describes)."""
    await tx.audit.add(
        AuditEvent(
            type=event.value,
            at=datetime.now(UTC),
            user_id=user_id,
            ip=ctx.ip if ctx else None,
            user_agent=((ctx.user_agent or "")[:255] or None) if ctx else None,
            actor=actor,
            detail={k: v for k, v in detail.items() if v is not None} or None,
        )
    )
    log.info("audit", audit_event=event.value, user_id=user_id, ip=ctx.ip if ctx else None, **detail)
