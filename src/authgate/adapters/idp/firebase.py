"""Firebase ID-token verification, as Google documents it for third-party JWT libraries
(firebase.google.com/docs/auth/admin/verify-id-tokens, "Verify ID tokens using a third-party JWT
library").

Header: ``alg`` is RS256 (nothing else: no ``none``, no HS256 signed with a public key) and ``kid``
names one of the x509 certificates served at the certificate URL (a JSON object kid → PEM).
Payload: ``exp`` in the future, ``iat`` and ``auth_time`` in the past, ``aud`` = the project id,
``iss`` = ``https://securetoken.google.com/<project id>``, ``sub`` a non-empty string (Firebase
uids are at most 128 characters). The signature is checked with the certificate's RSA key.

Certificates are cached for the Cache-Control ``max-age`` of the response that served them. An
unknown ``kid`` refetches them at most once a minute (keys rotate; garbage kids must not turn us
into a proxy that hammers Google). When the certificate server fails, certificates already held
keep working, even past their max-age, and the server is retried at most every ``retry_seconds``;
with nothing held, the caller gets 503 ``service_unavailable``. Every problem with the token itself
is the same 401 ``federated_token_invalid``: the client learns nothing about which check failed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import structlog
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.identifiers import has_control
from authgate.core.model import AuthProvider

log = structlog.get_logger("authgate.idp.firebase")

ALGORITHM = "RS256"
ISSUER_PREFIX = "https://securetoken.google.com/"
MAX_TOKEN_CHARS = 8192  # Firebase ID tokens are ~1 KB; anything far larger is not one
MAX_SUB_CHARS = 128
UNKNOWN_KID_REFETCH_SECONDS = 60.0
DEFAULT_MAX_AGE = 60  # a response without max-age is cached briefly, not refetched per token
MAX_MAX_AGE = 24 * 3600

# firebase.sign_in_provider → our authProvider; any other method (phone, anonymous, custom,
# github.com, ...) is refused (CONTRACT §7).
PROVIDERS: dict[str, AuthProvider] = {
    "google.com": AuthProvider.GOOGLE,
    "apple.com": AuthProvider.APPLE,
    "password": AuthProvider.EMAIL,
}

_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


def invalid_token() -> AuthError:
    return AuthError(ErrorCode.FEDERATED_TOKEN_INVALID)


def max_age_of(cache_control: str | None) -> int:
    """Seconds from a Cache-Control header's max-age (bounded); a default when it has none."""
    match = _MAX_AGE.search(cache_control or "")
    if not match:
        return DEFAULT_MAX_AGE
    return min(int(match.group(1)), MAX_MAX_AGE)


def parse_certificates(payload: Any) -> dict[str, RSAPublicKey]:
    """kid → RSA public key from the certificate document; entries that are not RSA certs are skipped."""
    if not isinstance(payload, dict):
        raise ValueError("certificate document is not a JSON object")
    keys: dict[str, RSAPublicKey] = {}
    for kid, pem in payload.items():
        if not isinstance(kid, str) or not isinstance(pem, str):
            continue
        try:
            public = x509.load_pem_x509_certificate(pem.encode()).public_key()
        except ValueError:
            continue
        if isinstance(public, RSAPublicKey):
            keys[kid] = public
    if not keys:
        raise ValueError("no usable certificate")
    return keys


