"""Firebase surface (seed 004, CONTRACT §7) under ``/api/v1``.

Every response, success or error, is the seed's envelope
``{success, httpStatus, message, action_time, data}``: ``httpStatus`` is the HTTP status name,
``action_time`` is UTC ``YYYY-MM-DDTHH:MM:SS``; an error's ``data`` is its message, or for 422 an
object of field → message. Access tokens travel as ``Authorization: Bearer``; refresh tokens in
the JSON body.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from pydantic import BaseModel
from starlette.responses import Response

from authgate.core.errors import AuthError, ErrorCode, Kind
from authgate.core.flows import codes, federated, logout, onboarding
from authgate.core.model import User
from authgate.core.sessions import Issued, account_usable
from authgate.surfaces.common import (
    JSONResponse,
    SurfaceSpec,
    bearer,
    context,
    core_of,
    text_for,
    with_retry_after,
)

PREFIX = "/api/v1"
SURFACE = "firebase"
router = APIRouter(prefix=PREFIX, tags=["firebase (seed 004)"])

# Spring's HttpStatus names, as the seed's "Globe Response Builder" prints them.
STATUS_NAMES = {
    200: "OK",
    201: "CREATED",
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    422: "UNPROCESSABLE_ENTITY",
    423: "LOCKED",
    426: "UPGRADE_REQUIRED",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_SERVER_ERROR",
    503: "SERVICE_UNAVAILABLE",
}

VALIDATION_FAILED = "Validation failed"
# The seed's 422 words are English; other languages get the envelope's message in their own words
# and, per field, the localised "invalid value for <field>" (the English reasons are not translated).
VALIDATION_FAILED_IN = {
    "zh-Hant": "驗證失敗",
    "zh": "验证失败",
    "fr": "Échec de la validation",
    "sw": "Uthibitishaji umeshindwa",
}
INACTIVE = "Account is inactive or locked"
PHONE_TAKEN = "This phone number is already in use by another account"
OTP_FORMAT = "OTP must be 4 to 8 digits"  # as core/flows/onboarding.py words it
# Seed 004's wording for a missing or blank required field.
REQUIRED = {
    "firebaseToken": "Firebase token is required",
    "refreshToken": "Refresh token is required",
    "phoneNumber": "Phone number is required",
    "otp": "OTP is required",
    "preferredLanguage": "Preferred language is required",
    "fullName": "Full name is required",
}


def action_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def envelope(status: int, message: str, data: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {
        "success": status < 400,
        "httpStatus": STATUS_NAMES.get(status, str(status)),
        "message": message,
        "action_time": action_time(),
        "data": data,
    }
    return JSONResponse(body, status_code=status, headers=headers)


def ok(message: str, data: Any) -> JSONResponse:
    return envelope(200, message, data)


def _field_message(err: AuthError, locale: str) -> str:
    detail = (err.detail or "").strip()
    if not detail:
        return text_for(err, locale)
    return detail[0].upper() + detail[1:]


def render(err: AuthError, locale: str, path: str = "") -> Response:
    status = err.status
    if err.kind is Kind.INVALID:
        # The body's own field, not pydantic's path inside it ("interests.1", "otp.int").
        field = (err.field or "body").split(".", 1)[0]
        if locale in VALIDATION_FAILED_IN:
            return envelope(status, VALIDATION_FAILED_IN[locale], {field: text_for(err, locale)})
        return envelope(status, VALIDATION_FAILED, {field: _field_message(err, locale)})
    if err.code in (ErrorCode.ACCOUNT_INACTIVE, ErrorCode.ACCOUNT_LOCKED):
        msg = INACTIVE
    elif err.code is ErrorCode.IDENTIFIER_TAKEN and err.field == "phoneNumber" and locale == "en":
        msg = PHONE_TAKEN
    else:
        msg = text_for(err, locale)
    return with_retry_after(envelope(status, msg, msg), err)


SPEC = SurfaceSpec(SURFACE, (PREFIX,), render)


# --- schemas (seed 004's field names) ------------------------------------------------------------
# Fields are optional in the schemas so that a missing, null or blank value gets the seed's own
# "... is required" message from one place (``required``), not pydantic's.
class AuthenticateBody(BaseModel):
    firebaseToken: str | None = None
    preferredLanguage: str | None = None
    deviceInfo: str | None = None


class RefreshBody(BaseModel):
    refreshToken: str | None = None


class PhoneBody(BaseModel):
    phoneNumber: str | None = None


class PhoneVerifyBody(BaseModel):
    phoneNumber: str | None = None
    otp: Any = None  # a string or an integer of digits (core/flows/codes.normalise_code)


class PreferencesBody(BaseModel):
    preferredLanguage: str | None = None
    interests: list[str] | None = None


class ProfileBody(BaseModel):
    fullName: str | None = None
    profilePhotoUrl: str | None = None
    birthday: str | None = None
    gender: str | None = None


def required(value: str | None, field: str) -> str:
    if value is None or not value.strip():
        raise AuthError(ErrorCode.INVALID_FIELD, field=field, detail=REQUIRED[field])
    return value.strip()


# --- rendering -----------------------------------------------------------------------------------
def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if value else None


def user_json(user: User) -> dict[str, Any]:
    full_name = user.full_name or " ".join(p for p in (user.first_name, user.last_name) if p) or None
    return {
        "id": str(user.id),
        "email": user.email,
        "username": user.username,
        "phoneNumber": user.phone if user.phone_verified else None,
        "fullName": full_name,
        "profilePhotoUrl": user.avatar_url,
        "isPhoneVerified": user.phone_verified,
        "isEmailVerified": user.email_verified,
        "preferredLanguage": onboarding.language_of(user),
        "authProvider": user.auth_provider,
        "role": user.top_role.value,
        "createdAt": _time(user.created_at),
    }


def onboarding_json(user: User) -> dict[str, Any]:
    state = onboarding.status(user)
    return {"isComplete": state.is_complete, "currentStep": state.current_step}


def token_json(user: User, issued: Issued) -> dict[str, Any]:
    return {
        "accessToken": issued.access_token,
        "refreshToken": issued.refresh_token,
        "tokenType": "Bearer",
        "expiresIn": issued.expires_in,
        "user": user_json(user),
        "onboarding": onboarding_json(user),
    }


def progress_json(user: User) -> dict[str, Any]:
    return {"user": user_json(user), "onboarding": onboarding_json(user)}


async def current_user(request: Request, *, usable: bool = True) -> User:
    """The user behind the Bearer access token; with ``usable``, refuse inactive or locked accounts."""
    core = core_of(request)
    principal = await core.sessions.authenticate(bearer(request))
    if principal.user_id is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    async with core.store.transaction(write=False) as tx:
        user = await tx.users.get(principal.user_id)
    if user is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    if usable and not account_usable(user, datetime.now(UTC), core.settings.lockout_minutes):
        raise AuthError(ErrorCode.ACCOUNT_INACTIVE)
    return user


# --- endpoints -----------------------------------------------------------------------------------
@router.post("/auth/firebase/authenticate")
async def authenticate(request: Request, body: Annotated[AuthenticateBody | None, Body()] = None) -> JSONResponse:
    body = body or AuthenticateBody()
    token = required(body.firebaseToken, "firebaseToken")
    result = await federated.federated_login(
        core_of(request),
        context(request, SURFACE),
        token,
        preferred_language=body.preferredLanguage,
        device_info=body.deviceInfo,
    )
    return ok("Authentication successful", token_json(result.user, result.issued))


@router.post("/auth/refresh")
async def refresh(request: Request, body: Annotated[RefreshBody | None, Body()] = None) -> JSONResponse:
    body = body or RefreshBody()
    token = required(body.refreshToken, "refreshToken")
    user, issued = await federated.refresh_tokens(core_of(request), context(request, SURFACE), token)
    return ok("Token refreshed successfully", token_json(user, issued))


@router.post("/auth/logout")
async def logout_(request: Request) -> JSONResponse:
    user = await current_user(request, usable=False)
    await logout.logout_everywhere(core_of(request), context(request, SURFACE), user.id)
    return ok("Logged out successfully", None)


@router.get("/auth/me")
async def me(request: Request) -> JSONResponse:
    user = await current_user(request)
    return ok("User retrieved successfully", user_json(user))


@router.post("/auth/phone/send-otp")
async def send_otp(request: Request, body: Annotated[PhoneBody | None, Body()] = None) -> JSONResponse:
    user = await current_user(request)
    body = body or PhoneBody()
    phone = required(body.phoneNumber, "phoneNumber")
    core = core_of(request)
    sent_to = await onboarding.send_phone_code(core, context(request, SURFACE), user.id, phone)
    return ok("OTP sent successfully", {"phoneNumber": sent_to, "expiresIn": core.otp.ttl})


@router.post("/auth/phone/verify")
async def verify_phone(request: Request, body: Annotated[PhoneVerifyBody | None, Body()] = None) -> JSONResponse:
    user = await current_user(request)
    body = body or PhoneVerifyBody()
    phone = required(body.phoneNumber, "phoneNumber")
    core = core_of(request)
    if body.otp is None or (isinstance(body.otp, str) and not body.otp.strip()):
        raise AuthError(ErrorCode.INVALID_FIELD, field="otp", detail=REQUIRED["otp"])
    code = codes.normalise_code(core, body.otp, min_text_digits=4, refusal=OTP_FORMAT)
    updated = await onboarding.verify_phone(core, context(request, SURFACE), user.id, phone, code)
    return ok("Phone number verified successfully", progress_json(updated))


@router.put("/users/me/preferences")
async def preferences(request: Request, body: Annotated[PreferencesBody | None, Body()] = None) -> JSONResponse:
    user = await current_user(request)
    body = body or PreferencesBody()
    language = required(body.preferredLanguage, "preferredLanguage")
    updated = await onboarding.set_preferences(
        core_of(request), context(request, SURFACE), user.id, language, body.interests
    )
    return ok("Preferences updated successfully", progress_json(updated))


@router.put("/users/me/profile")
async def profile(request: Request, body: Annotated[ProfileBody | None, Body()] = None) -> JSONResponse:
    user = await current_user(request)
    body = body or ProfileBody()
    full_name = required(body.fullName, "fullName")
    updated = await onboarding.complete_profile(
        core_of(request),
        context(request, SURFACE),
        user.id,
        full_name=full_name,
        profile_photo_url=body.profilePhotoUrl,
        birthday=body.birthday,
        gender=body.gender,
    )
    return ok("Profile updated successfully", progress_json(updated))
