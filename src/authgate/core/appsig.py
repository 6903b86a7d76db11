"""App signatures (CONTRACT §1): a registered client app signs each request with its secret.

``x-app-payload`` is base64url (no padding) of the JSON object ``{clientId, ts, nonce, method, path,
bodySha256}``; ``x-app-signature`` is base64url (no padding) of HMAC-SHA256(clientSecret, the
x-app-payload string exactly as sent). The HMAC is over the transmitted string, not a re-encoding of
the JSON, so client and server never have to agree on a canonical JSON form.

The surface hands in plain values (method, path with query, raw body, headers); nothing here knows
about HTTP frameworks. Checks run from cheapest-to-forge to most stateful, and the nonce is
remembered only once everything else holds, so a forged or stale request cannot burn a client's
nonces, and a replay is refused on every node (the nonce lives in the shared cache: Redis when
configured).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.clients import PLATFORMS, parse_version
from authgate.core.model import ClientApp
from authgate.core.service import Core

log = structlog.get_logger("authgate.appsig")

WINDOW_SECONDS = 300  # CONTRACT §1: a ts more than 300 s away (either way) is refused
MIN_NONCE = 16
MAX_NONCE = 128
MAX_PAYLOAD = 4096  # characters of x-app-payload; a real payload is a few hundred
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
# A client id is ours (``cl_`` + URL-safe base64); a nonce printable ASCII. Anything else (a NUL,
# which PostgreSQL refuses even in a lookup, or a lone surrogate, which cannot be hashed) is a bad
# payload, answered 403 like any other, before the client is looked up.
_CLIENT_ID = re.compile(r"[A-Za-z0-9._~-]{1,128}")
_NONCE = re.compile(r"[ -~]+")
MAX_TS = 2**40  # about the year 36812; a larger int is no time (and overflows a float)
_ABSENT_SECRET = "absent-client-secret-used-only-to-spend-equal-time"

# Header names the signature scheme reads (lower case, as HTTP/2 and ASGI carry them).
PAYLOAD = "x-app-payload"
SIGNATURE = "x-app-signature"
PLATFORM = "x-platform"
VERSION = "x-app-version"


@dataclass(frozen=True)
class SignedApp:
    """A request whose app signature held: which client signed it, on which platform and version."""

    client: ClientApp
    platform: str
    app_version: str
    nonce: str
    ts: int


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 4648 §5, as JWS does: RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    if not text or len(text) > MAX_PAYLOAD or not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


def sign(secret: str, payload: str) -> str:
    """The x-app-signature for an x-app-payload string."""
    return b64url(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _refuse(reason: str, client_id: str | None = None) -> AuthError:
    # The reason goes to the log only: telling a caller which check failed helps a forger more
    # than an honest client (whose SDK computes every field the same way).
    log.info("app_signature_refused", reason=reason, client_id=client_id)
    return AuthError(ErrorCode.SIGNATURE_INVALID, detail=reason)


@dataclass(frozen=True)
class _Payload:
    client_id: str
    ts: int
    nonce: str
    method: str
    path: str
    body_sha256: str


def decode_payload(raw: str) -> _Payload:
    """Parse x-app-payload strictly: every field present, of its type; else SIGNATURE_INVALID."""
    data = _b64url_decode(raw)
    if data is None:
        raise _refuse("payload_not_base64url")
    try:
        obj: Any = json.loads(data)
    except ValueError:
        raise _refuse("payload_not_json") from None
    if not isinstance(obj, dict):
        raise _refuse("payload_not_object")
    client_id, ts, nonce = obj.get("clientId"), obj.get("ts"), obj.get("nonce")
    method, path, digest = obj.get("method"), obj.get("path"), obj.get("bodySha256")
    if not isinstance(client_id, str) or not _CLIENT_ID.fullmatch(client_id):
        raise _refuse("payload_client_id")
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < MAX_TS:
        raise _refuse("payload_ts", client_id)
    if not isinstance(nonce, str) or not MIN_NONCE <= len(nonce) <= MAX_NONCE or not _NONCE.fullmatch(nonce):
        raise _refuse("payload_nonce", client_id)
    if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
        raise _refuse("payload_method_or_path", client_id)
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise _refuse("payload_body_sha256", client_id)
    return _Payload(client_id, ts, nonce, method, path, digest.lower())


async def verify(
    core: Core,
    *,
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    now: float | None = None,
) -> SignedApp:
    """Check an app-signed request; return the signing client, or raise.

    ``path`` is the request's path exactly as received, with ``?query`` when there is one.
    ``headers`` maps lower-case names to values. Raises SIGNATURE_INVALID (403) for a bad or
    replayed signature, an unknown or disabled client, a platform the client may not use, and
    APP_VERSION_TOO_OLD (426) for a version under the platform's minimum. A missing or unreadable
    x-app-version/x-platform header is MISSING_HEADER (400) naming it.
    """
    raw_payload = headers.get(PAYLOAD) or ""
    signature = headers.get(SIGNATURE) or ""
    platform = (headers.get(PLATFORM) or "").strip().lower()
    version_text = (headers.get(VERSION) or "").strip()
    for name, value in ((PAYLOAD, raw_payload), (SIGNATURE, signature), (PLATFORM, platform), (VERSION, version_text)):
        if not value:
            raise AuthError(ErrorCode.MISSING_HEADER, field=name)
    version = parse_version(version_text)
    if version is None:
        raise AuthError(ErrorCode.MISSING_HEADER, field=VERSION, detail="expected digits and dots, e.g. 2.1.0")

    payload = decode_payload(raw_payload)
    async with core.store.transaction(write=False) as tx:
        client = await tx.clients.get(payload.client_id)
    secret = core.keyed.unseal(client.secret_enc) if client is not None else None
    # The HMAC is computed even for an unknown client, so timing does not tell which ids exist.
    expected = sign(secret or _ABSENT_SECRET, raw_payload)
    matches = hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
    if client is None or secret is None:
        raise _refuse("unknown_client", payload.client_id)
    if not matches:
        raise _refuse("signature_mismatch", payload.client_id)
    if not client.enabled:
        raise _refuse("client_disabled", payload.client_id)

    current = time.time() if now is None else now
    if abs(current - payload.ts) > WINDOW_SECONDS:
        raise _refuse("ts_outside_window", payload.client_id)
    if payload.method.upper() != method.upper():
        raise _refuse("method_mismatch", payload.client_id)
    if payload.path != path:
        raise _refuse("path_mismatch", payload.client_id)
    if not hmac.compare_digest(payload.body_sha256, body_sha256(body)):
        raise _refuse("body_mismatch", payload.client_id)
    if platform not in PLATFORMS or platform not in client.platforms:
        raise _refuse("platform_not_allowed", payload.client_id)

    minimum = client.min_versions.get(platform)
    if minimum is not None:
        floor = parse_version(minimum)
        if floor is not None and _pad(version) < _pad(floor):
            raise AuthError(ErrorCode.APP_VERSION_TOO_OLD, detail=f"minimum {platform} version is {minimum}")

    # Remember the nonce for as long as its ts could still be accepted (at most 2 × the window),
    # on every node: SharedCache is Redis when configured.
    ttl = max(1, int(payload.ts + WINDOW_SECONDS - current) + 1)
    key = "appsig:nonce:" + hashlib.sha256(f"{payload.client_id}\x00{payload.nonce}".encode()).hexdigest()
    if not await core.cache.add(key, ttl):
        raise _refuse("nonce_replayed", payload.client_id)
    return SignedApp(client, platform, version_text, payload.nonce, payload.ts)


def _pad(version: tuple[int, ...]) -> tuple[int, ...]:
    """2.0 and 2.0.0 are the same version."""
    return version + (0,) * (4 - len(version))