class FirebaseVerifier:
    """core.ports.IdentityProvider for Firebase Authentication ID tokens."""

    def __init__(
        self,
        project_id: str,
        certs_url: str,
        *,
        timeout: float = 5.0,
        leeway: int = 30,
        retry_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.project_id = project_id
        self.issuer = ISSUER_PREFIX + project_id
        self.certs_url = certs_url
        self.timeout = min(timeout, 10.0)
        self.leeway = max(0, min(leeway, 60))
        self.retry_seconds = retry_seconds
        self._clock = clock
        self._keys: dict[str, RSAPublicKey] | None = None
        self._expires_at = 0.0
        self._retry_at = 0.0  # after a failed fetch, stale keys serve until then
        self._unknown_kid_at = -UNKNOWN_KID_REFETCH_SECONDS
        self._generation = 0  # bumped by every fetch attempt (single flight)
        self._lock = asyncio.Lock()
        self.fetches = 0

    # --- the port --------------------------------------------------------------------------------
    async def verify(self, token: str) -> dict[str, Any]:
        """Verify a Firebase ID token; return the identity it proves.

        Returns ``provider`` (GOOGLE, APPLE or EMAIL), ``subject`` (the Firebase uid), ``email``,
        ``email_verified``, ``name``, ``picture`` and ``sign_in_provider``.
        """
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise invalid_token()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise invalid_token() from None
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str) or not kid:
            raise invalid_token()
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self.project_id,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "aud", "iss", "sub", "auth_time"]},
            )
        except jwt.PyJWTError:
            raise invalid_token() from None
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> dict[str, Any]:
        now = time.time()
        # PyJWT checks that exp is in the future but takes a numeric string for it ("1999999999");
        # a JWT's exp is a NumericDate (RFC 7519), as Firebase always sends it.
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise invalid_token()
        # PyJWT checks exp (and iat's type); Google also requires iat and auth_time in the past.
        for claim in ("iat", "auth_time"):
            value = claims.get(claim)
            if isinstance(value, bool) or not isinstance(value, int | float) or value > now + self.leeway:
                raise invalid_token()
        if claims.get("aud") != self.project_id:  # a list containing the project is not enough
            raise invalid_token()
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > MAX_SUB_CHARS or has_control(sub):
            raise invalid_token()  # a NUL in a uid: PostgreSQL could not store it (Firebase uids have none)
        firebase = claims.get("firebase")
        method = firebase.get("sign_in_provider") if isinstance(firebase, dict) else None
        provider = PROVIDERS.get(method) if isinstance(method, str) else None
        if provider is None:
            raise invalid_token()
        email = claims.get("email")
        name = claims.get("name")
        picture = claims.get("picture")
        return {
            "provider": provider.value,
            "subject": sub,
            "sign_in_provider": method,
            "email": email if isinstance(email, str) and email else None,
            "email_verified": claims.get("email_verified") is True,
            "name": name if isinstance(name, str) and name.strip() else None,
            "picture": picture if isinstance(picture, str) and picture else None,
        }

    # --- certificates ----------------------------------------------------------------------------
    async def _key(self, kid: str) -> RSAPublicKey:
        now = self._clock()
        keys = self._keys
        fresh = keys is not None and now < self._expires_at
        if keys is not None and kid in keys and (fresh or now < self._retry_at):
            return keys[kid]
        if keys is not None and (fresh or now < self._retry_at):
            # An unknown kid while our set is current: Google may have rotated; look again, but
            # at most once a minute whatever kids the tokens claim.
            if now - self._unknown_kid_at < UNKNOWN_KID_REFETCH_SECONDS:
                raise invalid_token()
            self._unknown_kid_at = now
        if keys is None and now < self._retry_at:
            # The certificate server just failed and we hold nothing: do not wait on it again yet.
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="firebase certificates unavailable")
        if keys is not None and self._lock.locked():
            # Someone is already fetching: answer from what we hold rather than queue behind them.
            if kid in keys:
                return keys[kid]
            raise invalid_token()
        await self._refresh()
        keys = self._keys
        if keys is None:
            raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="firebase certificates unavailable")
        if kid not in keys:
            raise invalid_token()
        return keys[kid]

    async def _refresh(self) -> None:
        seen = self._generation
        async with self._lock:
            if self._generation != seen:
                # A fetch finished while we waited: use its outcome instead of fetching again.
                if self._keys is None:
                    raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="firebase certificates unavailable")
                return
            self._generation += 1
            try:
                keys, max_age = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                self._retry_at = self._clock() + self.retry_seconds
                log.warning("firebase_certs_unavailable", url=self.certs_url, error=type(exc).__name__,
                            cached=self._keys is not None)
                if self._keys is None:
                    raise AuthError(
                        ErrorCode.SERVICE_UNAVAILABLE, detail="firebase certificates unavailable"
                    ) from None
                return
            self._keys = keys
            self._expires_at = self._clock() + max_age
            self._retry_at = 0.0

    async def _fetch(self) -> tuple[dict[str, RSAPublicKey], int]:
        self.fetches += 1
        async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as client:
            response = await client.get(self.certs_url, headers={"accept": "application/json"})
        if response.status_code != 200:
            raise ValueError(f"certificate server answered {response.status_code}")
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise ValueError("certificate document is not JSON") from None
        return parse_certificates(payload), max_age_of(response.headers.get("cache-control"))
