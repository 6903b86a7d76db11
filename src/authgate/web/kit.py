"""What every hosted page shares: templates, security headers, the page session, CSRF, locale,
form parsing and the one place where a core error becomes an inline form error.

CSRF (docs/pages.md): a signed-in form carries ``core.keyed.csrf_token(session id)``; an anonymous
form (sign up, log in, forgot password) carries the same HMAC over a random pre-session id kept in
the ``qt-ui-pre`` cookie (HttpOnly, SameSite=Lax). A cross-site page can neither read that cookie
nor compute the HMAC without the server key, so it cannot forge a form post, not even a login.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.responses import HTMLResponse, RedirectResponse, Response

from authgate.core import ids
from authgate.core.errors import AuthError, ErrorCode, Kind
from authgate.core.i18n import LOCALES, match_locale, message, negotiate
from authgate.core.model import RequestContext, Role, Session, User
from authgate.core.service import Core
from authgate.surfaces.common import context, core_of
from authgate.web.strings import LANGUAGE_NAMES, translate

WEB = Path(__file__).parent
TEMPLATES = WEB / "templates"
STATIC = WEB / "static"
SURFACE = "pages"

PRE_COOKIE = "qt-ui-pre"
LANG_COOKIE = "qt-ui-lang"
RESET_COOKIE = "qt-ui-reset"
_PRE_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

# No inline script or style anywhere: one stylesheet and one script, both served from /ui/static.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}

env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def harden(response: Response, *, cache: bool = False) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not cache:
        response.headers["Cache-Control"] = "no-store"
    return response


# --- locale ----------------------------------------------------------------------------------------
def page_locale(request: Request) -> str:
    """The language chosen on the page (cookie), then the ``locale`` header, then Accept-Language."""
    chosen = match_locale(request.cookies.get(LANG_COOKIE, "")[:20])
    return chosen or negotiate(request.headers.get("locale"), request.headers.get("accept-language"))


def ctx_of(request: Request) -> RequestContext:
    return replace(context(request, SURFACE), locale=page_locale(request))


# --- the page session ------------------------------------------------------------------------------
@dataclass
class Viewer:
    session: Session
    user: User


class LoginRequired(Exception):
    """Raised by pages that need a session; answered with a redirect to the login page."""


async def viewer(request: Request) -> Viewer | None:
    """The live session behind the ``qt-auth`` cookie; None for anonymous visitors (and for the
    sessions of accounts that are locked or deactivated since)."""
    if hasattr(request.state, "viewer"):
        return request.state.viewer  # type: ignore[no-any-return]
    core = core_of(request)
    found = None
    token = request.cookies.get(core.settings.cookie_name)
    if token:
        try:
            session, user = await core.sessions.from_secret(token)
        except AuthError as exc:
            if exc.kind is not Kind.UNAUTHENTICATED:
                raise
        else:  # from_secret refuses the sessions of accounts deactivated or locked since
            found = Viewer(session, user)
    request.state.viewer = found
    return found


async def require_viewer(request: Request) -> Viewer:
    found = await viewer(request)
    if found is None:
        raise LoginRequired
    return found


def safe_next(value: str | None, default: str = "/ui/account") -> str:
    """Only a path of this site's pages: never an open redirect."""
    if not value or len(value) > 512:
        return default
    if not value.startswith("/ui/") or value.startswith("//") or "\\" in value or any(c in value for c in "\r\n"):
        return default
    return value


def login_redirect(request: Request) -> str:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return "/ui/login?next=" + quote(safe_next(here), safe="/")


def set_session_cookie(core: Core, response: Response, token: str) -> None:
    """The form surface's session cookie (CONTRACT §3): HttpOnly, SameSite=Lax, Secure unless dev."""
    s = core.settings
    response.set_cookie(
        s.cookie_name, token, max_age=s.refresh_ttl, httponly=True, samesite="lax",
        secure=s.secure_cookies, domain=s.cookie_domain, path="/",
    )


def clear_session_cookie(core: Core, response: Response) -> None:
    response.delete_cookie(
        core.settings.cookie_name, path="/", domain=core.settings.cookie_domain,
        secure=core.settings.secure_cookies, httponly=True, samesite="lax",
    )


# --- CSRF ------------------------------------------------------------------------------------------
def _pre_id(request: Request) -> str:
    existing = request.cookies.get(PRE_COOKIE, "")
    if _PRE_RE.fullmatch(existing):
        return existing
    if not getattr(request.state, "new_pre", None):
        request.state.new_pre = ids.token(24)
    return request.state.new_pre  # type: ignore[no-any-return]


