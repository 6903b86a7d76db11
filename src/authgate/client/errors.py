"""Typed errors for the client SDK: one class per status family the seeds ask apps to handle."""

from __future__ import annotations

from typing import Any


class AuthgateError(Exception):
    """Any failed call. ``status`` is the HTTP status (0 when the server could not be reached);
    ``code`` the server's stable error code when it sent one; ``message`` its user-safe message."""

    def __init__(self, status: int, message: str, code: str | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {code or ''} {message}".replace("  ", " ").strip())
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class ConnectionFailed(AuthgateError):
    """The server could not be reached (DNS, refused connection, timeout)."""


class BadRequest(AuthgateError):
    """400 or 422: a missing header or an invalid field (``field`` names it when the server did)."""

    @property
    def field(self) -> str | None:
        return _field(self.body)


class Unauthorized(AuthgateError):
    """401: no, bad or expired credentials, and refreshing did not help. Tokens were cleared."""


class Forbidden(AuthgateError):
    """403: a CSRF or app-signature failure, or a caller without the right role."""


class NotFound(AuthgateError):
    """404."""


class Conflict(AuthgateError):
    """409."""


class UpgradeRequired(AuthgateError):
    """426: this app version is under the server's minimum for its platform; ask the user to update."""


class RateLimited(AuthgateError):
    """429; ``retry_after`` is the server's Retry-After in seconds (None when it sent none)."""

    def __init__(self, status: int, message: str, code: str | None = None, body: Any = None,
                 retry_after: int | None = None) -> None:
        super().__init__(status, message, code, body)
        self.retry_after = retry_after


class ServerError(AuthgateError):
    """5xx: the service failed or is unavailable; safe to retry later."""


def _field(body: Any) -> str | None:
    if isinstance(body, dict):
        for holder in (body.get("error"), body):
            if isinstance(holder, dict) and isinstance(holder.get("field"), str):
                return str(holder["field"])
    return None


def error_parts(body: Any) -> tuple[str | None, str]:
    """(code, message) from any authgate envelope: customer/ops ``{"error": {"code", "message"}}``,
    sync ``{"statusCode", "error", "message"}``, app ``{"success", "message"}``, form ``{"message"}``,
    firebase ``{"data": "message"}``."""
    if not isinstance(body, dict):
        return None, ""
    error = body.get("error")
    if isinstance(error, dict):
        return _str(error.get("code")), _str(error.get("message")) or ""
    message = _str(body.get("message")) or (_str(body.get("data")) if not body.get("success") else None)
    code = _str(body.get("code")) or (_str(error) if isinstance(error, str) else None)
    return code, message or ""


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def for_status(status: int, body: Any, retry_after: str | None = None) -> AuthgateError:
    code, message = error_parts(body)
    message = message or f"HTTP {status}"
    if status == 401:
        return Unauthorized(status, message, code, body)
    if status == 403:
        return Forbidden(status, message, code, body)
    if status == 404:
        return NotFound(status, message, code, body)
    if status == 409:
        return Conflict(status, message, code, body)
    if status == 426:
        return UpgradeRequired(status, message, code, body)
    if status == 429:
        wait = int(retry_after) if retry_after and retry_after.strip().isdigit() else None
        return RateLimited(status, message, code, body, retry_after=wait)
    if status >= 500:
        return ServerError(status, message, code, body)
    if status in (400, 422):
        return BadRequest(status, message, code, body)
    return AuthgateError(status, message, code, body)
