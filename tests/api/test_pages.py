"""Hosted pages under /ui (docs/pages.md): security headers, CSRF, sessions, every flow's pages."""

from __future__ import annotations

import html
import re

import httpx
import pytest

from authgate.core.flows.admin import create_user_cli
from authgate.core.i18n import LOCALES
from authgate.web import strings
from tests.conftest import Harness

PASSWORD = "Corr3ct-Horse"
NEW_PASSWORD = "N3w-Battery-Staple"


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no csrf field"
    return html.unescape(match.group(1))


def hidden(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match, f"no {name} field"
    return html.unescape(match.group(1))


async def post_form(h: Harness, path: str, data: dict[str, str], *, page: str | None = None) -> object:
    """POST a form the way a browser does, with the CSRF token of the page it came from."""
    if page is None:
        page = (await h.client.get(path)).text
    return await h.client.post(path, data={"csrf": csrf_of(page), **data})


async def signup(h: Harness, email: str = "ann@example.com", password: str = PASSWORD, **extra: str) -> object:
    return await post_form(h, "/ui/signup", {"email": email, "password": password, **extra})


async def api_login(h: Harness, **headers: str) -> str:
    """Log the same user in elsewhere (seed 003's API from another device); its session token."""
    async with httpx.AsyncClient(transport=h.client._transport, base_url="http://testserver") as device:
        r = await device.post("/api/auth/v1/login", json={"email": "ann@example.com", "password": PASSWORD},
                              headers=headers)
    assert r.status_code == 201
    return r.headers["x-qt-auth"]


async def login(h: Harness, login_id: str = "ann@example.com", password: str = PASSWORD) -> object:
    return await post_form(h, "/ui/login", {"login": login_id, "password": password})


# --- headers, rendering ----------------------------------------------------------------------------
async def test_pages_send_strict_security_headers_and_no_inline_code(h: Harness) -> None:
    for path in ("/ui/login", "/ui/signup", "/ui/forgot", "/ui/login/code", "/ui/nowhere"):
        r = await h.client.get(path)
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "style-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        # no inline script or style: every <script> has a src, no style attributes or blocks
        assert not re.search(r"<script(?![^>]*\bsrc=)", r.text)
        assert " style=" not in r.text and "<style" not in r.text
    assert (await h.client.get("/ui/nowhere")).status_code == 404
    css = await h.client.get("/ui/static/pages.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await h.client.get("/ui/static/..%2Fkit.py")).status_code == 404
    assert (await h.client.get("/ui/static/kit.py")).status_code == 404


async def test_fields_have_labels_and_errors_are_tied_to_them(h: Harness) -> None:
    page = (await h.client.get("/ui/signup")).text
    for name in ("email", "password", "username", "phone"):
        assert f'<label for="f-{name}">' in page and f'id="f-{name}"' in page
    r = await signup(h, email="not-an-email")
    assert r.status_code == 422
    assert 'aria-describedby="f-email-error"' in r.text and 'aria-invalid="true"' in r.text
    assert 'id="f-email-error"' in r.text and 'role="alert"' in r.text
    assert 'value="not-an-email"' in r.text  # what was typed is kept, never the password
    assert PASSWORD not in r.text


async def test_strings_exist_in_every_language() -> None:
    for key in strings.all_keys():
        texts = [strings.translate(locale, key) for locale in LOCALES]
        assert all(texts), key


async def test_pages_follow_the_language_choice(h: Harness) -> None:
    r = await h.client.get("/ui/login", headers={"accept-language": "fr-FR,fr;q=0.9"})
    assert '<html lang="fr">' in r.text and "Se connecter" in r.text
    r = await h.client.get("/ui/lang/zh-Hant?next=/ui/login")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login"
    r = await h.client.get("/ui/login")
    assert '<html lang="zh-Hant">' in r.text and "登入" in r.text
    r = await login(h, "nobody@example.com", "whatever-1")
    assert r.status_code == 401 and "用戶名或密碼錯誤" in r.text  # the core's message, localised
    # the language switch never redirects off-site
    r = await h.client.get("/ui/lang/sw?next=https://evil.example/")
    assert r.headers["location"] == "/ui/login"


# --- CSRF ------------------------------------------------------------------------------------------
async def test_forms_refuse_posts_without_a_valid_csrf_token(h: Harness) -> None:
    await h.client.get("/ui/signup")  # the pre-session cookie exists, only the token is missing
    r = await h.client.post("/ui/signup", data={"email": "eve@example.com", "password": PASSWORD})
    assert r.status_code == 403
    r = await h.client.post("/ui/signup", data={"email": "eve@example.com", "password": PASSWORD, "csrf": "1.2"})
    assert r.status_code == 403
    async with h.core.store.transaction(write=False) as tx:
        assert await tx.users.get_by_email("eve@example.com") is None
    # a token minted for another browser (another pre-session cookie) is refused too
    page = (await h.client.get("/ui/login")).text
    h.client.cookies.delete("qt-ui-pre")
    await h.client.get("/ui/login")
    r = await h.client.post("/ui/login", data={"csrf": csrf_of(page), "login": "x@example.com", "password": "y"})
    assert r.status_code == 403


async def test_signed_in_forms_need_the_sessions_token(h: Harness) -> None:
    assert (await signup(h)).status_code == 303
    account = (await h.client.get("/ui/account")).text
    anon_token = csrf_of((await h.client.get("/ui/forgot")).text)
    r = await h.client.post("/ui/account/pin", data={"csrf": anon_token, "pin": "1234"})
    assert r.status_code == 403
    r = await h.client.post("/ui/account/pin", data={"csrf": csrf_of(account), "pin": "1234"})
    assert r.status_code == 303


# --- sign up, verify, log in -----------------------------------------------------------------------
async def test_signup_sets_the_session_cookie_and_sends_an_email_code(hdb: Harness) -> None:
    r = await signup(hdb, full_name="Ann Example", phone="+85251234567")
    assert r.status_code == 303 and r.headers["location"] == "/ui/channel/email?done=code_sent"
    cookie = next(c for c in r.headers.get_list("set-cookie") if c.startswith("qt-auth="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert hdb.outbox[-1][0] == "ann@example.com"
    page = (await hdb.client.get("/ui/channel/email")).text
    r = await hdb.client.post("/ui/channel/email", data={"csrf": csrf_of(page), "code": "0000" if hdb.last_code() != "0000" else "1111"})
    assert r.status_code == 401 and 'id="f-code-error"' in r.text
    r = await hdb.client.post("/ui/channel/email", data={"csrf": csrf_of(page), "code": hdb.last_code()})
    assert r.status_code == 303 and r.headers["location"] == "/ui/account?done=email_verified"
    account = await hdb.client.get("/ui/account?done=email_verified")
    assert "Your email is verified." in account.text
    assert re.search(r'id="channel-email-status">\s*<span class="badge ok">Verified', account.text)
    # the session is the form surface's: seed 003's API sees the same user
    me = await hdb.client.get("/api/auth/v1/users/me")
    assert me.json()["user"]["emailVerified"] is True and me.json()["user"]["name"] == "Ann Example"


async def test_signup_conflicts_and_policy_are_shown_on_the_form(h: Harness) -> None:
    await signup(h)
    h.client.cookies.clear()
    r = await signup(h)
    assert r.status_code == 409 and "User already exists" in r.text
    r = await signup(h, email="bob@example.com", password="password1")
    assert r.status_code == 422 and 'id="f-password-error"' in r.text and "too common" in r.text


async def test_an_sms_code_does_not_verify_the_email(make_harness) -> None:
    h = await make_harness(limit_otp_send_purpose="5/minute")  # sign-up already sent an email code
    await signup(h, phone="+85251234567")
    page = (await h.client.get("/ui/channel/phone")).text
    r = await h.client.post("/ui/channel/phone/send", data={"csrf": csrf_of(page)})
    assert r.status_code == 303
    sms_code = re.search(r"\b(\d{4})\b", h.sms_outbox[-1][1]).group(1)
    r = await h.client.post("/ui/channel/email", data={"csrf": csrf_of(page), "code": sms_code})
    assert r.status_code == 401
    r = await h.client.post("/ui/channel/phone", data={"csrf": csrf_of(page), "code": sms_code})
    assert r.status_code == 303 and r.headers["location"] == "/ui/account?done=phone_verified"


async def test_verification_link_lands_on_a_page(h: Harness) -> None:
    await signup(h)
    page = (await h.client.get("/ui/channel/email")).text
    r = await h.client.post("/ui/channel/email/link", data={"csrf": csrf_of(page)})
    assert r.status_code == 303
    link = re.search(r"(http://testserver/ui/verify\?\S+)", h.outbox[-1][2]).group(1)
    r = await h.client.get(link.replace("http://testserver", ""))
    assert r.status_code == 200 and "Email verified" in r.text
    r = await h.client.get(link.replace("http://testserver", ""))  # single use
    assert r.status_code == 400 and "We could not verify your email" in r.text
    assert r.headers["x-frame-options"] == "DENY"


async def test_login_by_password_and_its_errors(hdb: Harness) -> None:
    await signup(hdb)
    hdb.client.cookies.clear()
    r = await login(hdb, password="wrong-pass-1")
    assert r.status_code == 401 and "Invalid username or password" in r.text
    assert 'aria-describedby="f-password-error"' in r.text
    r = await login(hdb, "nobody@example.com", "wrong-pass-1")  # unknown: the same words
    assert r.status_code == 401 and "Invalid username or password" in r.text
    r = await post_form(hdb, "/ui/login", {"login": "ann@example.com", "password": PASSWORD,
                                            "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/account"
    hdb.client.cookies.delete("qt-auth")
    r = await post_form(hdb, "/ui/login?next=/ui/account", {"login": "ann", "password": PASSWORD,
                                                              "next": "/ui/channel/email"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/channel/email"


async def test_rate_limit_shows_the_wait(make_harness) -> None:
    h = await make_harness(limit_failed_login="2/hour")
    for _ in range(2):
        assert (await login(h, "nobody@example.com", "wrong-pass-1")).status_code == 401
    r = await login(h, "nobody@example.com", "wrong-pass-1")
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert f"try again in {wait} seconds" in r.text and f'data-retry-after="{wait}"' in r.text


async def test_login_by_code(h: Harness) -> None:
    await signup(h)
    h.client.cookies.clear()
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ann@example.com"})
    assert r.status_code == 200 and "an*****@*****.com" in r.text
    ticket = hidden(r.text, "ticket")
    r2 = await h.client.post("/ui/login/code/verify", data={"csrf": csrf_of(r.text), "ticket": ticket, "code": "99999"})
    assert r2.status_code == 401 and 'id="f-code-error"' in r2.text
    r2 = await h.client.post(
        "/ui/login/code/verify", data={"csrf": csrf_of(r.text), "ticket": ticket[:-4] + "AAAA", "code": h.last_code()}
    )
    assert r2.status_code == 401  # a tampered ticket is refused
    r2 = await h.client.post("/ui/login/code/verify",
                             data={"csrf": csrf_of(r.text), "ticket": ticket, "code": h.last_code()})
    assert r2.status_code == 303
    assert (await h.client.get("/ui/account")).status_code == 200
    # an unknown account gets the same page, nothing is sent
    sent = len(h.outbox)
    h.client.cookies.clear()
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ghost@example.com"})
    assert r.status_code == 200 and "gh*****@*****.com" in r.text and len(h.outbox) == sent
    # and a second send within the minute is refused with the wait
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ghost@example.com"})
    assert r.status_code == 429 and "seconds" in r.text


async def test_forgot_password_code_then_new_password(hdb: Harness) -> None:
    await signup(hdb)
    other = (await hdb.client.get("/api/auth/v1/users/me")).status_code
    assert other == 200
    hdb.client.cookies.delete("qt-auth")
    page = (await hdb.client.get("/ui/forgot")).text
    r = await hdb.client.post("/ui/forgot", data={"csrf": csrf_of(page), "login": "ann"})
    assert r.status_code == 200 and "If an account matches" in r.text  # a username: destination not shown
    r = await hdb.client.post("/ui/forgot/code",
                              data={"csrf": csrf_of(r.text), "ticket": hidden(r.text, "ticket"), "code": hdb.last_code()})
    assert r.status_code == 303 and r.headers["location"] == "/ui/forgot/password"
    assert "qt-ui-reset=" in r.headers["set-cookie"] and "Path=/ui/forgot" in r.headers["set-cookie"]
    page = (await hdb.client.get("/ui/forgot/password")).text
    r = await hdb.client.post("/ui/forgot/password", data={"csrf": csrf_of(page), "password": NEW_PASSWORD,
                                                          "confirm_password": "different-1"})
    assert r.status_code == 422 and 'id="f-confirm_password-error"' in r.text
    assert "The two passwords are not the same" in r.text
    r = await hdb.client.post("/ui/forgot/password", data={"csrf": csrf_of(page), "password": NEW_PASSWORD,
                                                          "confirm_password": NEW_PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?done=reset"
    # the reset token worked once
    r = await hdb.client.get("/ui/forgot/password")
    assert r.status_code == 401
    assert (await login(hdb, password=PASSWORD)).status_code == 401
    assert (await login(hdb, password=NEW_PASSWORD)).status_code == 303


# --- the account page ------------------------------------------------------------------------------
async def test_account_requires_a_session(h: Harness) -> None:
    r = await h.client.get("/ui/account")
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?next=/ui/account"


async def test_sessions_can_be_listed_and_revoked(make_harness) -> None:
    h = await make_harness()
    await signup(h)
    token = await api_login(h, **{"user-agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Safari/604.1"})
    page = (await h.client.get("/ui/account")).text
    assert "Safari · iOS" in page and "This device" in page
    sessions = re.findall(r'data-session="([^"]+)"', page)
    assert len(sessions) == 2
    async with h.core.store.transaction(write=False) as tx:
        mine = (await tx.sessions.get_by_refresh_hash(__import__("hashlib").sha256(token.encode()).hexdigest())).id
    # someone else's session id is not found, and stays live
    r = await h.client.post("/ui/account/sessions/nope/revoke", data={"csrf": csrf_of(page)})
    assert r.status_code == 404
    r = await h.client.post(f"/ui/account/sessions/{mine}/revoke", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/account?done=session"
    assert (await h.client.get("/api/auth/v1/users/me", headers={"x-qt-auth": token})).status_code == 401
    page = (await h.client.get("/ui/account")).text
    assert len(re.findall(r'data-session="', page)) == 1


async def test_change_password_and_pin(h: Harness) -> None:
    await signup(h)
    other = await api_login(h)
    page = (await h.client.get("/ui/account")).text
    r = await h.client.post("/ui/account/password", data={"csrf": csrf_of(page), "current_password": "nope-nope1",
                                                          "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert r.status_code == 401 and 'id="f-current_password-error"' in r.text
    r = await h.client.post("/ui/account/password", data={"csrf": csrf_of(page), "current_password": PASSWORD,
                                                          "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert r.status_code == 303
    assert (await h.client.get("/ui/account")).status_code == 200  # this session stays
    me = await h.client.get("/api/auth/v1/users/me", headers={"x-qt-auth": other})
    assert me.status_code == 401  # the others are signed out
    r = await h.client.post("/ui/account/pin", data={"csrf": csrf_of(page), "pin": "12ab"})
    assert r.status_code == 422 and 'id="f-pin-error"' in r.text
    r = await h.client.post("/ui/account/pin", data={"csrf": csrf_of(page), "pin": "482913"})
    assert r.status_code == 303
    async with h.core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email("ann@example.com")
    assert user.pin_hash and user.pin_hash.startswith("$argon2id$")
    assert (await h.core.hasher.verify(user.pin_hash, "482913"))[0]
    assert "A PIN is set." in (await h.client.get("/ui/account")).text


async def test_logout(h: Harness) -> None:
    await signup(h)
    page = (await h.client.get("/ui/account")).text
    assert (await h.client.post("/ui/logout", data={})).status_code == 403
    r = await h.client.post("/ui/logout", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?done=logout"
    assert (await h.client.get("/ui/account")).status_code == 303


# --- the admin console -----------------------------------------------------------------------------
async def make_admin(h: Harness, role: str = "ROLE_ADMIN", name: str = "root") -> None:
    await create_user_cli(h.core, name, f"{name}@example.com", PASSWORD, None, [role])


async def test_admin_pages_need_an_admin(h: Harness) -> None:
    assert (await h.client.get("/ui/admin")).status_code == 303
    await signup(h)
    for path in ("/ui/admin", "/ui/admin/users", "/ui/admin/clients"):
        r = await h.client.get(path)
        assert r.status_code == 403 and "You may not open this page" in r.text
        assert r.headers["content-security-policy"]
    page = (await h.client.get("/ui/account")).text
    r = await h.client.post("/ui/admin/clients", data={"csrf": csrf_of(page), "name": "x"})
    assert r.status_code == 403


async def test_admin_locks_a_user_who_then_cannot_log_in(hdb: Harness) -> None:
    await signup(hdb, email="victim@example.com")
    victim_token = hdb.client.cookies.get("qt-auth")
    hdb.client.cookies.clear()
    await make_admin(hdb)
    assert (await login(hdb, "root", PASSWORD)).status_code == 303
    r = await hdb.client.get("/ui/admin/users", params={"q": "victim"})
    assert r.status_code == 200 and "victim@example.com" in r.text
    uid = re.search(r'href="/ui/admin/users/(\d+)"', r.text).group(1)
    page = (await hdb.client.get(f"/ui/admin/users/{uid}")).text
    assert "user.created" in page and "login.succeeded" in page  # the audit trail
    r = await hdb.client.post(f"/ui/admin/users/{uid}/lock", data={"csrf": csrf_of(page)})
    assert r.status_code == 303 and r.headers["location"] == f"/ui/admin/users/{uid}?done=lock"
    page = (await hdb.client.get(f"/ui/admin/users/{uid}")).text
    assert "Locked" in page and "account.locked" in page
    # signed out everywhere, and cannot log in again
    me = await hdb.client.get("/api/auth/v1/users/me", headers={"x-qt-auth": victim_token})
    assert me.status_code == 401
    hdb.client.cookies.clear()
    r = await login(hdb, "victim@example.com", PASSWORD)
    assert r.status_code == 401 and "The account is locked" in r.text
    async with hdb.core.store.transaction(write=False) as tx:
        events = await tx.audit.list(user_id=int(uid), type="account.locked")
        admin = await tx.users.get_by_username("root")
    assert events and events[0].actor == str(admin.id)


async def test_admin_actions_respect_roles(h: Harness) -> None:
    await make_admin(h, "ROLE_SUPER_ADMIN", "boss")
    await make_admin(h)
    assert (await login(h, "root", PASSWORD)).status_code == 303
    async with h.core.store.transaction(write=False) as tx:
        boss = await tx.users.get_by_username("boss")
        me = await tx.users.get_by_username("root")
    page = (await h.client.get(f"/ui/admin/users/{boss.id}")).text
    r = await h.client.post(f"/ui/admin/users/{boss.id}/deactivate", data={"csrf": csrf_of(page)})
    assert r.status_code == 403
    r = await h.client.post(f"/ui/admin/users/{me.id}/lock", data={"csrf": csrf_of(page)})
    assert r.status_code == 403
    r = await h.client.post(f"/ui/admin/users/{boss.id}/lock", data={})
    assert r.status_code == 403
    async with h.core.store.transaction(write=False) as tx:
        assert (await tx.users.get(boss.id)).is_active and not (await tx.users.get(me.id)).is_locked


async def test_admin_deactivates_unlocks_and_registers_clients(h: Harness) -> None:
    await signup(h, email="carl@example.com")
    h.client.cookies.clear()
    await make_admin(h)
    await login(h, "root", PASSWORD)
    async with h.core.store.transaction(write=False) as tx:
        carl = await tx.users.get_by_email("carl@example.com")
    page = (await h.client.get(f"/ui/admin/users/{carl.id}")).text
    for action in ("deactivate", "activate", "lock", "unlock", "revoke"):
        r = await h.client.post(f"/ui/admin/users/{carl.id}/{action}", data={"csrf": csrf_of(page)})
        assert r.status_code == 303, action
    async with h.core.store.transaction(write=False) as tx:
        carl = await tx.users.get(carl.id)
        types = [e.type for e in await tx.audit.list(user_id=carl.id)]
    assert carl.is_active and not carl.is_locked
    assert types.count("user.updated") == 2 and "account.unlocked" in types and "session.revoked" in types
    page = (await h.client.get("/ui/admin/clients")).text
    r = await h.client.post("/ui/admin/clients", data={"csrf": csrf_of(page), "name": "Mobile", "platforms": ["ios", "android"],
                                                       "min_versions": "ios=2.1.0"})
    assert r.status_code == 200
    client_id = re.search(r'id="client-id">([^<]+)<', r.text).group(1)
    secret = re.search(r'id="client-secret">([^<]+)<', r.text).group(1)
    async with h.core.store.transaction(write=False) as tx:
        client = await tx.clients.get(client_id)
        audit = await tx.audit.list(type="client.registered")
    assert client.platforms == ["android", "ios"] and client.min_versions == {"ios": "2.1.0"}
    assert h.core.keyed.unseal(client.secret_enc) == secret and audit
    r = await h.client.post("/ui/admin/clients", data={"csrf": csrf_of(page), "name": "Bad", "min_versions": "ios=x"})
    assert r.status_code == 422 and 'id="f-min_versions-error"' in r.text


async def test_dashboard_charts_come_from_the_audit_log(h: Harness) -> None:
    await signup(h, email="dora@example.com")
    h.client.cookies.clear()
    await login(h, "dora@example.com", "wrong-pass-1")
    await make_admin(h)
    await login(h, "root", PASSWORD)
    r = await h.client.get("/ui/admin")
    assert r.status_code == 200
    for key, total in (("signups", 2), ("logins", 2), ("failed_logins", 1)):
        figure = re.search(rf'<figure class="chart chart-{key}".*?</figure>', r.text, re.DOTALL).group(0)
        assert f"<strong>{total}</strong>" in figure
        assert '<svg viewBox="0 0 560 200" role="img"' in figure
        values = [int(v) for v in re.findall(r'data-value="(\d+)"', figure)]
        assert len(values) == 14 and values[-1] == total and sum(values) == total


@pytest.mark.parametrize("path", ["/ui/account", "/ui/admin"])
async def test_deactivated_users_lose_their_page_session(h: Harness, path: str) -> None:
    await make_admin(h)
    await login(h, "root", PASSWORD)
    async with h.core.store.transaction() as tx:
        root = await tx.users.get_by_username("root")
        root.is_active = False
        await tx.users.save(root)
    assert (await h.client.get(path)).status_code == 303


async def test_login_by_sms_code_to_the_phone(h: Harness) -> None:
    await signup(h, phone="+85251234567")
    h.client.cookies.clear()
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "+852 5123 4567"})
    assert r.status_code == 200 and "******67" in r.text  # blurred like seed 001's phones
    to, body = h.sms_outbox[-1]
    assert to == "+85251234567"
    code = re.search(r"\b(\d{4})\b", body).group(1)
    r = await h.client.post("/ui/login/code/verify",
                            data={"csrf": csrf_of(r.text), "ticket": hidden(r.text, "ticket"), "code": code})
    assert r.status_code == 303
    async with h.core.store.transaction(write=False) as tx:
        events = [e.type for e in await tx.audit.list(type="login.succeeded")]
    assert len(events) == 2  # sign-up and this login


async def test_admin_pages_for_missing_users_are_404(h: Harness) -> None:
    await make_admin(h)
    await login(h, "root", PASSWORD)
    for path in ("/ui/admin/users/123", "/ui/admin/users/abc"):
        r = await h.client.get(path)
        assert r.status_code == 404 and "Page not found" in r.text


async def test_a_wrong_login_or_reset_code_is_audited_against_its_account(h: Harness) -> None:
    """CONTRACT §1: every OTP failure is in the audit log with its user (the pages logged none)."""
    await signup(h)
    async with h.core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email("ann@example.com")
    assert user is not None
    h.client.cookies.clear()
    for start, verify in (("/ui/login/code", "/ui/login/code/verify"), ("/ui/forgot", "/ui/forgot/code")):
        page = (await h.client.get(start)).text
        r = await h.client.post(start, data={"csrf": csrf_of(page), "login": "ann@example.com"})
        assert r.status_code == 200
        wrong = "0000" if h.last_code() != "0000" else "1111"
        r2 = await h.client.post(verify, data={"csrf": csrf_of(r.text), "ticket": hidden(r.text, "ticket"), "code": wrong})
        assert r2.status_code == 401
    # a code page for nobody (nothing was sent) fails with no user
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ghost@example.com"})
    r2 = await h.client.post("/ui/login/code/verify", data={"csrf": csrf_of(r.text), "ticket": hidden(r.text, "ticket"),
                                                            "code": "1234"})
    assert r2.status_code == 401
    async with h.core.store.transaction(write=False) as tx:
        failed = await tx.audit.list(type="otp.failed")
    assert sorted((e.user_id or 0, e.detail["purpose"]) for e in failed) == [
        (0, "ui_login"), (user.id, "ui_login"), (user.id, "ui_reset"),
    ]


async def test_the_failed_link_page_states_the_configured_lifetime(make_harness) -> None:
    h = await make_harness(verification_ttl=1800)
    r = await h.client.get("/ui/verify", params={"token": "not.valid"})
    assert r.status_code == 400 and "expire after 30 minutes" in r.text
    r = await h.client.get("/ui/verify", params={"token": "not.valid"}, headers={"Accept-Language": "fr"})
    assert "expirent après 30 minutes" in r.text


# --- codes prove their address (core/flows/ui_codes.py, core/flows/ownership.py) -------------------
async def _code_login(h: Harness, login_id: str) -> tuple[str, str]:
    """Ask for a login code on the pages; (the code page, the code sent)."""
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": login_id})
    assert r.status_code == 200, r.text
    return r.text, h.last_code()


async def _use_code(h: Harness, page: str, code: str) -> httpx.Response:
    return await h.client.post("/ui/login/code/verify",
                               data={"csrf": csrf_of(page), "ticket": hidden(page, "ticket"), "code": code})


async def test_a_code_login_on_the_pages_hands_a_never_proven_account_to_the_owner(hdb: Harness) -> None:
    """Someone signs up with the victim's address and a password; the victim's first login by an
    emailed code on the pages takes the account from them."""
    r = await hdb.client.post("/api/auth/v1/signup", json={
        "email": "victim@example.com", "username": "mallory", "password": "Att4cker-pass", "name": "M",
    })
    assert r.status_code == 201, r.text
    stranger = {"x-qt-auth": r.headers["x-qt-auth"]}
    hdb.client.cookies.clear()
    page, code = await _code_login(hdb, "victim@example.com")
    assert (await _use_code(hdb, page, code)).status_code == 303
    assert (await hdb.client.get("/ui/account")).status_code == 200  # the owner is in
    hdb.client.cookies.clear()
    assert (await hdb.client.get("/api/auth/v1/users/me", headers=stranger)).status_code == 401
    r = await hdb.client.post("/api/auth/v1/login", json={"username": "mallory", "password": "Att4cker-pass"})
    assert r.status_code == 401
    async with hdb.core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email("victim@example.com")
        assert user is not None
        verified = [e.detail for e in await tx.audit.list(user_id=user.id, type="email.verified")]
    assert user.email_verified and user.password_hash is None
    assert verified == [{"method": "otp", "purpose": "ui_login", "credentials_removed": ["password"]}]


async def test_a_pages_code_for_an_address_the_account_no_longer_has_is_wrong(h: Harness) -> None:
    await signup(h)
    h.client.cookies.clear()
    page, code = await _code_login(h, "ann@example.com")
    async with h.core.store.transaction() as tx:  # the address changes before the code is used
        user = await tx.users.get_by_email("ann@example.com")
        assert user is not None
        user.email = "someone.else@example.com"
        await tx.users.save(user)
    r = await _use_code(h, page, code)
    assert r.status_code == 401 and 'id="f-code-error"' in r.text
    async with h.core.store.transaction(write=False) as tx:
        stored = await tx.users.get(user.id)
    assert stored is not None and not stored.email_verified and stored.password_hash is not None


async def test_a_pages_reset_code_verifies_the_address_of_a_known_holder(h: Harness) -> None:
    """An account whose phone was proven keeps its credentials; the emailed code verifies the email."""
    await signup(h)
    async with h.core.store.transaction() as tx:
        user = await tx.users.get_by_email("ann@example.com")
        assert user is not None
        user.phone, user.phone_verified = "+85251234567", True
        await tx.users.save(user)
    h.client.cookies.clear()
    page = (await h.client.get("/ui/forgot")).text
    r = await h.client.post("/ui/forgot", data={"csrf": csrf_of(page), "login": "ann@example.com"})
    r = await h.client.post("/ui/forgot/code",
                            data={"csrf": csrf_of(r.text), "ticket": hidden(r.text, "ticket"), "code": h.last_code()})
    assert r.status_code == 303, r.text
    async with h.core.store.transaction(write=False) as tx:
        stored = await tx.users.get(user.id)
    assert stored is not None and stored.email_verified and stored.phone == "+85251234567"
    assert stored.password_hash == user.password_hash
