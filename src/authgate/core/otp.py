"""One-time secrets: OTP codes and verification-link tokens, stored only as HMACs.

OTPs: 4 digits by default (configurable 4–8), valid 5 minutes, single use, at most 5 wrong tries
each, and at most ``otp_daily_failures`` wrong tries a day per identifier however many codes are
sent (a new send never resets that count).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from authgate.core import ids
from authgate.core.crypto import Keyed
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.guard import Guard
from authgate.core.model import OneTimeSecret
from authgate.core.ports import Store, Tx


class OtpService:
    def __init__(
        self,
        store: Store,
        keyed: Keyed,
        guard: Guard,
        *,
        length: int = 4,
        ttl: int = 300,
        max_tries: int = 5,
        daily_failures: int = 100,
    ) -> None:
        self.store = store
        self.keyed = keyed
        self.guard = guard
        self.length = length
        self.ttl = ttl
        self.max_tries = max_tries
        self.daily_failures = daily_failures

    def _code(self) -> str:
        return "".join(secrets.choice("0123456789") for _ in range(self.length))

    async def issue(
        self,
        tx: Tx,
        purpose: str,
        identifier: str,
        *,
        user_id: int | None = None,
        channel: str | None = None,
        ttl: int | None = None,
        code: str | None = None,
        bound_to: str | None = None,
    ) -> tuple[OneTimeSecret, str]:
        """Create a secret (replacing any earlier one for the same purpose and identifier).

        ``bound_to`` (the address the code is sent to, when ``identifier`` is not that address) is
        mixed into the stored MAC, so the code is only right while the same value is given back
        to ``consume``: a code for an address the account no longer has proves nothing."""
        now = datetime.now(UTC)
        await tx.secrets.invalidate(purpose, identifier, now)
        secret_id = ids.short_id()
        value = code or self._code()
        row = OneTimeSecret(
            id=secret_id,
            purpose=purpose,
            identifier=identifier,
            secret_hash=self._mac(secret_id, value, bound_to),
            expires_at=now + timedelta(seconds=ttl or self.ttl),
            created_at=now,
            user_id=user_id,
            channel=channel,
        )
        await tx.secrets.create(row)
        return row, value

    def _mac(self, secret_id: str, value: str, bound_to: str | None) -> str:
        if bound_to is None:
            return self.keyed.mac("otp", secret_id, value)
        return self.keyed.mac("otp-bound", secret_id, value, bound_to)

    async def burn(self, secret_id: str) -> None:
        """Make a secret unusable (its message could not be sent)."""
        async with self.store.transaction() as tx:
            row = await tx.secrets.get(secret_id, for_update=True)
            if row and row.used_at is None:
                row.used_at = datetime.now(UTC)
                await tx.secrets.save(row)

    async def consume(
        self,
        secret_id: str,
        value: str,
        *,
        purpose: str,
        identifier: str | None = None,
        bound_to: str | None = None,
    ) -> OneTimeSecret:
        """Check ``value`` against the secret and use it up; a wrong value counts a try.

        Every failure is the same ``otp_invalid`` (wrong, used, expired or burnt), so the answer
        says nothing about which.

        The daily cap on wrong tries is the account's (``user:<id>``) when the code was sent for
        one, whatever address or surface it went through (CONTRACT §1: the account's count of
        wrong tries, which a new send does not reset); else the address's, else the code's.
        """
        now = datetime.now(UTC)
        failed = False
        async with self.store.transaction() as tx:
            row = await tx.secrets.get(secret_id, for_update=True)
            owner = f"user:{row.user_id}" if row is not None and row.user_id else None
            daily = self.guard.budget("otp_failures", owner or identifier or secret_id, f"{self.daily_failures}/day")
            await daily.check()
            if (
                row is None
                or row.purpose != purpose
                or (identifier is not None and row.identifier != identifier)
                or row.used_at is not None
                or row.expires_at <= now
                or row.tries >= self.max_tries
            ):
                failed = True
            elif not self.keyed.same(row.secret_hash, self._mac(row.id, value, bound_to)):
                row.tries += 1
                if row.tries >= self.max_tries:
                    row.used_at = now  # burnt: the sixth try cannot succeed
                await tx.secrets.save(row)
                failed = True
            else:
                row.used_at = now
                await tx.secrets.save(row)
        if failed:
            await daily.fail()
            raise AuthError(ErrorCode.OTP_INVALID)
        assert row is not None
        return row
