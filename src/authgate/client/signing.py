"""App signatures (authgate CONTRACT §1), computed the way the server checks them.

``x-app-payload`` = base64url (no padding) of JSON ``{clientId, ts, nonce, method, path,
bodySha256}``; ``x-app-signature`` = base64url (no padding) of HMAC-SHA256(clientSecret, that
x-app-payload string). ``path`` is the request target exactly as sent (percent-encoded, with
``?query``), so sign the request you are about to send, not the URL you meant to build.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def app_signature_headers(
    client_id: str,
    client_secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    platform: str,
    app_version: str,
    ts: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four headers of an app-signed request: payload, signature, platform and version."""
    payload = b64url(
        json.dumps(
            {
                "clientId": client_id,
                "ts": int(time.time()) if ts is None else ts,
                "nonce": nonce or secrets.token_urlsafe(18),
                "method": method.upper(),
                "path": path,
                "bodySha256": hashlib.sha256(body).hexdigest(),
            },
            separators=(",", ":"),
        ).encode()
    )
    signature = b64url(hmac.new(client_secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())
    return {
        "x-app-payload": payload,
        "x-app-signature": signature,
        "x-platform": platform,
        "x-app-version": app_version,
    }
