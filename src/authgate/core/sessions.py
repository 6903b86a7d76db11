"""Sessions: opaque refresh tokens (hashed at rest), access JWTs bound to a session, revocation.

An access token is accepted only while its session is live. Each node keeps a session's status
for ``revocation_cache_seconds`` (0.5 s by default) before asking the database again, so a
revocation made on any node holds everywhere within one second at the cost of at most one lookup
per session per interval; a revocation made on this node holds at once (docs/architecture.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from authgate.core import audit, ids
from authgate.core.audit import Event
from authgate.core.crypto import Keyed, sha256_hex
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flight import SingleFlight
from authgate.core.model import Role, Session, SessionScope, TokenType, User
from authgate.core.model import RequestContext as Ctx
from authgate.core.ports import Store, Tx
from authgate.core.tokens import Claims, TokenService

if TYPE_CHECKING:
    from authgate.core.service import Core


def lock_in_force(user: User, now: datetime, lockout_minutes: int) -> bool:
    """Whether ``user``'s lockout still holds at ``now``. A lock lasts ``lockout_minutes`` from
    ``locked_at``; a lock without a time (set by hand) holds until it is lifted."""
    if not user.is_locked:
        return False
    if user.locked_at is None:
        return True
    return now < user.locked_at + timedelta(minutes=lockout_minutes)


def account_usable(user: User, now: datetime, lockout_minutes: int) -> bool:
    """Whether ``user``'s sessions and tokens still work: not deactivated, and not locked while the
    lockout lasts. One rule for cookie sessions, refreshes and every surface's access tokens."""
    return user.is_active and not lock_in_force(user, now, lockout_minutes)


def lock_active(core: Core, user: User, now: datetime) -> bool:
    """``lock_in_force`` with the configured lockout (AUTHGATE_LOCKOUT_MINUTES)."""
    return lock_in_force(user, now, core.settings.lockout_minutes)


@dataclass
class Principal:
    """Who is calling: a user session, or a client app (``client_id``) with no user."""

    typ: str
    user_id: int | None = None
    session_id: str | None = None
    username: str | None = None
    roles: list[str] = field(default_factory=list)
    client_id: str | None = None
    claims: dict[str, Any] = field(default_factory=dict)

    def has_role_at_least(self, role: Role) -> bool:
        probe = User(id=0, guid="", username="", roles=self.roles)
        return probe.has_role_at_least(role)


@dataclass
class Issued:
    session: Session
    refresh_token: str
    access_token: str
    expires_in: int


