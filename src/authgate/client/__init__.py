"""authgate's Python client SDK, for app developers (async and sync, on httpx).

It logs in (password or client credentials), keeps the tokens, attaches ``Authorization``, fetches
and attaches the CSRF token, signs requests with the app secret (``x-app-payload`` /
``x-app-signature`` / ``x-platform`` / ``x-app-version``), refreshes once on a 401 and retries,
forgets the tokens when refreshing fails, and raises a typed error for each failure. Each HTTP
exchange is logged at DEBUG on the ``authgate.client`` logger (method, path, status, time; never a
header, body or secret). See docs/sdk.md.
"""

from authgate.client._engine import Config, CustomerCheck, MemoryTokenStore, Tokens, TokenStore
from authgate.client.clients import AsyncAuthgate, Authgate
from authgate.client.errors import (
    AuthgateError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    Unauthorized,
    UpgradeRequired,
)
from authgate.client.signing import app_signature_headers

__all__ = [
    "AsyncAuthgate",
    "Authgate",
    "AuthgateError",
    "BadRequest",
    "Config",
    "Conflict",
    "ConnectionFailed",
    "CustomerCheck",
    "Forbidden",
    "MemoryTokenStore",
    "NotFound",
    "RateLimited",
    "ServerError",
    "TokenStore",
    "Tokens",
    "Unauthorized",
    "UpgradeRequired",
    "app_signature_headers",
]
