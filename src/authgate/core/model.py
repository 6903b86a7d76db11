"""The identity domain's records. Plain dataclasses: storage maps them, surfaces render them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum, StrEnum


class Role(StrEnum):
    USER = "ROLE_USER"
    MODERATOR = "ROLE_MODERATOR"
    ADMIN = "ROLE_ADMIN"
    SUPER_ADMIN = "ROLE_SUPER_ADMIN"


ROLE_RANK = {Role.USER: 0, Role.MODERATOR: 1, Role.ADMIN: 2, Role.SUPER_ADMIN: 3}


class AuthProvider(StrEnum):
    PASSWORD = "PASSWORD"
    GOOGLE = "GOOGLE"
    APPLE = "APPLE"
    EMAIL = "EMAIL"


class Onboarding(StrEnum):
    PENDING_PHONE_VERIFICATION = "PENDING_PHONE_VERIFICATION"
    PENDING_PREFERENCES = "PENDING_PREFERENCES"
    PENDING_PROFILE_COMPLETION = "PENDING_PROFILE_COMPLETION"
    COMPLETED = "COMPLETED"


class AccountType(IntEnum):
    USERNAME = 1
    EMAIL = 2
    PHONE = 3


class TokenType(StrEnum):
    ACCESS = "access"
    OTP = "otp"
    RESET = "reset"
    VERIFICATION = "verification"
    APP = "app"


class SessionScope(StrEnum):
    FULL = "full"
    RESET = "reset"  # may only reset the password (forgot-password flow)


@dataclass
class User:
    id: int
    guid: str
    username: str
    email: str | None = None
    phone: str | None = None
    email_verified: bool = False
    phone_verified: bool = False
    password_hash: str | None = None
    pin_hash: str | None = None
    pin_failures: int = 0
    first_name: str | None = None
    last_name: str | None = None
    full_name: str | None = None
    avatar_url: str | None = None
    birthday: str | None = None
    gender: str | None = None
    locale: str | None = None
    roles: list[str] = field(default_factory=lambda: [Role.USER.value])
    roles_set: bool = False  # seed 002 renders roles as null until someone sets them
    auth_provider: str = AuthProvider.PASSWORD.value
    onboarding: str | None = None
    interests: list[str] | None = None
    is_active: bool = True
    is_locked: bool = False
    locked_at: datetime | None = None
    failed_logins: int = 0
    customer_id: str | None = None
    stripe_customer_id: str | None = None
    subscription_status: str | None = None
    created_at: datetime | None = None
    created_by: str | None = None
    updated_at: datetime | None = None
    updated_by: str | None = None
    deleted_at: datetime | None = None
    deleted_by: str | None = None

    @property
    def top_role(self) -> Role:
        ranked = [Role(r) for r in self.roles if r in Role._value2member_map_]
        return max(ranked, key=lambda r: ROLE_RANK[r], default=Role.USER)

    def has_role_at_least(self, role: Role) -> bool:
        return ROLE_RANK[self.top_role] >= ROLE_RANK[role]


@dataclass(frozen=True)
class LockState:
    """The columns a login settles under a row lock, without reading the whole user row."""

    is_active: bool
    is_locked: bool
    locked_at: datetime | None
    failed_logins: int


@dataclass
class Session:
    id: str
    user_id: int
    refresh_hash: str
    created_at: datetime
    expires_at: datetime
    scope: str = SessionScope.FULL.value
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    previous_refresh_hash: str | None = None
    rotated_at: datetime | None = None
    grace_sealed: str | None = None
    device_token: str | None = None
    device_type: int | None = None
    device_info: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    surface: str | None = None


@dataclass
class OneTimeSecret:
    """An OTP or a verification link token; only an HMAC of the secret is kept."""

    id: str
    purpose: str
    identifier: str
    secret_hash: str
    expires_at: datetime
    created_at: datetime
    user_id: int | None = None
    channel: str | None = None
    tries: int = 0
    used_at: datetime | None = None


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private_pem: bytes
    public_pem: bytes
    created_at: datetime
    active: bool = True
    retired_at: datetime | None = None


@dataclass
class ClientApp:
    id: int
    client_id: str
    name: str
    secret_hash: str
    secret_enc: str  # the secret encrypted with the server key: app signatures need the secret
    platforms: list[str]
    min_versions: dict[str, str]
    enabled: bool = True
    created_at: datetime | None = None


@dataclass
class ExternalIdentity:
    provider: str
    subject: str
    user_id: int
    email: str | None = None
    created_at: datetime | None = None


@dataclass
class AuditEvent:
    type: str
    at: datetime
    user_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None
    actor: str | None = None
    detail: dict[str, object] | None = None
    id: int | None = None


@dataclass(frozen=True)
class RequestContext:
    """What the core may know about the request: never the framework's Request object."""

    ip: str | None = None
    user_agent: str | None = None
    locale: str = "en"
    surface: str = ""
    request_id: str | None = None
    # True once the client has closed the connection: expensive work (a password hash) for a
    # request nobody will read is skipped (core/passwords.py).
    gone: Callable[[], Awaitable[bool]] | None = field(default=None, compare=False, repr=False)
