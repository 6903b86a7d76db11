"""Sync surface (seed 002, CONTRACT §5): the token endpoint, third-party user sync and the admin
API. Errors are ``{"statusCode", "error", "message"}``.

Which listener a request came in on decides whether ``x-user-ctx`` counts: the app built for the
internal listener (``create_app(internal=True)``), or a request that arrived on the socket of
``AUTHGATE_INTERNAL_PORT`` (``authgate serve --internal-port`` binds both sockets to one app).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool
from starlette.responses import Response

from authgate.core.errors import AuthError, ErrorCode, Kind
from authgate.core.flows import sync
from authgate.core.model import AuditEvent, User
from authgate.surfaces.common import (
    JSONResponse,
    SurfaceSpec,
    bearer,
    bearer_challenge,
    context,
    core_of,
    text_for,
    with_retry_after,
)

router = APIRouter(tags=["sync (seed 002)"])

# NestJS-style reason phrases, as the seed's "401 Unauthorized - User not found" reads.
_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    423: "Locked",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
# The contract's own wording for the login failures.
_BY_CODE = {
    ErrorCode.USER_NOT_FOUND: "User not found",
    ErrorCode.INVALID_CREDENTIALS: "Invalid credentials",
    ErrorCode.CLIENT_INVALID: "Invalid client",
}
_WITH_DETAIL = (ErrorCode.INVALID_FIELD, ErrorCode.MISSING_HEADER, ErrorCode.FORBIDDEN)


def render(err: AuthError, locale: str, path: str = "") -> Response:
    status = err.status
    if err.code is ErrorCode.NOT_FOUND and err.detail == "user":
        msg = "User not found"
    else:
        msg = _BY_CODE.get(err.code) or text_for(err, locale)
        if err.code in _WITH_DETAIL and err.detail:
            msg = f"{msg}: {err.detail}"
    body: dict[str, Any] = {"statusCode": status, "error": _PHRASES.get(status, "Error"), "message": msg}
    if err.field and err.kind in (Kind.INVALID, Kind.CONFLICT, Kind.BAD_REQUEST):
        body["field"] = err.field
    response = JSONResponse(body, status_code=status)
    if status == 401:
        response.headers["WWW-Authenticate"] = bearer_challenge(err)
    return with_retry_after(response, err)


SPEC = SurfaceSpec("sync", ("/api/auth/login", "/api/users", "/api/admin"), render)


# --- schemas (seed 002's field names) -------------------------------------------------------------
class WithPassword(BaseModel):
    emailOrUsername: str = Field(max_length=320)  # noqa: N815
    # No length cap here: CONTRACT §1 makes an over-long password a failed login (401), not an
    # error; the login flow refuses one over 1024 characters without hashing it, and the body
    # limit (64 KiB) bounds it.
    password: str


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str = Field(max_length=32)
    # Over-long client credentials and refresh tokens are wrong ones (401 "Invalid client" /
    # "Invalid refresh token"), refused by length in core without a lookup.
    clientId: str | None = None  # noqa: N815
    clientSecret: str | None = None  # noqa: N815
    withPassword: WithPassword | None = None  # noqa: N815
    refreshToken: str | None = None  # noqa: N815


class UserBody(BaseModel):
    """The user record to create or update (matched by username, else by email). ``password`` is
    plain text, or a bcrypt / argon2 / Django pbkdf2_sha256 / firebase_scrypt hash."""

    model_config = ConfigDict(extra="ignore")
    username: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, max_length=1024)
    # StrictBool: "yes", "1" or "false" (a string) are 422, not silently taken as booleans.
    emailVerified: StrictBool | None = None  # noqa: N815
    phoneNumber: str | None = Field(default=None, max_length=32)  # noqa: N815
    firstName: str | None = Field(default=None, max_length=100)  # noqa: N815
    lastName: str | None = Field(default=None, max_length=100)  # noqa: N815
    locale: str | None = Field(default=None, max_length=16)
    roles: list[str] | None = Field(default=None, max_length=8)
    isActive: StrictBool | None = None  # noqa: N815
    avatar: str | None = Field(default=None, max_length=2048)
    birthday: str | None = Field(default=None, max_length=10)
    gender: str | None = Field(default=None, max_length=32)


# --- rendering -------------------------------------------------------------------------------------
def iso(value: datetime | None) -> str | None:
    """ISO-8601 UTC with milliseconds, as the seed shows: ``2023-05-04T01:34:03.320Z``."""
    if value is None:
        return None
    value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def user_json(user: User) -> dict[str, Any]:
    """Seed 002's user object, without the password hash (the seed's sample shows one; we never do)."""
    return {
        "id": str(user.id),
        "_guid": user.guid,
        "username": user.username,
        "email": user.email,
        "emailVerified": user.email_verified,
        "phoneNumber": user.phone,
        "firstName": user.first_name,
        "lastName": user.last_name,
        "locale": user.locale,
        "roles": list(user.roles) if user.roles_set else None,
        "avatar": user.avatar_url,
        "birthday": user.birthday,
        "gender": user.gender,
        "isActive": user.is_active,
        "isLocked": user.is_locked,
        "lockedAt": iso(user.locked_at),
        "createdBy": user.created_by,
        "createdAt": iso(user.created_at),
        "updatedAt": iso(user.updated_at),
        "updatedBy": user.updated_by,
        "deletedAt": iso(user.deleted_at),
        "deletedBy": user.deleted_by,
    }


def event_json(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "type": event.type,
        "at": iso(event.at),
        "userId": str(event.user_id) if event.user_id is not None else None,
        "actor": event.actor,
        "ip": event.ip,
        "userAgent": event.user_agent,
        "detail": event.detail,
    }


# --- who is calling --------------------------------------------------------------------------------
def is_internal(request: Request) -> bool:
    """True on the internal listener only; there ``x-user-ctx`` is honoured."""
    if getattr(request.app.state, "internal", False):
        return True
    port = request.app.state.settings.internal_port
    server = request.scope.get("server")
    return bool(port) and server is not None and server[1] == port


async def actor_of(request: Request) -> sync.Actor:
    return await sync.resolve_actor(
        core_of(request),
        user_ctx=request.headers.get("x-user-ctx"),
        bearer=bearer(request),
        internal=is_internal(request),
    )


Caller = Annotated[sync.Actor, Depends(actor_of)]


def _blank_is_absent(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# CONTRACT §5 writes the list as ``?search=&limit=&cursor=``: an empty ``limit`` is the default one.
Limit = Annotated[int | None, BeforeValidator(_blank_is_absent), Query()]
DEFAULT_LIMIT = 50


# --- endpoints -------------------------------------------------------------------------------------
@router.post("/api/auth/login")
async def login_(body: LoginBody, request: Request) -> JSONResponse:
    """Seed 002's login: ``password``, ``refreshToken`` or ``clientCredentials``."""
    core = core_of(request)
    grant = await sync.token(
        core,
        context(request, "sync"),
        grant=body.type,
        client_id=body.clientId,
        client_secret=body.clientSecret,
        login_id=body.withPassword.emailOrUsername if body.withPassword else None,
        password=body.withPassword.password if body.withPassword else None,
        refresh_token=body.refreshToken,
    )
    out: dict[str, Any] = {"accessToken": grant.access_token}
    if grant.refresh_token:
        out["refreshToken"] = grant.refresh_token
    out.update({"tokenType": "Bearer", "expiresIn": grant.expires_in})
    if grant.user is not None:
        out["user"] = user_json(grant.user)
    return JSONResponse(out)


