"""Form surface (seed 003, CONTRACT §3) under ``/api/auth/v1``. Errors are ``{"message": "..."}``.

A session travels as the ``qt-auth`` cookie (desktop) or the ``x-qt-auth`` header (mobile); both
carry the same opaque session token. A state-changing request authenticated by the cookie must
carry ``x-csrf-token`` (from ``GET /api/auth/csrf-token``); the header cannot be sent cross-site.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import RedirectResponse, Response

from authgate.core.errors import AuthError, ErrorCode, Kind
from authgate.core.flows import codes, login, logout, signup, verification
from authgate.core.identifiers import normalise_email
from authgate.core.model import Session, User
from authgate.core.service import Core
from authgate.surfaces.common import JSONResponse, SurfaceSpec, context, core_of, text_for, with_retry_after

PREFIX = "/api/auth/v1"
router = APIRouter(prefix=PREFIX, tags=["form (seed 003)"])

SIGNUP_FAILED = "Something went wrong. User could not be created"
OTP_NOT_SENT = "Something went wrong. OTP was not sent through email or sms."
LINK_NOT_SENT = "Something went wrong. verification link was not sent through email."

# Seed 003's own messages, by the stable error code, and for some codes by the endpoint.
_BY_CODE = {
    ErrorCode.USER_EXISTS: "User Already exists",
    ErrorCode.INVALID_CREDENTIALS: "Invalid username/password",
    ErrorCode.USER_NOT_FOUND: "Invalid username/password",
    ErrorCode.ACCOUNT_INACTIVE: "User login failed",
    ErrorCode.ACCOUNT_LOCKED: "User login failed",
}
_SEND_FAILURES = (ErrorCode.NO_CHANNEL, ErrorCode.MESSAGE_NOT_SENT)


def render(err: AuthError, locale: str, path: str = "") -> Response:
    status = err.status
    msg = _BY_CODE.get(err.code) or text_for(err, locale)
    if err.code is ErrorCode.INVALID_FIELD and err.detail and locale == "en":  # the reasons are English
        msg = f"{msg}: {err.detail}"
    if path.endswith("/signup") and err.status >= 500:
        msg = SIGNUP_FAILED
    elif path.endswith("/users/send-otp") and err.code in _SEND_FAILURES:
        msg, status = OTP_NOT_SENT, 500
    elif path.endswith("/users/send-verification-link") and err.code in _SEND_FAILURES:
        msg, status = LINK_NOT_SENT, 500
    body: dict[str, Any] = {"message": msg}
    if err.field and err.kind is Kind.INVALID:
        body["field"] = err.field
    return with_retry_after(JSONResponse(body, status_code=status), err)


SPEC = SurfaceSpec("form", (PREFIX,), render)


# --- schemas (seed 003's field names) --------------------------------------------------------------
class Metadata(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="allow")
    phone_number: str | None = Field(default=None, alias="phone-number", max_length=32)


class SignupBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    email: str = Field(max_length=320)
    name: str | None = Field(default=None, max_length=200)
    username: str | None = Field(default=None, max_length=320)
    metadata: Metadata | None = None
    password: str = Field(max_length=1024)
    dont_login: bool = Field(default=False, alias="dont-login")
    # Control characters in the name: 422 from core/flows/signup.py.


class LoginBody(BaseModel):
    username: str | None = Field(default=None, max_length=320)
    email: str | None = Field(default=None, max_length=320)
    password: str = Field(max_length=4096)
    # NUL and other control characters in the login ID: 422 from core/identifiers.classify.


class EmailBody(BaseModel):
    email: str = Field(max_length=320)


class LinkBody(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    email: str = Field(max_length=320)
    redirect_url: str | None = Field(default=None, alias="redirect-url", max_length=2048)


class VerificationTarget(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    verification_status: Literal["email", "phone"] = Field(alias="verification-status")


class OtpUpdateBody(BaseModel):
    otp: Any  # the seed sends a string; a number is accepted (core/flows/codes.normalise_code)
    user: VerificationTarget


# --- rendering ---------------------------------------------------------------------------------
def user_json(user: User) -> dict[str, Any]:
    return {
        "id": str(user.id),
        "username": user.username,
        "email": user.email,
        "name": user.full_name,
        "metadata": {"phone-number": user.phone or ""},
        "emailVerified": user.email_verified,
        "phoneVerified": user.phone_verified,
        "createdAt": user.created_at.isoformat().replace("+00:00", "Z") if user.created_at else None,
    }


def _cookie_attributes(core: Core) -> dict[str, Any]:
    """The session cookie's attributes (CONTRACT §3: HttpOnly, SameSite=Lax, Secure unless dev),
    the same on the Set-Cookie that clears it, so that one names the same cookie (Path, Domain)
    and no qt-auth header is ever sent without them."""
    s = core.settings
    return {"httponly": True, "samesite": "lax", "secure": s.secure_cookies, "domain": s.cookie_domain, "path": "/"}


def session_response(core: Core, user: User, token: str | None, status: int = 201) -> JSONResponse:
    response = JSONResponse({"user": user_json(user)}, status_code=status)
    if token:
        s = core.settings
        response.set_cookie(s.cookie_name, token, max_age=s.refresh_ttl, **_cookie_attributes(core))
        response.headers["x-qt-auth"] = token
    return response


async def current_session(request: Request, *, changes_state: bool) -> tuple[Session, User]:
    """The session behind ``x-qt-auth`` or the ``qt-auth`` cookie; cookies need CSRF to change state."""
    core = core_of(request)
    # An empty x-qt-auth is no header: the session then comes from the cookie, and so needs CSRF.
    header = request.headers.get("x-qt-auth") or None
    token = header or request.cookies.get(core.settings.cookie_name)
    session, user = await core.sessions.from_secret(token)
    if header is None and changes_state:
        if not core.keyed.csrf_valid(request.headers.get("x-csrf-token"), session.id):
            raise AuthError(ErrorCode.CSRF_INVALID)
    return session, user


# --- endpoints ---------------------------------------------------------------------------------
@router.post("/signup", status_code=201)
async def signup_(body: SignupBody, request: Request) -> JSONResponse:
    core = core_of(request)
    phone = body.metadata.phone_number if body.metadata else None
    user, issued = await signup.signup_with_password(
        core,
        context(request, "form"),
        email=body.email,
        password=body.password,
        username=body.username,
        phone=phone or None,
        full_name=body.name,
        start_session=not body.dont_login,
    )
    return session_response(core, user, issued.refresh_token if issued else None)


@router.post("/login", status_code=201)
async def login_(body: LoginBody, request: Request) -> JSONResponse:
    core = core_of(request)
    login_id = (body.email or "").strip() or (body.username or "").strip()
    if not login_id:
        raise AuthError(ErrorCode.INVALID_FIELD, field="username", detail="username or email is required")
    field = "email" if (body.email or "").strip() else "username"
    result = await login.password_login(core, context(request, "form"), login_id, body.password, field=field)
    assert result.issued is not None
    return session_response(core, result.user, result.issued.refresh_token)


@router.post("/logout")
async def logout_(request: Request) -> JSONResponse:
    core = core_of(request)
    session, user = await current_session(request, changes_state=True)
    await logout.logout(core, context(request, "form"), user.id, session.id)
    response = JSONResponse({"message": "Logged out successfully"})
    response.delete_cookie(core.settings.cookie_name, **_cookie_attributes(core))
    return response


@router.get("/users/me")
async def me(request: Request) -> dict[str, Any]:
    _, user = await current_session(request, changes_state=False)
    return {"user": user_json(user)}


@router.post("/users/send-otp")
async def send_otp(body: EmailBody, request: Request) -> dict[str, str]:
    core = core_of(request)
    email = normalise_email(body.email)
    await codes.send_channel_code_to(core, context(request, "form"), email, core.settings.form_otp_channels)
    return {"message": "OTP was sent successfully"}


@router.post("/users/update-with-otp")
async def update_with_otp(body: OtpUpdateBody, request: Request) -> dict[str, Any]:
    core = core_of(request)
    _, user = await current_session(request, changes_state=True)
    code = codes.normalise_code(core, body.otp, min_text_digits=4, refusal="must be 4-8 digits")
    updated = await codes.confirm_channel(
        core, context(request, "form"), user.id, code, body.user.verification_status
    )
    return {"message": "User has been updated successfully", "user": user_json(updated)}


@router.post("/users/send-verification-link")
async def send_verification_link(body: LinkBody, request: Request) -> dict[str, str]:
    email = normalise_email(body.email)
    await verification.send_link_to(
        core_of(request), context(request, "form"), email, f"{PREFIX}/users/verify", body.redirect_url
    )
    return {"message": "verification link was sent successfully, via email"}


@router.get("/users/verify", response_model=None)
async def verify(
    request: Request,
    token: Annotated[str, Query()] = "",  # any length: open_link answers 400 past 200
    redirect_url: Annotated[str | None, Query(alias="redirect-url", max_length=2048)] = None,
) -> Response:
    core = core_of(request)
    redirect = await verification.open_link(core, context(request, "form"), token, redirect_url)
    if redirect:
        return RedirectResponse(redirect.split("#", 1)[0] + "#email-verified", status_code=302)
    return JSONResponse({"message": "User has been verified."})