def csrf_token(request: Request, seen: Viewer | None) -> str:
    core = core_of(request)
    bound = seen.session.id if seen else "pre:" + _pre_id(request)
    return core.keyed.csrf_token(bound, core.settings.csrf_ttl)


def check_csrf(request: Request, form: dict[str, str], seen: Viewer | None, *, signed_in: bool) -> None:
    """A signed-in form needs the session's token; an anonymous one the pre-session's (or the session's)."""
    keyed = core_of(request).keyed
    token = form.get("csrf")
    if seen is not None and keyed.csrf_valid(token, seen.session.id):
        return
    pre = request.cookies.get(PRE_COOKIE, "")
    if not signed_in and _PRE_RE.fullmatch(pre) and keyed.csrf_valid(token, "pre:" + pre):
        return
    raise AuthError(ErrorCode.CSRF_INVALID)


# --- forms -----------------------------------------------------------------------------------------
async def form_of(request: Request) -> dict[str, str]:
    """The posted fields (url-encoded or multipart, files refused), each cut to 4 KiB; cached."""
    cached = getattr(request.state, "form", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    data = await request.form(max_files=0, max_fields=64)
    out: dict[str, str] = {}
    for key, value in data.multi_items():
        if isinstance(value, str) and key not in out:
            out[key[:64]] = value[:4096]
    request.state.form = out
    return out


async def form_with_lists(request: Request) -> tuple[dict[str, str], dict[str, list[str]]]:
    data = await request.form(max_files=0, max_fields=64)
    lists: dict[str, list[str]] = {}
    for key, value in data.multi_items():
        if isinstance(value, str):
            lists.setdefault(key[:64], []).append(value[:4096])
    single = {k: v[0] for k, v in lists.items()}
    request.state.form = single
    request.state.form_multi = lists
    return single, lists


# --- errors ----------------------------------------------------------------------------------------
@dataclass
class FormErrors:
    """What went wrong with a form: one summary message and, when a field is to blame, its message."""

    form: str
    summary: str
    fields: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None


# Checks that belong to the page itself, not to a core rule: their own localised words.
PAGE_ONLY_FIELDS = {"confirm_password": "password_mismatch"}
SAFE_VALUES = ("email", "username", "phone", "full_name", "login", "q", "name", "min_versions")


def explain(
    err: AuthError, locale: str, *, form: str = "main", fields: dict[str, str] | None = None
) -> FormErrors:
    """A friendly, localised account of ``err``; ``fields`` maps the core's field names to inputs."""
    code = err.code
    if code is ErrorCode.USER_NOT_FOUND:  # never say whether the account exists
        code = ErrorCode.INVALID_CREDENTIALS
    input_name = (fields or {}).get(err.field or "", err.field if err.field in (fields or {}).values() else None)
    label = translate(locale, f"label_{input_name}") if input_name else (err.field or "")
    if code is ErrorCode.INVALID_FIELD and input_name in PAGE_ONLY_FIELDS:
        text = translate(locale, PAGE_ONLY_FIELDS[input_name])
    elif code is ErrorCode.INVALID_FIELD:
        text = message(code.value, locale, field=label)
        if err.detail and locale == "en":  # the core's details are English only
            text = f"{text}: {err.detail}"
    elif code is ErrorCode.RATE_LIMITED:
        text = message(code.value, locale, retry_after=err.retry_after or 1)
    else:
        text = message(code.value, locale, field=label, retry_after=err.retry_after or "")
    out = FormErrors(form, text, retry_after=err.retry_after)
    if input_name:
        out.fields[input_name] = text
    return out


def values_of(form: dict[str, str]) -> dict[str, str]:
    """What may be put back into a re-rendered form: never a password, code or PIN."""
    return {k: v for k, v in form.items() if k in SAFE_VALUES}


Retry = Callable[[Request, AuthError], Awaitable[Response]]
RETRY: dict[Any, Retry] = {}


def on_error(retry: Retry) -> Callable[[Any], Any]:
    """Mark a POST endpoint: a core error re-renders its form (via ``retry``) instead of an error page."""

    def mark(endpoint: Any) -> Any:
        RETRY[endpoint] = retry
        return endpoint

    return mark


class PageRoute(APIRoute):
    """Every page response gets the security headers; ``LoginRequired`` becomes a redirect to the
    login page; a core error on a form post re-renders that form with the error next to its field."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            try:
                response = await inner(request)
            except LoginRequired:
                response = RedirectResponse(login_redirect(request), status_code=303)
            except AuthError as err:
                retry = RETRY.get(endpoint)
                if retry is None:
                    raise
                response = await retry(request, err)
                if err.retry_after:
                    response.headers["Retry-After"] = str(err.retry_after)
            return harden(response, cache=request.url.path.startswith("/ui/static/"))

        return handler


# --- rendering -------------------------------------------------------------------------------------
def _lang_links(request: Request) -> list[dict[str, str]]:
    here = safe_next(request.url.path + (f"?{request.url.query}" if request.url.query else ""), "/ui/login")
    if request.method != "GET":
        here = safe_next(request.url.path, "/ui/login")
    return [
        {"code": code, "name": LANGUAGE_NAMES[code], "href": f"/ui/lang/{code}?next={quote(here, safe='/')}"}
        for code in LOCALES
    ]


def render_page(
    request: Request,
    template: str,
    *,
    seen: Viewer | None = None,
    status: int = 200,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
    **data: Any,
) -> HTMLResponse:
    core = core_of(request)
    locale = page_locale(request)

    def t(key: str, **params: Any) -> str:
        return translate(locale, key, **params)

    html = env.get_template(template).render(
        t=t,
        locale=locale,
        languages=_lang_links(request),
        viewer=seen,
        csrf=csrf_token(request, seen),
        errors=errors,
        values=values or {},
        policy=core.policy,
        otp_length=core.settings.otp_length,
        otp_minutes=max(1, core.otp.ttl // 60),
        path=request.url.path,
        **data,
    )
    response = HTMLResponse(html, status_code=status)
    new_pre = getattr(request.state, "new_pre", None)
    if new_pre:
        response.set_cookie(
            PRE_COOKIE, new_pre, max_age=24 * 3600, httponly=True, samesite="lax",
            secure=core.settings.secure_cookies, path="/ui",
        )
    harden(response)
    return response


def render_error(err: AuthError, locale: str, path: str = "") -> Response:
    """The surface's renderer: an HTML error page with the error's status (and Retry-After)."""

    def t(key: str, **params: Any) -> str:
        return translate(locale, key, **params)

    status = err.status
    text = explain(err, locale).summary
    title_key = {404: "error_not_found", 403: "error_forbidden", 429: "error_rate_limited"}.get(status, "error_title")
    if err.code is ErrorCode.CSRF_INVALID:
        title_key = "error_expired"
    html = env.get_template("error.html").render(
        t=t, locale=locale, languages=[], viewer=None, csrf="", errors=None, values={},
        title=t(title_key), message=text, status=status, retry_after=err.retry_after, path=path,
    )
    response = HTMLResponse(html, status_code=status)
    if err.retry_after:
        response.headers["Retry-After"] = str(err.retry_after)
    return harden(response)


# --- small helpers for templates ------------------------------------------------------------------
def device_label(session: Session, unknown: str) -> str:
    """A short device description from the session's device info or its user agent."""
    if session.device_info:
        return session.device_info[:80]
    ua = session.user_agent or ""
    if not ua:
        return unknown
    browser = next(
        (name for token, name in (
            ("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
            ("Safari/", "Safari"), ("curl/", "curl"), ("python-httpx", "httpx"),
        ) if token in ua),
        None,
    )
    system = next(
        (name for token, name in (
            ("Android", "Android"), ("iPhone", "iOS"), ("iPad", "iPadOS"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"),
        ) if token in ua),
        None,
    )
    if browser and system:
        return f"{browser} · {system}"
    return browser or system or ua[:60]


def when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "—"


def seal_ticket(core: Core, **data: Any) -> str:
    """A tamper-proof hidden field (AES-GCM under the server key) carrying an OTP flow's state."""
    data["exp"] = int(time.time()) + core.otp.ttl + 60
    return core.keyed.seal(json.dumps(data))


def open_ticket(core: Core, sealed: str | None, purpose: str) -> dict[str, Any]:
    opened = core.keyed.unseal(sealed or "") if sealed and len(sealed) < 2048 else None
    try:
        data = json.loads(opened) if opened else None
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("p") != purpose or int(data.get("exp", 0)) < time.time():
        raise AuthError(ErrorCode.OTP_TOKEN_INVALID)
    return data


def can_admin(user: User) -> bool:
    return user.is_active and user.has_role_at_least(Role.ADMIN)


env.globals.update(device_label=device_label, when=when, can_admin=can_admin)
