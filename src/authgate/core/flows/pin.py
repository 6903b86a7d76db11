"""PINs (CONTRACT §4): 4–6 digits, hashed like passwords, locked after ``pin_max_tries`` wrong ones.

A try is reserved (the counter raised) before the PIN is checked and given back on success, so
parallel guesses cannot slip past the limit. The attempt that uses up the last try answers 423 at
once; from then on every attempt answers 423, right or wrong, until the PIN is set again.

Wrong PINs are also counted per client IP (CONTRACT §1: every endpoint that checks a secret),
against a budget the size of the failed-login one (100 an hour) under a rule of their own, as wrong
OTP codes are: the per-account lock alone lets one IP try 5 PINs on every account it holds a token
for. An IP that has used it up gets 429 before the PIN is looked at.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from authgate.core import audit
from authgate.core.audit import Event
from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.guard import Attempt
from authgate.core.model import RequestContext
from authgate.core.service import Core

PIN_RE = re.compile(r"^[0-9]{4,6}$")
FAILED_PIN_RULE = "failed_pin_ip"  # wrong PINs, per IP


def check_pin_shape(pin: str, field: str = "pin") -> None:
    if not PIN_RE.fullmatch(pin):
        raise invalid(field, "must be 4-6 digits")


async def set_pin(core: Core, ctx: RequestContext, user_id: int, pin: str, *, field: str = "pin") -> None:
    """Set or replace the PIN; this also lifts a PIN lock."""
    check_pin_shape(pin, field)
    digest = await core.hasher.hash(pin, gone=ctx.gone)
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        user.pin_hash = digest
        user.pin_failures = 0
        user.updated_at = datetime.now(UTC)
        await tx.users.save(user)
        await audit.record(tx, Event.PIN_SET, ctx, user.id)


async def verify_pin(core: Core, ctx: RequestContext, user_id: int, pin: str, *, field: str = "pin") -> None:
    """Succeed or raise ``pin_invalid`` (401), ``pin_locked`` (423) or ``pin_not_set`` (409)."""
    check_pin_shape(pin, field)
    budget = core.guard.budget(FAILED_PIN_RULE, ctx.ip or "", core.settings.limit_failed_login)
    async with budget.attempt() as attempt:  # charged before the hash: see Budget.attempt
        await _verify_pin(core, ctx, user_id, pin, attempt)


async def _verify_pin(core: Core, ctx: RequestContext, user_id: int, pin: str, attempt: Attempt) -> None:
    limit = max(1, core.settings.pin_max_tries)
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if user.pin_hash is None:
            raise AuthError(ErrorCode.PIN_NOT_SET)
        if user.pin_failures >= limit:
            raise AuthError(ErrorCode.PIN_LOCKED)
        user.pin_failures += 1  # reserved; given back below when the PIN is right
        await tx.users.save(user)
        stored = user.pin_hash
    ok, rehash = await core.hasher.verify(stored, pin)
    new_hash = await core.hasher.hash(pin) if ok and rehash else None
    async with core.store.transaction() as tx:
        user = await tx.users.get(user_id, for_update=True)
        if user is None:
            raise AuthError(ErrorCode.TOKEN_INVALID)
        if ok and user.pin_hash == stored:  # not replaced while it was being checked
            user.pin_failures = 0
            if new_hash:
                user.pin_hash = new_hash
            await tx.users.save(user)
            return
        failures = user.pin_failures
        await audit.record(tx, Event.PIN_FAILED, ctx, user.id, failures=failures)
    if not ok:
        attempt.fail()
    raise AuthError(ErrorCode.PIN_LOCKED if failures >= limit else ErrorCode.PIN_INVALID)