class SessionService:
    def __init__(
        self,
        store: Store,
        tokens: TokenService,
        keyed: Keyed,
        *,
        access_ttl: int,
        refresh_ttl: int,
        reset_ttl: int,
        rotation: bool,
        grace_seconds: int,
        cache_seconds: float,
        lockout_minutes: int,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.keyed = keyed
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.reset_ttl = reset_ttl
        self.rotation = rotation
        self.grace = timedelta(seconds=grace_seconds)
        self.cache_seconds = cache_seconds
        self.lockout_minutes = lockout_minutes
        self._status: dict[str, tuple[bool, float]] = {}
        self._flights = SingleFlight()

    # --- issuing ---------------------------------------------------------------------------------
    async def start(
        self,
        tx: Tx,
        user: User,
        ctx: Ctx,
        *,
        scope: SessionScope = SessionScope.FULL,
        device_token: str | None = None,
        device_type: int | None = None,
        device_info: str | None = None,
    ) -> Issued:
        """Create a session inside ``tx`` and mint its first access and refresh tokens."""
        now = datetime.now(UTC)
        refresh = ids.token(32)
        ttl = self.reset_ttl if scope is SessionScope.RESET else self.refresh_ttl
        session = Session(
            id=ids.short_id(),
            user_id=user.id,
            refresh_hash=sha256_hex(refresh),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            scope=scope.value,
            last_used_at=now,
            device_token=device_token,
            device_type=device_type,
            device_info=device_info,
            ip=ctx.ip,
            user_agent=(ctx.user_agent or "")[:255] or None,
            surface=ctx.surface or None,
        )
        await tx.sessions.create(session)
        structlog.contextvars.bind_contextvars(user_id=str(user.id))
        access, expires_in = await self.access_token(user, session)
        return Issued(session, refresh, access, expires_in)

    async def access_token(self, user: User, session: Session) -> tuple[str, int]:
        if session.scope == SessionScope.RESET.value:
            token, _ = await self.tokens.sign(
                TokenType.RESET, str(user.id), self.reset_ttl, sid=session.id, username=user.username
            )
            return token, self.reset_ttl
        token, _ = await self.tokens.sign(
            TokenType.ACCESS,
            str(user.id),
            self.access_ttl,
            sid=session.id,
            username=user.username,
            roles=list(user.roles),
        )
        return token, self.access_ttl

    # --- refresh ---------------------------------------------------------------------------------
    async def refresh(self, refresh_token: str, ctx: Ctx | None = None) -> tuple[User, Issued]:
        """Exchange a refresh token for a new access token (and, with rotation, a new refresh token).

        A locked account is refused only while its lockout lasts (``lock_in_force``); a lock that
        has run out is cleared here, as a password login clears it (audit ``account.unlocked``).

        With rotation, presenting the previous token within the grace window returns the pair
        already minted for it (parallel tabs, retries); after the window it is a replay and the
        whole session is revoked (OAuth 2.0 Security BCP §4.14.2, refresh token reuse detection).
        """
        if not refresh_token or len(refresh_token) > 512:
            raise AuthError(ErrorCode.REFRESH_INVALID)
        digest = sha256_hex(refresh_token)
        now = datetime.now(UTC)
        replay = False
        retired_from: str | None = None
        async with self.store.transaction() as tx:
            # Locked and marked used in one statement; a refusal below rolls the mark back.
            session = await tx.sessions.touch_by_refresh_hash(digest, now)
            if session is None:
                # A token two or more rotations old is no longer on its session's row: a replay
                # all the same, and it revokes the whole session (committed, then refused).
                retired_from = await self._revoke_if_retired(tx, digest, now)
            else:
                if session.scope != SessionScope.FULL.value:
                    raise AuthError(ErrorCode.REFRESH_INVALID)
                if session.revoked_at is not None:
                    raise AuthError(ErrorCode.REFRESH_INVALID)
                if session.expires_at <= now:
                    raise AuthError(ErrorCode.REFRESH_EXPIRED)
                user = await tx.users.get(session.user_id)
                if user is not None and user.is_locked:  # settle the lock under the row's lock
                    user = await tx.users.get(session.user_id, for_update=True)
                if user is None:
                    raise AuthError(ErrorCode.REFRESH_INVALID)
                if not account_usable(user, now, self.lockout_minutes):
                    raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
                if user.is_locked:  # the lockout has run out: lift it, as a password login does
                    user.is_locked, user.locked_at, user.failed_logins = False, None, 0
                    await tx.users.save(user)
                    await audit.record(tx, Event.ACCOUNT_UNLOCKED, ctx, user.id, reason="expired")
                if session.refresh_hash != digest:  # the previous token of a rotated session
                    grace = session.rotated_at is not None and now - session.rotated_at <= self.grace
                    cached = self._grace_pair(session) if grace else None
                    if cached is None:
                        session.revoked_at = now
                        session.revoked_reason = "refresh_reuse"
                        await tx.sessions.save(session)
                        await audit.record(tx, Event.REFRESH_REUSED, None, session.user_id, session=session.id)
                        replay = True
                    else:
                        return user, Issued(session, cached[0], cached[1], self.access_ttl)
                if not replay:
                    new_refresh = refresh_token
                    if self.rotation:
                        new_refresh = ids.token(32)
                        if session.previous_refresh_hash and session.previous_refresh_hash != digest:
                            await tx.sessions.retire_refresh_hash(
                                session.previous_refresh_hash, session.id, session.expires_at
                            )
                        session.previous_refresh_hash = digest
                        session.refresh_hash = sha256_hex(new_refresh)
                        session.rotated_at = now
                    access, expires_in = await self.access_token(user, session)
                    if self.rotation:
                        session.grace_sealed = self.keyed.seal(json.dumps([new_refresh, access]))
                        await tx.sessions.save(session)
                    return user, Issued(session, new_refresh, access, expires_in)

        if session is None:
            if retired_from is not None:
                self.forget(retired_from)
            raise AuthError(ErrorCode.REFRESH_INVALID)
        self.forget(session.id)
        raise AuthError(ErrorCode.REFRESH_INVALID)

    async def _revoke_if_retired(self, tx: Tx, digest: str, now: datetime) -> str | None:
        """The session a rotation retired this token from, now revoked (audit refresh.reused)."""
        session_id = await tx.sessions.session_of_retired(digest)
        if session_id is None:
            return None
        old = await tx.sessions.get(session_id)
        if await tx.sessions.revoke(session_id, "refresh_reuse", now):
            await audit.record(tx, Event.REFRESH_REUSED, None, old.user_id if old else None, session=session_id)
        return session_id

    def _grace_pair(self, session: Session) -> tuple[str, str] | None:
        sealed = session.grace_sealed
        if not sealed:
            return None
        opened = self.keyed.unseal(sealed)
        if opened is None:
            return None
        refresh, access = json.loads(opened)
        return str(refresh), str(access)

    # --- checking --------------------------------------------------------------------------------
    async def authenticate(
        self, token: str | None, expected: TokenType | tuple[TokenType, ...] = TokenType.ACCESS
    ) -> Principal:
        """Verify a Bearer JWT and that its session is still live."""
        if not token:
            raise AuthError(ErrorCode.TOKEN_MISSING)
        claims = await self.tokens.verify(token, expected)
        return await self._principal(claims)

    async def _principal(self, claims: Claims) -> Principal:
        raw = claims.raw
        if claims.typ == TokenType.APP.value:
            return Principal(typ=claims.typ, client_id=claims.sub, roles=[], claims=raw)
        sid = claims.sid
        if not sid or claims.user_id is None or not await self.is_live(sid):
            raise AuthError(ErrorCode.TOKEN_INVALID)
        structlog.contextvars.bind_contextvars(user_id=str(claims.user_id))
        listed = raw.get("roles")
        roles = listed if isinstance(listed, list) else []
        return Principal(
            typ=claims.typ,
            user_id=claims.user_id,
            session_id=sid,
            username=raw.get("username"),
            roles=[str(r) for r in roles],
            claims=raw,
        )

    async def is_live(self, session_id: str) -> bool:
        now = time.monotonic()
        cached = self._status.get(session_id)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        live, _ = await self._flights.load(session_id, lambda: self._look_up(session_id, now))
        return live

    async def _look_up(self, session_id: str, now: float) -> bool:
        async with self.store.transaction(write=False) as tx:
            session = await tx.sessions.get(session_id)
        live = session is not None and session.revoked_at is None and session.expires_at > datetime.now(UTC)
        if len(self._status) > 200_000:
            self._status.clear()
        if self._status.get(session_id, (True, 0.0))[1] <= now:  # a revocation meanwhile wins
            self._status[session_id] = (live, now)
        return live

    def forget(self, session_id: str) -> None:
        self._status[session_id] = (False, time.monotonic())

    async def from_secret(self, secret: str | None) -> tuple[Session, User]:
        """The live session (and its user) behind an opaque session token (the qt-auth cookie).

        The session of an account deactivated, or locked while the lockout lasts, is refused as
        signed out (TOKEN_INVALID), as a refresh is and as the Firebase surface refuses its access
        tokens: a lock must stop the sessions already open, not only new logins."""
        if not secret or len(secret) > 512:
            raise AuthError(ErrorCode.TOKEN_MISSING)
        async with self.store.transaction(write=False) as tx:
            session = await tx.sessions.get_by_refresh_hash(sha256_hex(secret))
            user = await tx.users.get(session.user_id) if session else None
        now = datetime.now(UTC)
        if (
            session is None
            or user is None
            or session.refresh_hash != sha256_hex(secret)
            or session.revoked_at is not None
            or session.expires_at <= now
            or session.scope != SessionScope.FULL.value
            or not account_usable(user, now, self.lockout_minutes)
        ):
            raise AuthError(ErrorCode.TOKEN_INVALID)
        structlog.contextvars.bind_contextvars(user_id=str(user.id))
        return session, user

    # --- revoking --------------------------------------------------------------------------------
    async def revoke(self, tx: Tx, session_id: str, reason: str) -> bool:
        done = await tx.sessions.revoke(session_id, reason, datetime.now(UTC))
        self.forget(session_id)
        return done

    async def revoke_user(
        self, tx: Tx, user_id: int, reason: str, except_id: str | None = None
    ) -> list[str]:
        revoked = await tx.sessions.revoke_user(user_id, reason, datetime.now(UTC), except_id)
        for sid in revoked:
            self.forget(sid)
        return revoked
