"""One error type for the whole core; each surface renders it in its own envelope.

``code`` is stable and never renamed once shipped (surfaces and clients key on it); ``kind`` is
what a surface maps to a status when it has no rule for the code itself.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    INVALID = "invalid"  # 422
    BAD_REQUEST = "bad_request"  # 400
    UNAUTHENTICATED = "unauthenticated"  # 401
    FORBIDDEN = "forbidden"  # 403
    NOT_FOUND = "not_found"  # 404
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    CONFLICT = "conflict"  # 409
    TOO_LARGE = "too_large"  # 413
    LOCKED = "locked"  # 423
    UPGRADE_REQUIRED = "upgrade_required"  # 426
    RATE_LIMITED = "rate_limited"  # 429
    INTERNAL = "internal"  # 500
    UNAVAILABLE = "unavailable"  # 503


KIND_STATUS: dict[Kind, int] = {
    Kind.INVALID: 422,
    Kind.BAD_REQUEST: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD_NOT_ALLOWED: 405,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.LOCKED: 423,
    Kind.UPGRADE_REQUIRED: 426,
    Kind.RATE_LIMITED: 429,
    Kind.INTERNAL: 500,
    Kind.UNAVAILABLE: 503,
}


class ErrorCode(StrEnum):
    # request shape
    MALFORMED_JSON = "malformed_json"
    INVALID_FIELD = "invalid_field"
    BODY_TOO_LARGE = "body_too_large"
    ROUTE_NOT_FOUND = "route_not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    MISSING_HEADER = "missing_header"
    # accounts
    ACCOUNT_NOT_FOUND = "account_not_found"
    USER_EXISTS = "user_exists"
    IDENTIFIER_TAKEN = "identifier_taken"
    INVALID_CREDENTIALS = "invalid_credentials"
    USER_NOT_FOUND = "user_not_found"
    ACCOUNT_INACTIVE = "account_inactive"
    ACCOUNT_LOCKED = "account_locked"
    PASSWORD_ALREADY_SET = "password_already_set"
    PASSWORD_POLICY = "password_policy"
    # tokens and sessions
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    TOKEN_EXPIRED = "token_expired"
    REFRESH_INVALID = "refresh_invalid"
    REFRESH_EXPIRED = "refresh_expired"
    INSUFFICIENT_SCOPE = "insufficient_scope"
    FORBIDDEN = "forbidden"
    CSRF_INVALID = "csrf_invalid"
    SIGNATURE_INVALID = "signature_invalid"
    CLIENT_INVALID = "client_invalid"
    APP_VERSION_TOO_OLD = "app_version_too_old"
    # one-time secrets
    OTP_INVALID = "otp_invalid"
    OTP_TOKEN_INVALID = "otp_token_invalid"
    OTP_NATURE_MISMATCH = "otp_nature_mismatch"
    VERIFICATION_INVALID = "verification_invalid"
    REDIRECT_NOT_ALLOWED = "redirect_not_allowed"
    PIN_NOT_SET = "pin_not_set"
    PIN_INVALID = "pin_invalid"
    PIN_LOCKED = "pin_locked"
    # messages and dependencies
    NO_CHANNEL = "no_channel"
    MESSAGE_NOT_SENT = "message_not_sent"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    SERVICE_UNAVAILABLE = "service_unavailable"
    FEDERATED_TOKEN_INVALID = "federated_token_invalid"
    ONBOARDING_OUT_OF_ORDER = "onboarding_out_of_order"
    FEDERATED_EMAIL_CONFLICT = "federated_email_conflict"
    NOT_FOUND = "not_found"
    INTERNAL = "internal"
    WEBHOOK_INVALID = "webhook_invalid"


CODE_KIND: dict[ErrorCode, Kind] = {
    ErrorCode.MALFORMED_JSON: Kind.BAD_REQUEST,
    ErrorCode.INVALID_FIELD: Kind.INVALID,
    ErrorCode.BODY_TOO_LARGE: Kind.TOO_LARGE,
    ErrorCode.ROUTE_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.METHOD_NOT_ALLOWED: Kind.METHOD_NOT_ALLOWED,
    ErrorCode.MISSING_HEADER: Kind.BAD_REQUEST,
    ErrorCode.ACCOUNT_NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.USER_EXISTS: Kind.CONFLICT,
    ErrorCode.IDENTIFIER_TAKEN: Kind.CONFLICT,
    ErrorCode.INVALID_CREDENTIALS: Kind.UNAUTHENTICATED,
    ErrorCode.USER_NOT_FOUND: Kind.UNAUTHENTICATED,
    ErrorCode.ACCOUNT_INACTIVE: Kind.UNAUTHENTICATED,
    ErrorCode.ACCOUNT_LOCKED: Kind.UNAUTHENTICATED,
    ErrorCode.PASSWORD_ALREADY_SET: Kind.CONFLICT,
    ErrorCode.PASSWORD_POLICY: Kind.INVALID,
    ErrorCode.TOKEN_MISSING: Kind.UNAUTHENTICATED,
    ErrorCode.TOKEN_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.TOKEN_EXPIRED: Kind.UNAUTHENTICATED,
    ErrorCode.REFRESH_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.REFRESH_EXPIRED: Kind.UNAUTHENTICATED,
    ErrorCode.INSUFFICIENT_SCOPE: Kind.FORBIDDEN,
    ErrorCode.FORBIDDEN: Kind.FORBIDDEN,
    ErrorCode.CSRF_INVALID: Kind.FORBIDDEN,
    ErrorCode.SIGNATURE_INVALID: Kind.FORBIDDEN,
    ErrorCode.CLIENT_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.APP_VERSION_TOO_OLD: Kind.UPGRADE_REQUIRED,
    ErrorCode.OTP_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.OTP_TOKEN_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.OTP_NATURE_MISMATCH: Kind.UNAUTHENTICATED,
    ErrorCode.VERIFICATION_INVALID: Kind.BAD_REQUEST,
    ErrorCode.REDIRECT_NOT_ALLOWED: Kind.BAD_REQUEST,
    ErrorCode.PIN_NOT_SET: Kind.CONFLICT,
    ErrorCode.PIN_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.PIN_LOCKED: Kind.LOCKED,
    ErrorCode.NO_CHANNEL: Kind.INTERNAL,
    ErrorCode.MESSAGE_NOT_SENT: Kind.UNAVAILABLE,
    ErrorCode.RATE_LIMITED: Kind.RATE_LIMITED,
    ErrorCode.OVERLOADED: Kind.UNAVAILABLE,
    ErrorCode.SERVICE_UNAVAILABLE: Kind.UNAVAILABLE,
    ErrorCode.FEDERATED_TOKEN_INVALID: Kind.UNAUTHENTICATED,
    ErrorCode.ONBOARDING_OUT_OF_ORDER: Kind.CONFLICT,
    ErrorCode.FEDERATED_EMAIL_CONFLICT: Kind.CONFLICT,
    ErrorCode.NOT_FOUND: Kind.NOT_FOUND,
    ErrorCode.INTERNAL: Kind.INTERNAL,
    ErrorCode.WEBHOOK_INVALID: Kind.BAD_REQUEST,
}


class AuthError(Exception):
    """A failure the client may be told about.

    ``field`` names the offending input for validation errors; ``retry_after`` (seconds) goes into
    ``Retry-After`` for rate limits; ``detail`` is a safe English detail (never a secret).
    """

    def __init__(
        self,
        code: ErrorCode,
        *,
        field: str | None = None,
        detail: str | None = None,
        retry_after: int | None = None,
        kind: Kind | None = None,
    ) -> None:
        self.code = code
        self.kind = kind or CODE_KIND[code]
        self.field = field
        self.detail = detail
        self.retry_after = retry_after
        super().__init__(f"{code}: {field or ''} {detail or ''}".strip())

    @property
    def status(self) -> int:
        return KIND_STATUS[self.kind]


def invalid(field: str, detail: str) -> AuthError:
    return AuthError(ErrorCode.INVALID_FIELD, field=field, detail=detail)
