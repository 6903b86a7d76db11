"""App surface (seed 001, CONTRACT §4) under ``/app/auth``.

Every answer is ``{"success", "message", "data"}``: success carries ``message: ""`` and the data;
an error carries ``success: false``, ``data: null`` and a message localised by the ``locale``
header (then Accept-Language). Rules live in core/flows; this module only maps them.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator
from starlette.responses import Response

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows import accounts, devices, login, logout, otp_natures, passwords, pin
from authgate.core.flows.otp_natures import Nature, SendType
from authgate.core.i18n import message
from authgate.core.model import TokenType, User
from authgate.core.sessions import Issued, Principal
from authgate.surfaces.common import JSONResponse, SurfaceSpec, bearer, context, core_of, with_retry_after

PREFIX = "/app/auth"
SURFACE = "app"
router = APIRouter(prefix=PREFIX, tags=["app (seed 001)"])

# One answer for "no such account" and "wrong password" at login: no account enumeration there.
_SAME_AS = {ErrorCode.USER_NOT_FOUND: ErrorCode.INVALID_CREDENTIALS}
# The seed's statuses where they differ from the kind's default.
_STATUS = {ErrorCode.ACCOUNT_LOCKED: 423}


def render(err: AuthError, locale: str, path: str = "") -> Response:
    code = _SAME_AS.get(err.code, err.code)
    text = message(code.value, locale, field=err.field or "", retry_after=err.retry_after or "")
    if code is ErrorCode.INVALID_FIELD and err.detail and locale == "en":
        text = f"{text}: {err.detail.removeprefix('Value error, ')}"
    body = {"success": False, "message": text, "data": None}
    return with_retry_after(JSONResponse(body, status_code=_STATUS.get(code, err.status)), err)


SPEC = SurfaceSpec(SURFACE, (PREFIX,), render)


def ok(data: Any = None) -> dict[str, Any]:
    return {"success": True, "message": "", "data": data}


async def caller(request: Request, *kinds: TokenType) -> Principal:
    """The Bearer access token's principal (401 when missing, invalid, expired or revoked; refused
    when its account has been deleted, deactivated or locked since: accounts.live_user).

    Only ``PUT /password`` also takes the reset-limited token of forgot-password.
    """
    return (await caller_user(request, *kinds))[0]


async def caller_user(request: Request, *kinds: TokenType) -> tuple[Principal, User]:
    known = getattr(request.state, "app_caller", None)
    if known is not None and known[0] == kinds:  # already settled by ``bearer_first``
        return known[1]  # type: ignore[no-any-return]
    core = core_of(request)
    principal = await core.sessions.authenticate(bearer(request), kinds or TokenType.ACCESS)
    if principal.user_id is None or principal.session_id is None:
        raise AuthError(ErrorCode.TOKEN_INVALID)
    reset = principal.typ == TokenType.RESET.value
    found = principal, await accounts.live_user(core, principal.user_id, locked_ok=reset)
    request.state.app_caller = (kinds, found)
    return found


def bearer_first(*kinds: TokenType) -> Any:
    """A route dependency that settles the Bearer before the body is read: FastAPI runs
    dependencies before it validates the body, so a request without a usable token is 401, not a
    422 about its body (the handler's own ``caller`` then reuses the answer)."""

    async def settle(request: Request) -> None:
        await caller_user(request, *kinds)

    return Depends(settle)


def tokens(issued: Issued) -> dict[str, Any]:
    return {"accessToken": issued.access_token, "refreshToken": issued.refresh_token, "expiresIn": issued.expires_in}


# --- schemas (seed 001's DTOs and field names) -----------------------------------------------------
def _not_bool(value: Any) -> Any:
    """JSON ``true``/``false`` is not one of the seed's numbered values (pydantic would read it as 1/0)."""
    if isinstance(value, bool):
        raise ValueError("must be an integer")
    return value


class CheckAccountBody(BaseModel):
    loginID: str = Field(max_length=320, description="Login email, phone or username.")  # noqa: N815


class UsernameInfoBody(BaseModel):
    username: str = Field(max_length=320)


class LoginBody(BaseModel):
    loginID: str = Field(max_length=320)  # noqa: N815
    password: str = Field(max_length=4096)
    deviceToken: str = Field(max_length=4096, description="1-255 characters.")  # noqa: N815
    deviceType: int | None = Field(default=None, description="0 IOS, 1 ANDROID, 2 ANDROID OTHER.")  # noqa: N815

    _device_type = field_validator("deviceType", mode="before")(_not_bool)


class OtpBody(BaseModel):
    nature: Nature = Field(description="1 LOGIN, 2 SIGNUP, 3 RESET_PASSWORD, 4 UPDATE_EMAIL, 5 UPDATE_PHONE.")
    loginID: str = Field(max_length=320)  # noqa: N815
    sendType: SendType = Field(  # noqa: N815
        default=SendType.NONE,
        description="0 for an email or phone loginID; 1 (its email) or 2 (its phone) for a username.",
    )

    _numbered = field_validator("nature", "sendType", mode="before")(_not_bool)


class OtpVerifyBody(BaseModel):
    otp: int | str = Field(description="The code, as an integer (or a string of digits).")
    otpToken: str = Field(max_length=4096)  # noqa: N815
    deviceToken: str | None = Field(default=None, max_length=4096)  # noqa: N815
    deviceType: int | None = None  # noqa: N815

    _device_type = field_validator("deviceType", mode="before")(_not_bool)

    @field_validator("otp", mode="before")
    @classmethod
    def _integer_or_digits(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be an integer")
        return value


class SetPasswordBody(BaseModel):
    password: str | None = Field(
        default=None, max_length=4096, description="6-40 letters, digits and specials; generated when absent."
    )


class ResetPasswordBody(BaseModel):
    password: str = Field(max_length=4096)


class DeviceTokenBody(BaseModel):
    deviceToken: str = Field(max_length=4096, description="1-255 characters.")  # noqa: N815
    deviceType: int | None = Field(default=None, description="0 IOS, 1 ANDROID, 2 ANDROID OTHER.")  # noqa: N815

    _device_type = field_validator("deviceType", mode="before")(_not_bool)


class PinBody(BaseModel):
    pin: str = Field(max_length=64, description="4-6 digits, as a string.")


# --- accounts ------------------------------------------------------------------------------------
@router.post("/account/check")
async def check_account(body: CheckAccountBody, request: Request) -> dict[str, Any]:
    found = await accounts.check_account(core_of(request), context(request, SURFACE), body.loginID)
    return ok({"accountType": int(found.login.kind), "exists": True, "setPassword": found.has_password})


@router.post("/username/info")
async def username_info(body: UsernameInfoBody, request: Request) -> dict[str, Any]:
    found = await accounts.username_contacts(core_of(request), context(request, SURFACE), body.username)
    return ok({"email": found.email, "phone": found.phone})


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    _, user = await caller_user(request)
    mine = accounts.own_contacts(core_of(request), user)
    return ok({"email": mine.email, "phone": mine.phone})


# --- password login ------------------------------------------------------------------------------
@router.post("/login")
async def login_(body: LoginBody, request: Request) -> dict[str, Any]:
    devices.check_device(body.deviceToken, body.deviceType)
    result = await login.password_login(
        core_of(request),
        context(request, SURFACE),
        body.loginID,
        body.password,
        device_token=body.deviceToken,
        device_type=body.deviceType,
    )
    assert result.issued is not None
    return ok(tokens(result.issued))


# --- OTPs ----------------------------------------------------------------------------------------
@router.post("/otp")
async def send_otp(body: OtpBody, request: Request) -> dict[str, Any]:
    user_id = (await caller(request)).user_id if body.nature.needs_session else None
    ticket = await otp_natures.request_otp(
        core_of(request), context(request, SURFACE), body.nature, body.loginID, body.sendType, user_id=user_id
    )
    return ok({"otpToken": ticket.token})


async def _verify(request: Request, body: OtpVerifyBody, nature: Nature) -> otp_natures.Verified:
    devices.check_device(body.deviceToken, body.deviceType)
    user_id = (await caller(request)).user_id if nature.needs_session else None
    return await otp_natures.verify_otp(
        core_of(request),
        context(request, SURFACE),
        nature,
        body.otpToken,
        body.otp,
        user_id=user_id,
        device_token=body.deviceToken,
        device_type=body.deviceType,
    )


@router.post("/login/verify")
async def login_verify(body: OtpVerifyBody, request: Request) -> dict[str, Any]:
    done = await _verify(request, body, Nature.LOGIN)
    assert done.issued is not None
    return ok(tokens(done.issued))


@router.post("/signup/verify")
async def signup_verify(body: OtpVerifyBody, request: Request) -> dict[str, Any]:
    done = await _verify(request, body, Nature.SIGNUP)
    assert done.issued is not None
    return ok(tokens(done.issued))


@router.post("/forgot-password/verify")
async def forgot_password_verify(body: OtpVerifyBody, request: Request) -> dict[str, Any]:
    done = await _verify(request, body, Nature.RESET_PASSWORD)
    assert done.issued is not None
    # A reset-limited token (typ "reset", 10 minutes): good only for PUT /app/auth/password.
    return ok({"accessToken": done.issued.access_token, "expiresIn": done.issued.expires_in})


@router.post("/email/verify", dependencies=[bearer_first()])
async def email_verify(body: OtpVerifyBody, request: Request) -> dict[str, Any]:
    done = await _verify(request, body, Nature.UPDATE_EMAIL)
    return ok({"email": done.user.email})


@router.post("/phone/verify", dependencies=[bearer_first()])
async def phone_verify(body: OtpVerifyBody, request: Request) -> dict[str, Any]:
    done = await _verify(request, body, Nature.UPDATE_PHONE)
    mine = accounts.own_contacts(core_of(request), await accounts.live_user(core_of(request), done.user.id))
    return ok({"phone": mine.phone})


# --- passwords -----------------------------------------------------------------------------------
@router.post("/password", dependencies=[bearer_first()])
async def set_password(request: Request, body: SetPasswordBody | None = None) -> dict[str, Any]:
    principal = await caller(request)
    generated = await passwords.set_first_password(
        core_of(request), context(request, SURFACE), principal.user_id or 0, body.password if body else None
    )
    return ok({"password": generated} if generated else None)


@router.put("/password", dependencies=[bearer_first(TokenType.ACCESS, TokenType.RESET)])
async def reset_password(body: ResetPasswordBody, request: Request) -> dict[str, Any]:
    principal = await caller(request, TokenType.ACCESS, TokenType.RESET)
    reset_token = principal.typ == TokenType.RESET.value
    await passwords.reset_password(
        core_of(request),
        context(request, SURFACE),
        principal.user_id or 0,
        body.password,
        keep_session=None if reset_token else principal.session_id,
    )
    return ok()


# --- sessions and devices ------------------------------------------------------------------------
@router.delete("/logout")
async def logout_(request: Request) -> dict[str, Any]:
    principal = await caller(request)
    await logout.logout(core_of(request), context(request, SURFACE), principal.user_id, principal.session_id or "")
    return ok()


@router.put("/device-token", dependencies=[bearer_first()])
async def device_token(body: DeviceTokenBody, request: Request) -> dict[str, Any]:
    principal = await caller(request)
    await devices.set_device(
        core_of(request), context(request, SURFACE), principal.session_id or "", body.deviceToken, body.deviceType
    )
    return ok()


# --- PIN -----------------------------------------------------------------------------------------
@router.put("/pin", dependencies=[bearer_first()])
async def set_pin(body: PinBody, request: Request) -> dict[str, Any]:
    principal = await caller(request)
    await pin.set_pin(core_of(request), context(request, SURFACE), principal.user_id or 0, body.pin)
    return ok()


@router.post("/pin/verify", dependencies=[bearer_first()])
async def verify_pin(body: PinBody, request: Request) -> dict[str, Any]:
    principal = await caller(request)
    await pin.verify_pin(core_of(request), context(request, SURFACE), principal.user_id or 0, body.pin)
    return ok()
