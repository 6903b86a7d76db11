"""Signed JWTs with rotating Ed25519 keys kept in the database, so every node agrees.

RFC 8725 §3.1: the algorithm is pinned (EdDSA only: no ``none``, no HS/RS confusion); ``iss``,
``aud``, ``exp`` are checked with at most 30 s leeway; every token carries its own ``typ`` and
one kind is never accepted where another is expected (§3.11).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from authgate.core import ids
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.model import SigningKey, TokenType
from authgate.core.ports import Store

ALGORITHM = "EdDSA"
RETIRED_KEY_GRACE = timedelta(days=31)  # outlives the longest token a retired key signed


@dataclass
class LoadedKey:
    kid: str
    private: Ed25519PrivateKey | None
    public: Ed25519PublicKey
    created_at: datetime
    active: bool


@dataclass
class Claims:
    sub: str
    typ: str
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def user_id(self) -> int | None:
        return int(self.sub) if self.sub.isdigit() else None

    @property
    def sid(self) -> str | None:
        value = self.raw.get("sid")
        return str(value) if value else None


class KeyRing:
    """Loads signing keys from the store; signs with the newest active key, verifies with any."""

    def __init__(self, store: Store, secret: bytes, refresh_seconds: float = 30.0) -> None:
        self._store = store
        self._aead = AESGCM(hashlib.sha256(b"authgate-keys\x00" + secret).digest())
        self._keys: dict[str, LoadedKey] = {}
        self._signing: LoadedKey | None = None
        self._loaded_at = 0.0
        self._refresh = refresh_seconds
        self._lock = asyncio.Lock()
        self._last_miss_reload = 0.0

    def _seal(self, pem: bytes) -> bytes:
        nonce = os.urandom(12)
        return b"v1:" + base64.b64encode(nonce + self._aead.encrypt(nonce, pem, b"authgate-key"))

    def _open(self, blob: bytes) -> bytes:
        if not blob.startswith(b"v1:"):
            return blob
        raw = base64.b64decode(blob[3:])
        return self._aead.decrypt(raw[:12], raw[12:], b"authgate-key")

    async def load(self) -> None:
        async with self._store.transaction(write=False) as tx:
            rows = await tx.keys.all()
        keys: dict[str, LoadedKey] = {}
        now = datetime.now(UTC)
        for row in rows:
            if row.retired_at and now - row.retired_at > RETIRED_KEY_GRACE:
                continue
            public = serialization.load_pem_public_key(row.public_pem)
            assert isinstance(public, Ed25519PublicKey)
            private = None
            if row.active:
                loaded = serialization.load_pem_private_key(self._open(row.private_pem), None)
                assert isinstance(loaded, Ed25519PrivateKey)
                private = loaded
            keys[row.kid] = LoadedKey(row.kid, private, public, row.created_at, row.active)
        self._keys = keys
        active = [k for k in keys.values() if k.active and k.private]
        self._signing = max(active, key=lambda k: k.created_at) if active else None
        self._loaded_at = time.monotonic()

    async def ensure(self) -> None:
        """Load keys, creating the first one when the database has none."""
        await self.load()
        if self._signing is None:
            await self.rotate()

    async def rotate(self) -> str:
        """Add a new active key; older keys stop signing but keep verifying their tokens."""
        private = Ed25519PrivateKey.generate()
        now = datetime.now(UTC)
        kid = now.strftime("%Y%m%d%H%M%S") + "-" + ids.token(6)
        key = SigningKey(
            kid=kid,
            algorithm=ALGORITHM,
            private_pem=self._seal(
                private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            ),
            public_pem=private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
            created_at=now,
            active=True,
        )
        async with self._store.transaction() as tx:
            await tx.keys.add(key)
            await tx.keys.deactivate_others(kid, now)
        await self.load()
        return kid

    async def _maybe_refresh(self) -> None:
        if time.monotonic() - self._loaded_at > self._refresh:
            async with self._lock:
                if time.monotonic() - self._loaded_at > self._refresh:
                    await self.load()

    async def signing_key(self) -> LoadedKey:
        await self._maybe_refresh()
        if self._signing is None:
            await self.ensure()
        assert self._signing is not None
        return self._signing

    async def public_key(self, kid: str) -> Ed25519PublicKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._last_miss_reload > 1.0:
            # A key rotated on another node: reload at most once a second on unknown kids.
            self._last_miss_reload = time.monotonic()
            await self.load()
            key = self._keys.get(kid)
        return key.public if key else None

    def jwks(self) -> dict[str, Any]:
        out = []
        for key in sorted(self._keys.values(), key=lambda k: k.created_at, reverse=True):
            raw = key.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            out.append(
                {
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": ALGORITHM,
                    "use": "sig",
                    "kid": key.kid,
                    "x": base64.urlsafe_b64encode(raw).rstrip(b"=").decode(),
                }
            )
        return {"keys": out}


class TokenService:
    def __init__(self, keys: KeyRing, issuer: str, audience: str, leeway: int = 30) -> None:
        self.keys = keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = min(leeway, 30)
        # Verified tokens, so a hot token's signature is checked once, not on every request.
        # A token is immutable: only its expiry (re-checked on every hit) can change the answer.
        self._verified: OrderedDict[str, Claims] = OrderedDict()
        self._verified_max = 20_000

    async def sign(self, typ: TokenType, sub: str, ttl: int, **claims: Any) -> tuple[str, int]:
        """A signed token of kind ``typ``; returns (token, exp)."""
        key = await self.keys.signing_key()
        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": sub,
            "typ": typ.value,
            "jti": ids.short_id(),
            "iat": now,
            "exp": now + ttl,
        }
        payload.update({k: v for k, v in claims.items() if v is not None})
        assert key.private is not None
        token = jwt.encode(
            payload, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": typ.value}
        )
        return token, payload["exp"]

    async def verify(self, token: str, expected: TokenType | tuple[TokenType, ...]) -> Claims:
        """Verify signature, issuer, audience, expiry and kind; raise AuthError otherwise."""
        kinds = (expected,) if isinstance(expected, TokenType) else expected
        bad = ErrorCode.TOKEN_INVALID
        if kinds and kinds[0] is TokenType.OTP:
            bad = ErrorCode.OTP_TOKEN_INVALID
        cached = self._verified.get(token)
        if cached is not None:
            if cached.raw["exp"] + self.leeway < time.time():
                self._verified.pop(token, None)
                raise AuthError(ErrorCode.TOKEN_EXPIRED if bad is ErrorCode.TOKEN_INVALID else bad)
            if cached.typ not in {k.value for k in kinds}:
                raise AuthError(bad)
            return cached
        if not token or len(token) > 4096:
            raise AuthError(bad)
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError(bad) from None
        if header.get("alg") != ALGORITHM or not isinstance(header.get("kid"), str):
            raise AuthError(bad)
        public = await self.keys.public_key(header["kid"])
        if public is None:
            raise AuthError(bad)
        try:
            payload = jwt.decode(
                token,
                public,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub", "typ"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(
                ErrorCode.TOKEN_EXPIRED if bad is ErrorCode.TOKEN_INVALID else bad
            ) from None
        except jwt.PyJWTError:
            raise AuthError(bad) from None
        if payload.get("typ") not in {k.value for k in kinds} or header.get("typ") != payload["typ"]:
            raise AuthError(bad)
        claims = Claims(sub=str(payload["sub"]), typ=str(payload["typ"]), raw=payload)
        if claims.typ in (TokenType.ACCESS.value, TokenType.APP.value):
            self._verified[token] = claims
            if len(self._verified) > self._verified_max:
                self._verified.popitem(last=False)
        return claims
