"""Pre-signed requests for W5 (CONTRACT §1, app signature).

wrk's Lua has no HMAC, so every request W5 sends is signed here beforehand, each with a fresh
nonce, and written to a file the Lua script cycles through (one request per line, tab-separated:
path, x-username, x-app-payload, x-app-signature). The rule, straight from the contract:
``x-app-payload`` = base64url (no padding) of the JSON ``{clientId, ts, nonce, method, path,
bodySha256}``; ``x-app-signature`` = base64url (no padding) of HMAC-SHA256(clientSecret, the
payload string exactly as sent).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
CHECK_PATH = "/api/customers/check-username/{username}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_payload(secret: str, payload: str) -> str:
    return b64url(hmac.new(secret.encode(), payload.encode("ascii"), hashlib.sha256).digest())


@dataclass(frozen=True)
class SignedRequest:
    path: str
    username: str
    payload: str
    signature: str

    def line(self) -> str:
        return "\t".join((self.path, self.username, self.payload, self.signature))


def signed_request(
    client_id: str,
    secret: str,
    username: str,
    *,
    ts: int,
    nonce: str | None = None,
    method: str = "GET",
    body: bytes = b"",
) -> SignedRequest:
    """One signed check-username request for ``username``."""
    path = CHECK_PATH.format(username=username)
    doc = {
        "clientId": client_id,
        "ts": ts,
        "nonce": nonce or secrets.token_hex(12),
        "method": method,
        "path": path,
        "bodySha256": hashlib.sha256(body).hexdigest(),
    }
    payload = b64url(json.dumps(doc, separators=(",", ":")).encode())
    return SignedRequest(path, username, payload, sign_payload(secret, payload))


def valid_ts(now: float, duration: float) -> int:
    """A ``ts`` inside the server's ±300 s window for the whole of a run of ``duration`` seconds
    starting at ``now``: the middle of the run, capped so the first request is still in time."""
    return int(now + min(duration / 2, 240))


def generate(
    client_id: str, secret: str, usernames: Iterable[str], count: int, duration: float, now: float | None = None
) -> Iterator[SignedRequest]:
    """``count`` requests cycling through ``usernames``, each with its own nonce."""
    names = list(usernames)
    if not names:
        raise ValueError("no usernames to check")
    ts = valid_ts(time.time() if now is None else now, duration)
    for i in range(count):
        yield signed_request(client_id, secret, names[i % len(names)], ts=ts)


def write_file(path: Path, requests: Iterable[SignedRequest]) -> int:
    n = 0
    with path.open("w", encoding="ascii") as out:
        for req in requests:
            out.write(req.line() + "\n")
            n += 1
    return n
