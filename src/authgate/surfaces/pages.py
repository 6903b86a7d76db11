"""Hosted pages under ``/ui`` (docs/pages.md): sign up, log in (password or code), email
verification, forgot password, the account page; the admin console is ``authgate.web.admin``.

Server-rendered HTML (Jinja2), plain form posts, Post/Redirect/Get. The session is the form
surface's ``qt-auth`` cookie, so a user signed in here is signed in to seed 003's API and back.
Every rule is a core flow's; this module only maps forms to flows and errors to pages.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import FileResponse, RedirectResponse, Response

from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.flows import logout, pin, signup, ui_account, ui_codes, verification
from authgate.core.flows.login import password_login
from authgate.core.flows.passwords import reset_password
from authgate.core.i18n import match_locale
from authgate.core.messages import span_text
from authgate.surfaces.common import SurfaceSpec, core_of
from authgate.web import admin
from authgate.web.kit import (
    LANG_COOKIE,
    RESET_COOKIE,
    STATIC,
    PageRoute,
    check_csrf,
    clear_session_cookie,
    ctx_of,
    explain,
    form_of,
    on_error,
    open_ticket,
    page_locale,
    render_error,
    render_page,
    require_viewer,
    safe_next,
    seal_ticket,
    set_session_cookie,
    values_of,
    viewer,
)

PREFIX = "/ui"
router = APIRouter(prefix=PREFIX, tags=["hosted pages (HTML)"], route_class=PageRoute)
SPEC = SurfaceSpec("pages", (PREFIX,), render_error)

# The core's field names → this surface's inputs.
SIGNUP_FIELDS = {"email": "email", "username": "username", "password": "password",
                 "metadata.phone-number": "phone", "phone": "phone", "name": "full_name"}
LOGIN_FIELDS = {"login": "login", "password": "password"}
CODE_FIELDS = {"code": "code", "otp": "code"}
PASSWORD_FIELDS = {"password": "password", "confirm_password": "confirm_password",
                   "current_password": "current_password"}
NOTICES = ("email_verified", "phone_verified", "password", "pin", "session", "sessions", "logout",
           "reset", "code_sent", "link_sent")


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def notice(request: Request) -> str | None:
    done = request.query_params.get("done", "")
    return done if done in NOTICES else None


# --- static files and language ---------------------------------------------------------------------
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> Response:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _STATIC_TYPES or not path.is_file():
        raise AuthError(ErrorCode.ROUTE_NOT_FOUND)
    return FileResponse(path, media_type=_STATIC_TYPES[path.suffix],
                        headers={"Cache-Control": "public, max-age=3600"})


@router.get("/lang/{code}")
async def language(code: str, request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    response = redirect(safe_next(next, "/ui/login"))
    chosen = match_locale(code[:20])
    if chosen:
        response.set_cookie(LANG_COOKIE, chosen, max_age=365 * 24 * 3600, samesite="lax",
                            secure=core_of(request).settings.secure_cookies, path="/ui")
    return response


@router.get("")
@router.get("/")
async def home(request: Request) -> Response:
    return redirect("/ui/account" if await viewer(request) else "/ui/login")


# --- sign up ---------------------------------------------------------------------------------------
async def signup_retry(request: Request, err: AuthError) -> Response:
    form = await form_of(request)
    errors = explain(err, page_locale(request), fields=SIGNUP_FIELDS)
    return render_page(request, "signup.html", status=err.status, errors=errors, values=values_of(form))


@router.get("/signup")
async def signup_page(request: Request) -> Response:
    if await viewer(request):
        return redirect("/ui/account")
    return render_page(request, "signup.html")


@router.post("/signup")
@on_error(signup_retry)
async def signup_post(request: Request) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    ctx = ctx_of(request)
    full_name = form.get("full_name", "").strip()[:200]
    user, issued = await signup.signup_with_password(
        core, ctx,
        email=form.get("email", ""),
        password=form.get("password", ""),
        username=form.get("username", "").strip() or None,
        phone=form.get("phone", "").strip() or None,
        full_name=full_name or None,
    )
    assert issued is not None
    sent = await ui_account.send_first_email_code(core, ctx, user)
    response = redirect("/ui/channel/email" + ("?done=code_sent" if sent else ""))
    set_session_cookie(core, response, issued.refresh_token)
    return response


# --- log in with a password ------------------------------------------------------------------------
async def login_retry(request: Request, err: AuthError) -> Response:
    form = await form_of(request)
    errors = explain(err, page_locale(request), fields=LOGIN_FIELDS)
    if err.code in (ErrorCode.INVALID_CREDENTIALS, ErrorCode.USER_NOT_FOUND):
        errors.fields["password"] = errors.summary
    return render_page(request, "login.html", status=err.status, errors=errors, values=values_of(form),
                       next=safe_next(form.get("next")))


@router.get("/login")
async def login_page(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    if await viewer(request):
        return redirect(safe_next(next))
    return render_page(request, "login.html", next=safe_next(next), notice=notice(request))


@router.post("/login")
@on_error(login_retry)
async def login_post(request: Request) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    login_id = form.get("login", "").strip()
    if not login_id:
        raise invalid("login", "required")
    result = await password_login(core, ctx_of(request), login_id, form.get("password", ""), field="login")
    assert result.issued is not None
    response = redirect(safe_next(form.get("next")))
    set_session_cookie(core, response, result.issued.refresh_token)
    return response


@router.post("/logout")
async def logout_post(request: Request) -> Response:
    core = core_of(request)
    seen = await viewer(request)
    response = redirect("/ui/login?done=logout")
    if seen is not None:
        check_csrf(request, await form_of(request), seen, signed_in=True)
        await logout.logout(core, ctx_of(request), seen.user.id, seen.session.id)
    clear_session_cookie(core, response)
    return response


# --- one-time codes: log in by code, forgot password ------------------------------------------------
def _code_page(request: Request, purpose: str, *, ticket: str, shown_to: str | None, next: str,
               status: int = 200, errors: Any = None) -> Response:
    action = "/ui/login/code/verify" if purpose == ui_codes.LOGIN_PURPOSE else "/ui/forgot/code"
    restart = "/ui/login/code" if purpose == ui_codes.LOGIN_PURPOSE else "/ui/forgot"
    return render_page(request, "code.html", status=status, errors=errors, ticket=ticket, shown_to=shown_to,
                       action=action, restart=restart, next=next,
                       title_key="code_login_title" if purpose == ui_codes.LOGIN_PURPOSE else "forgot_title")


def _ask_retry(template: str) -> Any:
    async def retry(request: Request, err: AuthError) -> Response:
        form = await form_of(request)
        errors = explain(err, page_locale(request), fields=LOGIN_FIELDS)
        return render_page(request, template, status=err.status, errors=errors, values=values_of(form),
                           next=safe_next(form.get("next")))
    return retry


def _code_retry(purpose: str) -> Any:
    async def retry(request: Request, err: AuthError) -> Response:
        form = await form_of(request)
        errors = explain(err, page_locale(request), fields=CODE_FIELDS)
        if err.code in (ErrorCode.OTP_INVALID, ErrorCode.ACCOUNT_LOCKED, ErrorCode.ACCOUNT_INACTIVE):
            errors.fields.setdefault("code", errors.summary)
        core = core_of(request)
        try:
            data = open_ticket(core, form.get("ticket"), purpose)
        except AuthError:  # the ticket itself is bad: start again
            template = "login_code.html" if purpose == ui_codes.LOGIN_PURPOSE else "forgot.html"
            return render_page(request, template, status=err.status, errors=errors, next=safe_next(form.get("next")))
        return _code_page(request, purpose, ticket=form.get("ticket", ""), shown_to=data.get("h"),
                          next=safe_next(form.get("next")), status=err.status, errors=errors)
    return retry


async def _send(request: Request, purpose: str) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    sent = await ui_codes.send_account_code(core, ctx_of(request), form.get("login", ""), purpose)
    ticket = seal_ticket(core, p=purpose, s=sent.secret_id, h=sent.shown_to)
    return _code_page(request, purpose, ticket=ticket, shown_to=sent.shown_to, next=safe_next(form.get("next")))


@router.get("/login/code")
async def login_code_page(request: Request, next: Annotated[str | None, Query(max_length=512)] = None) -> Response:
    return render_page(request, "login_code.html", next=safe_next(next))


@router.post("/login/code")
@on_error(_ask_retry("login_code.html"))
async def login_code_send(request: Request) -> Response:
    return await _send(request, ui_codes.LOGIN_PURPOSE)


@router.post("/login/code/verify")
@on_error(_code_retry(ui_codes.LOGIN_PURPOSE))
async def login_code_verify(request: Request) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    data = open_ticket(core, form.get("ticket"), ui_codes.LOGIN_PURPOSE)
    result = await ui_codes.login_with_code(core, ctx_of(request), str(data["s"]), form.get("code", ""))
    assert result.issued is not None
    response = redirect(safe_next(form.get("next")))
    set_session_cookie(core, response, result.issued.refresh_token)
    return response


@router.get("/forgot")
async def forgot_page(request: Request) -> Response:
    return render_page(request, "forgot.html")


@router.post("/forgot")
@on_error(_ask_retry("forgot.html"))
async def forgot_send(request: Request) -> Response:
    return await _send(request, ui_codes.RESET_PURPOSE)


@router.post("/forgot/code")
@on_error(_code_retry(ui_codes.RESET_PURPOSE))
async def forgot_code(request: Request) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    data = open_ticket(core, form.get("ticket"), ui_codes.RESET_PURPOSE)
    issued = await ui_codes.open_reset(core, ctx_of(request), str(data["s"]), form.get("code", ""))
    response = redirect("/ui/forgot/password")
    response.set_cookie(RESET_COOKIE, issued.access_token, max_age=issued.expires_in, httponly=True,
                        samesite="strict", secure=core.settings.secure_cookies, path="/ui/forgot")
    return response


async def new_password_retry(request: Request, err: AuthError) -> Response:
    errors = explain(err, page_locale(request), fields=PASSWORD_FIELDS)
    if err.code in (ErrorCode.TOKEN_MISSING, ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_EXPIRED):
        return render_page(request, "forgot.html", status=err.status,
                           errors=explain(AuthError(ErrorCode.OTP_TOKEN_INVALID), page_locale(request)))
    return render_page(request, "new_password.html", status=err.status, errors=errors)


@router.get("/forgot/password")
@on_error(new_password_retry)
async def new_password_page(request: Request) -> Response:
    await ui_codes.reset_session_user(core_of(request), request.cookies.get(RESET_COOKIE))
    return render_page(request, "new_password.html")


def _matching(form: dict[str, str], name: str = "password") -> str:
    password = form.get(name, "")
    if password != form.get("confirm_password", ""):
        raise AuthError(ErrorCode.INVALID_FIELD, field="confirm_password", detail="the passwords differ")
    return password


@router.post("/forgot/password")
@on_error(new_password_retry)
async def new_password_post(request: Request) -> Response:
    core = core_of(request)
    form = await form_of(request)
    check_csrf(request, form, await viewer(request), signed_in=False)
    user_id, _ = await ui_codes.reset_session_user(core, request.cookies.get(RESET_COOKIE))
    password = _matching(form)
    await reset_password(core, ctx_of(request), user_id, password, keep_session=None)
    response = redirect("/ui/login?done=reset")
    response.delete_cookie(RESET_COOKIE, path="/ui/forgot")
    return response


# --- email verification: the link's landing page, and codes to the email or phone -----------------
async def verify_retry(request: Request, err: AuthError) -> Response:
    locale = page_locale(request)
    return render_page(request, "verified.html", status=err.status, seen=await viewer(request),
                       errors=explain(err, locale),
                       link_lifetime=span_text(locale, core_of(request).settings.verification_ttl))


@router.get("/verify")
@on_error(verify_retry)
async def verify_link(
    request: Request,
    token: Annotated[str, Query(max_length=200)] = "",
    redirect_url: Annotated[str | None, Query(alias="redirect-url", max_length=2048)] = None,
) -> Response:
    target = await verification.open_link(core_of(request), ctx_of(request), token, redirect_url)
    if target:
        return RedirectResponse(target.split("#", 1)[0] + "#email-verified", status_code=302)
    return render_page(request, "verified.html", seen=await viewer(request))


def _channel(name: str) -> str:
    if name not in ("email", "phone"):
        raise AuthError(ErrorCode.ROUTE_NOT_FOUND)
    return name


def _channel_retry() -> Any:
    async def retry(request: Request, err: AuthError) -> Response:
        seen = await require_viewer(request)
        channel = _channel(request.path_params.get("channel", "email"))
        errors = explain(err, page_locale(request), fields=CODE_FIELDS)
        return render_page(request, "channel.html", seen=seen, status=err.status, errors=errors, channel=channel)
    return retry


@router.get("/channel/{channel}")
async def channel_page(channel: str, request: Request) -> Response:
    seen = await require_viewer(request)
    return render_page(request, "channel.html", seen=seen, channel=_channel(channel), notice=notice(request))


@router.post("/channel/{channel}")
@on_error(_channel_retry())
async def channel_confirm(channel: str, request: Request) -> Response:
    seen = await require_viewer(request)
    form = await form_of(request)
    check_csrf(request, form, seen, signed_in=True)
    await ui_account.confirm_channel(core_of(request), ctx_of(request), seen.user.id, form.get("code", ""),
                                     _channel(channel))
    return redirect(f"/ui/account?done={channel}_verified")


@router.post("/channel/{channel}/send")
@on_error(_channel_retry())
async def channel_send(channel: str, request: Request) -> Response:
    seen = await require_viewer(request)
    check_csrf(request, await form_of(request), seen, signed_in=True)
    await ui_account.send_channel_code(core_of(request), ctx_of(request), seen.user, _channel(channel))
    return redirect(f"/ui/channel/{channel}?done=code_sent")


@router.post("/channel/email/link")
@on_error(_channel_retry())
async def channel_link(request: Request) -> Response:
    seen = await require_viewer(request)
    check_csrf(request, await form_of(request), seen, signed_in=True)
    core = core_of(request)
    if not core.messenger.has_email:
        raise AuthError(ErrorCode.NO_CHANNEL)
    await verification.send_link(core, ctx_of(request), seen.user, "/ui/verify", None)
    return redirect("/ui/channel/email?done=link_sent")


# --- the account page ------------------------------------------------------------------------------
async def _account(request: Request, *, status: int = 200, errors: Any = None) -> Response:
    seen = await require_viewer(request)
    sessions = await ui_account.active_sessions(core_of(request), seen.user.id)
    return render_page(request, "account.html", seen=seen, status=status, errors=errors, sessions=sessions,
                       notice=notice(request), is_admin=admin.is_admin(seen.user))


def _account_retry(form_name: str) -> Any:
    async def retry(request: Request, err: AuthError) -> Response:
        if err.code is ErrorCode.NOT_FOUND:
            raise err
        errors = explain(err, page_locale(request), form=form_name,
                         fields={**PASSWORD_FIELDS, "pin": "pin"})
        return await _account(request, status=err.status, errors=errors)
    return retry


@router.get("/account")
async def account_page(request: Request) -> Response:
    return await _account(request)


@router.post("/account/password")
@on_error(_account_retry("password"))
async def account_password(request: Request) -> Response:
    seen = await require_viewer(request)
    form = await form_of(request)
    check_csrf(request, form, seen, signed_in=True)
    new = _matching(form)
    await ui_account.change_password(core_of(request), ctx_of(request), seen.user, seen.session.id,
                                     form.get("current_password", ""), new)
    return redirect("/ui/account?done=password")


@router.post("/account/pin")
@on_error(_account_retry("pin"))
async def account_pin(request: Request) -> Response:
    seen = await require_viewer(request)
    form = await form_of(request)
    check_csrf(request, form, seen, signed_in=True)
    await pin.set_pin(core_of(request), ctx_of(request), seen.user.id, form.get("pin", "").strip())
    return redirect("/ui/account?done=pin")


@router.post("/account/sessions/{session_id}/revoke")
@on_error(_account_retry("sessions"))
async def account_revoke(session_id: str, request: Request) -> Response:
    core = core_of(request)
    seen = await require_viewer(request)
    check_csrf(request, await form_of(request), seen, signed_in=True)
    await ui_account.revoke_own_session(core, ctx_of(request), seen.user.id, session_id[:64])
    if session_id == seen.session.id:
        response = redirect("/ui/login?done=logout")
        clear_session_cookie(core, response)
        return response
    return redirect("/ui/account?done=session")


@router.post("/account/sessions/revoke-others")
@on_error(_account_retry("sessions"))
async def account_revoke_others(request: Request) -> Response:
    seen = await require_viewer(request)
    check_csrf(request, await form_of(request), seen, signed_in=True)
    await ui_account.revoke_other_sessions(core_of(request), ctx_of(request), seen.user.id, seen.session.id)
    return redirect("/ui/account?done=sessions")


router.include_router(admin.router)