@router.put("/api/users")
@router.put("/api/users/", include_in_schema=False)
async def put_user(body: UserBody, request: Request, actor: Caller) -> dict[str, Any]:
    """Create or update a user synced from another system."""
    user, _ = await sync.upsert(
        core_of(request), context(request, "sync"), actor, body.model_dump(exclude_unset=True)
    )
    return user_json(user)


@router.get("/api/users")
@router.get("/api/users/", include_in_schema=False)
async def list_users(
    request: Request,
    actor: Caller,
    search: Annotated[str | None, Query(max_length=320)] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    users, next_cursor = await sync.list_users(
        core_of(request), actor, search, DEFAULT_LIMIT if limit is None else limit, cursor
    )
    return {"items": [user_json(u) for u in users], "nextCursor": next_cursor}


@router.get("/api/users/{user_id}")
async def get_user(user_id: str, request: Request, actor: Caller) -> dict[str, Any]:
    return user_json(await sync.get_user(core_of(request), actor, user_id))


@router.delete("/api/users/{user_id}")
async def delete_user(user_id: str, request: Request, actor: Caller) -> dict[str, Any]:
    """Soft delete: the user can no longer log in and every session is revoked."""
    user = await sync.delete_user(core_of(request), context(request, "sync"), actor, user_id)
    return user_json(user)


@router.post("/api/users/{user_id}/unlock")
async def unlock_user(user_id: str, request: Request, actor: Caller) -> dict[str, Any]:
    user = await sync.unlock_user(core_of(request), context(request, "sync"), actor, user_id)
    return user_json(user)


@router.get("/api/admin/audit")
async def audit_log(
    request: Request,
    actor: Caller,
    userId: Annotated[str | None, Query(max_length=20)] = None,  # noqa: N803
    type: Annotated[str | None, Query(max_length=40)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, Any]:
    """The audit log, newest first, filtered by user, event type and time."""
    events, next_cursor = await sync.list_audit(
        core_of(request),
        actor,
        user_id=userId,
        type=type,
        since=_utc(since),
        until=_utc(until),
        limit=DEFAULT_LIMIT if limit is None else limit,
        cursor=cursor,
    )
    return {"items": [event_json(e) for e in events], "nextCursor": next_cursor}


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
