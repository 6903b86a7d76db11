"""Customer surface (seed 000, CONTRACT §6): the username check behind JWT + CSRF + app signature.

The signer below is written from CONTRACT §1 alone (not from authgate's code), so a drift between
the contract and the server shows up here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from authgate.app import create_app
from authgate.container import build
from authgate.core.flows.clients import register_client
from authgate.core.flows.users import new_user
from authgate.core.model import RequestContext, TokenType, User
from tests.conftest import REDIS_URL, Harness, need

SEED_USERNAME = "bmp_kfayy_6526"
SEED_PHONE = "+923185456266"
PATH = f"/api/customers/check-username/{SEED_USERNAME}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(
    client_id: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ts: int | None = None,
    nonce: str | None = None,
    platform: str = "ios",
    version: str = "2.1.0",
) -> dict[str, str]:
    payload = b64url(
        json.dumps(
            {
                "clientId": client_id,
                "ts": int(time.time()) if ts is None else ts,
                "nonce": nonce or secrets.token_hex(12),
                "method": method,
                "path": path,
                "bodySha256": hashlib.sha256(body).hexdigest(),
            }
        ).encode()
    )
    signature = b64url(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())
    return {
        "x-app-payload": payload,
        "x-app-signature": signature,
        "x-platform": platform,
        "x-app-version": version,
    }


async def make_user(
    h: Harness,
    username: str,
    *,
    email: str | None = None,
    phone: str | None = None,
    roles: list[str] | None = None,
    **fields: Any,
) -> User:
    user = new_user(h.core, username, email=email, phone=phone, roles=roles or ["ROLE_USER"], **fields)
    async with h.core.store.transaction() as tx:
        await tx.users.create(user)
    return user


async def access_token(h: Harness, user: User) -> tuple[str, str]:
    """(access token, session id) of a fresh session for ``user``."""
    async with h.core.store.transaction() as tx:
        issued = await h.core.sessions.start(tx, user, RequestContext(surface="test"))
    return issued.access_token, issued.session.id


async def app_token(h: Harness, client_id: str) -> str:
    token, _ = await h.core.tokens.sign(TokenType.APP, client_id, 3600)
    return token


@dataclass
class Caller:
    """Someone calling the username check: a Bearer token, its CSRF token and a signing client app."""

    h: Harness
    token: str
    csrf: str
    client_id: str
    secret: str
    defaults: dict[str, Any] = field(default_factory=dict)

    def headers(self, username: str = SEED_USERNAME, path: str | None = None, **sign: Any) -> dict[str, str]:
        sign = {**self.defaults, **sign}
        method = sign.pop("method", "GET")
        body = sign.pop("body", b"")
        return {
            "Authorization": f"Bearer {self.token}",
            "x-csrf-token": self.csrf,
            "x-username": username,
            "Content-Type": "application/json",
            "locale": "en",
            **signed(self.client_id, self.secret, method, path or f"/api/customers/check-username/{username}",
                     body, **sign),
        }

    async def check(
        self, username: str = SEED_USERNAME, *, drop: tuple[str, ...] = (), set_: dict[str, str] | None = None,
        content: bytes | None = None, url: str | None = None, **sign: Any,
    ) -> httpx.Response:
        headers = self.headers(username, **sign)
        for name in drop:
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
        headers.update(set_ or {})
        return await self.h.client.request(
            "GET", url or f"/api/customers/check-username/{username}", headers=headers, content=content
        )


async def new_client(h: Harness, platforms: tuple[str, ...] = ("ios", "android"), minimums: tuple[str, ...] = ("ios=2.0.0",)) -> dict[str, Any]:
    return await register_client(h.core, "Test app", list(platforms), list(minimums))


async def user_caller(h: Harness, user: User, client: dict[str, Any] | None = None) -> Caller:
    client = client or await new_client(h)
    token, _ = await access_token(h, user)
    r = await h.client.get("/api/auth/csrf-token", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return Caller(h, token, r.json()["csrfToken"], client["clientId"], client["clientSecret"])


async def seed_user(h: Harness) -> User:
    return await make_user(h, SEED_USERNAME, phone=SEED_PHONE)


# --- the seed's flow ------------------------------------------------------------------------------


async def test_seed_response_shape_for_the_user_themselves(hdb: Harness) -> None:
    me = await seed_user(hdb)
    caller = await user_caller(hdb, me)
    r = await caller.check()
    assert r.status_code == 200, r.text
    assert r.json() == {
        "exists": True,
        "hasCustomer": False,
        "customerId": None,
        "stripeCustomerId": None,
        "email": "",
        "phone": SEED_PHONE,
        "subscriptionStatus": None,
        "pinSet": False,
    }
    assert list(r.json()) == ["exists", "hasCustomer", "customerId", "stripeCustomerId", "email", "phone",
                              "subscriptionStatus", "pinSet"]
    assert r.headers["cache-control"] == "no-store"


async def test_customer_fields_come_from_the_row(hdb: Harness) -> None:
    me = await make_user(
        hdb, "paying.user", email="paying@example.com", pin_hash="$argon2id$stub",
        customer_id="cust_1", stripe_customer_id="cus_ABC", subscription_status="active",
    )
    r = await (await user_caller(hdb, me)).check("paying.user")
    assert r.json() == {
        "exists": True, "hasCustomer": True, "customerId": "cust_1", "stripeCustomerId": "cus_ABC",
        "email": "paying@example.com", "phone": "", "subscriptionStatus": "active", "pinSet": True,
    }


async def test_unknown_username_is_200_with_exists_false(h: Harness) -> None:
    me = await make_user(h, "asker")
    r = await (await user_caller(h, me)).check("nobody_here")
    assert r.status_code == 200
    assert r.json() == {
        "exists": False, "hasCustomer": False, "customerId": None, "stripeCustomerId": None,
        "email": "", "phone": "", "subscriptionStatus": None, "pinSet": False,
    }


async def test_username_match_ignores_letter_case(h: Harness) -> None:
    me = await seed_user(h)
    caller = await user_caller(h, me)
    r = await caller.check("BMP_Kfayy_6526")
    assert r.status_code == 200 and r.json()["exists"] is True


# --- contact details: clear or blurred ------------------------------------------------------------


async def test_email_and_phone_blurred_for_another_user(h: Harness) -> None:
    await make_user(h, "billy", email="billy@example.com", phone="+85268098227")
    other = await make_user(h, "someone.else")
    r = await (await user_caller(h, other)).check("billy")
    assert r.status_code == 200
    assert (r.json()["email"], r.json()["phone"]) == ("bi*****@*****.com", "******27")


async def test_email_and_phone_clear_for_self_admin_and_client_token(h: Harness) -> None:
    billy = await make_user(h, "billy", email="billy@example.com", phone="+85268098227")
    admin = await make_user(h, "the.admin", roles=["ROLE_USER", "ROLE_ADMIN"])
    client = await new_client(h)
    for caller in (await user_caller(h, billy), await user_caller(h, admin)):
        r = await caller.check("billy")
        assert (r.json()["email"], r.json()["phone"]) == ("billy@example.com", "+85268098227")
    token = await app_token(h, client["clientId"])
    r = await h.client.get("/api/auth/csrf-token", headers={"Authorization": f"Bearer {token}"})
    app = Caller(h, token, r.json()["csrfToken"], client["clientId"], client["clientSecret"])
    r = await app.check("billy")
    assert r.status_code == 200, r.text
    assert (r.json()["email"], r.json()["phone"]) == ("billy@example.com", "+85268098227")


async def test_an_admin_demoted_since_the_token_sees_blurred_at_once(hdb: Harness) -> None:
    """Clear contact details follow the admin role as stored, not the role the token was signed
    with: a demotion (or a deactivation) takes effect on the next check, not at the token's expiry."""
    await make_user(hdb, "billy", email="billy@example.com", phone="+85268098227")
    admin = await make_user(hdb, "the.admin", roles=["ROLE_USER", "ROLE_ADMIN"])
    caller = await user_caller(hdb, admin)
    assert (await caller.check("billy")).json()["email"] == "billy@example.com"
    for change in ({"roles": ["ROLE_USER"]}, {"roles": ["ROLE_USER", "ROLE_ADMIN"], "is_active": False}):
        async with hdb.core.store.transaction() as tx:
            stored = await tx.users.get(admin.id, for_update=True)
            assert stored is not None
            stored.roles, stored.is_active = change["roles"], change.get("is_active", True)
            await tx.users.save(stored)
        r = await caller.check("billy")
        assert r.status_code == 200, r.text
        assert (r.json()["email"], r.json()["phone"]) == ("bi*****@*****.com", "******27")


async def test_moderator_sees_blurred(h: Harness) -> None:
    await make_user(h, "billy", email="billy@example.com")
    moderator = await make_user(h, "a.moderator", roles=["ROLE_USER", "ROLE_MODERATOR"])
    r = await (await user_caller(h, moderator)).check("billy")
    assert r.json()["email"] == "bi*****@*****.com" and r.json()["phone"] == ""


# --- headers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header", ["x-csrf-token", "x-username", "locale", "x-app-version", "x-platform", "x-app-payload",
               "x-app-signature"],
)
async def test_each_missing_header_alone_is_400_naming_it(h: Harness, header: str) -> None:
    caller = await user_caller(h, await seed_user(h))
    r = await caller.check(drop=(header,))
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "missing_header"
    assert r.json()["error"]["field"] == header and header in r.json()["error"]["message"]


async def test_missing_authorization_is_401_with_www_authenticate(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    r = await caller.check(drop=("authorization",))
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert r.json()["error"]["code"] == "token_missing"


async def test_x_username_unlike_the_path_is_400(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    r = await caller.check(set_={"x-username": "someone_else"})
    assert r.status_code == 400 and r.json()["error"]["field"] == "x-username"


async def test_unreadable_app_version_is_400(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    for version in ("two", "9" * 4301, "1." + "0" * 10, "1.2.3.4.5"):  # past int()'s limit was a 500
        r = await caller.check(version=version)
        assert r.status_code == 400 and r.json()["error"]["field"] == "x-app-version", (version[:12], r.text)


# --- the JWT --------------------------------------------------------------------------------------


async def test_bad_expired_or_wrong_kind_of_jwt_is_401(h: Harness) -> None:
    me = await seed_user(h)
    caller = await user_caller(h, me)
    _, sid = await access_token(h, me)
    expired, _ = await h.core.tokens.sign(TokenType.ACCESS, str(me.id), -120, sid=sid, username=me.username)
    reset, _ = await h.core.tokens.sign(TokenType.RESET, str(me.id), 600, sid=sid, username=me.username)
    for token, code in (("not-a-jwt", "token_invalid"), (expired, "token_expired"), (reset, "token_invalid")):
        r = await caller.check(set_={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
        assert r.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert r.json()["error"]["code"] == code


async def test_revoked_session_is_401(h: Harness) -> None:
    me = await seed_user(h)
    caller = await user_caller(h, me)
    async with h.core.store.transaction() as tx:
        await h.core.sessions.revoke_user(tx, me.id, "test")
    r = await caller.check()
    assert r.status_code == 401


# --- the app signature ----------------------------------------------------------------------------


async def test_signature_over_another_path_method_or_body_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    cases: list[dict[str, Any]] = [
        {"path": "/api/customers/check-username/someone_else"},
        {"path": PATH + "?x=1"},
        {"method": "POST"},
        {"body": b'{"a":1}'},  # signed a body, sent none
    ]
    for sign in cases:
        r = await caller.check(**sign)
        assert r.status_code == 403, sign
        assert r.json()["error"]["code"] == "signature_invalid"
    r = await caller.check(content=b"smuggled")  # signed no body, sent one
    assert r.status_code == 403


async def test_query_string_is_part_of_the_signed_path(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    r = await caller.check(url=PATH + "?ref=app", path=PATH + "?ref=app")
    assert r.status_code == 200, r.text
    r = await caller.check(url=PATH + "?ref=other", path=PATH + "?ref=app")
    assert r.status_code == 403


async def test_ts_window_is_300_seconds_either_way(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    now = int(time.time())
    # 305, not 301: ``now`` is truncated to the second and the server reads its clock later, so
    # ``now + 301`` could land 300.x s ahead of it on a slow run and be (rightly) accepted.
    assert (await caller.check(ts=now - 305)).status_code == 403
    assert (await caller.check(ts=now + 305)).status_code == 403
    assert (await caller.check(ts=now - 290)).status_code == 200
    assert (await caller.check(ts=now + 290)).status_code == 200


async def test_reused_nonce_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    nonce = secrets.token_hex(12)
    assert (await caller.check(nonce=nonce)).status_code == 200
    r = await caller.check(nonce=nonce)
    assert r.status_code == 403 and r.json()["error"]["code"] == "signature_invalid"


async def test_short_nonce_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    assert (await caller.check(nonce="a" * 15)).status_code == 403
    assert (await caller.check(nonce="a" * 16)).status_code == 200


async def test_a_refused_request_does_not_burn_its_nonce(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    nonce = secrets.token_hex(12)
    assert (await caller.check(nonce=nonce, method="POST")).status_code == 403
    assert (await caller.check(nonce=nonce)).status_code == 200


async def test_wrong_secret_unknown_or_disabled_client_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    good = caller.secret
    caller.secret = "not-the-secret"
    assert (await caller.check()).status_code == 403
    caller.secret = good
    caller.client_id = "cl_unknown"
    assert (await caller.check()).status_code == 403
    other = await new_client(h)
    caller.client_id, caller.secret = other["clientId"], other["clientSecret"]
    assert (await caller.check()).status_code == 200
    async with h.core.store.transaction() as tx:
        row = await tx.clients.get(other["clientId"])
        row.enabled = False
        await tx.clients.save(row)
    r = await caller.check()
    assert r.status_code == 403 and r.json()["error"]["code"] == "signature_invalid"


async def test_tampered_payload_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    headers = caller.headers()
    payload = json.loads(base64.urlsafe_b64decode(headers["x-app-payload"] + "=="))
    payload["ts"] += 1
    headers["x-app-payload"] = b64url(json.dumps(payload).encode())
    r = await h.client.get(PATH, headers=headers)
    assert r.status_code == 403
    headers = caller.headers()
    headers["x-app-payload"] += "="  # padded: not the string that was signed
    assert (await h.client.get(PATH, headers=headers)).status_code == 403


async def test_unknown_or_disallowed_platform_is_403(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))  # the client may use ios and android
    assert (await caller.check(platform="windows")).status_code == 403
    assert (await caller.check(platform="web")).status_code == 403
    assert (await caller.check(platform="android", version="0.1")).status_code == 200


async def test_app_version_under_the_platform_minimum_is_426(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))  # ios minimum 2.0.0
    r = await caller.check(version="1.9.9")
    assert r.status_code == 426
    assert r.json()["error"]["code"] == "app_version_too_old"
    assert (await caller.check(version="2.0")).status_code == 200
    assert (await caller.check(version="10.0.0")).status_code == 200


async def test_app_token_must_be_signed_by_its_own_client(h: Harness) -> None:
    await seed_user(h)
    mine, theirs = await new_client(h), await new_client(h)
    token = await app_token(h, mine["clientId"])
    csrf = (await h.client.get("/api/auth/csrf-token", headers={"Authorization": f"Bearer {token}"})).json()
    caller = Caller(h, token, csrf["csrfToken"], theirs["clientId"], theirs["clientSecret"])
    assert (await caller.check()).status_code == 403
    caller.client_id, caller.secret = mine["clientId"], mine["clientSecret"]
    assert (await caller.check()).status_code == 200


# --- CSRF -----------------------------------------------------------------------------------------


async def test_csrf_token_of_another_session_or_expired_is_403(h: Harness) -> None:
    me = await seed_user(h)
    caller = await user_caller(h, me)
    other = await user_caller(h, await make_user(h, "other.user"))
    r = await caller.check(set_={"x-csrf-token": other.csrf})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid"
    # the same user's other session: a CSRF token is bound to a session, not to a user
    _, second_sid = await access_token(h, me)
    r = await caller.check(set_={"x-csrf-token": h.core.keyed.csrf_token(second_sid, 3600)})
    assert r.status_code == 403
    claims = await h.core.tokens.verify(caller.token, TokenType.ACCESS)
    expired = h.core.keyed.csrf_token(str(claims.raw["sid"]), -1)
    r = await caller.check(set_={"x-csrf-token": expired})
    assert r.status_code == 403 and r.json()["error"]["code"] == "csrf_invalid"
    r = await caller.check(set_={"x-csrf-token": "garbage"})
    assert r.status_code == 403
    assert (await caller.check()).status_code == 200


async def test_csrf_token_endpoint_for_bearer_app_token_and_cookie(h: Harness) -> None:
    r = await h.client.get("/api/auth/csrf-token")
    assert r.status_code == 401 and r.json()["error"]["code"] == "token_missing"
    me = await make_user(h, "form.user")
    token, sid = await access_token(h, me)
    r = await h.client.get("/api/auth/csrf-token", headers={"Authorization": f"Bearer {token}"})
    body = r.json()
    assert r.status_code == 200 and body["expiresIn"] == 3600 and r.headers["cache-control"] == "no-store"
    assert h.core.keyed.csrf_valid(body["csrfToken"], sid)
    client = await new_client(h)
    app = await app_token(h, client["clientId"])
    r = await h.client.get("/api/auth/csrf-token", headers={"Authorization": f"Bearer {app}"})
    assert h.core.keyed.csrf_valid(r.json()["csrfToken"], f"client:{client['clientId']}")
    async with h.core.store.transaction() as tx:
        issued = await h.core.sessions.start(tx, me, RequestContext(surface="form"))
    r = await h.client.get("/api/auth/csrf-token", headers={"x-qt-auth": issued.refresh_token})
    assert h.core.keyed.csrf_valid(r.json()["csrfToken"], issued.session.id)


# --- rate limit -----------------------------------------------------------------------------------


async def test_rate_limit_per_caller_is_429_with_retry_after(make_harness) -> None:
    h = await make_harness(limit_customer_check="2/minute")
    me = await seed_user(h)
    caller = await user_caller(h, me)
    assert (await caller.check()).status_code == 200
    assert (await caller.check()).status_code == 200
    r = await caller.check()
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["error"]["code"] == "rate_limited"
    other = await user_caller(h, await make_user(h, "other.caller"))  # another caller has its own budget
    assert (await other.check()).status_code == 200


# --- the nonce is refused on another node ---------------------------------------------------------


async def test_nonce_replayed_on_another_node_is_refused(make_harness) -> None:
    redis_url = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    node_a = await make_harness(redis_url=redis_url)
    # node B: its own process state (core, caches, key ring), the same database and Redis
    container = await build(node_a.settings)
    app = create_app(node_a.settings, core=container.core)
    node_b = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    try:
        caller = await user_caller(node_a, await seed_user(node_a))
        headers = caller.headers()
        assert (await node_a.client.get(PATH, headers=headers)).status_code == 200
        r = await node_b.get(PATH, headers=headers)
        assert r.status_code == 403 and r.json()["error"]["code"] == "signature_invalid"
        fresh = caller.headers()
        assert (await node_b.get(PATH, headers=fresh)).status_code == 200
    finally:
        await node_b.aclose()
        await container.close()


# --- errors are localised and in the surface's envelope -------------------------------------------


async def test_unknown_route_under_the_prefix_uses_the_envelope(h: Harness) -> None:
    r = await h.client.get("/api/customers/nothing/here/at-all")
    assert r.status_code in (404, 405) and "error" in r.json()


async def test_errors_follow_the_locale_header(h: Harness) -> None:
    caller = await user_caller(h, await seed_user(h))
    r = await caller.check(drop=("x-platform",), set_={"locale": "zh-Hant"})
    assert r.status_code == 400 and r.json()["error"]["message"] == "缺少或無效的標頭：x-platform"
    r = await caller.check(version="1.0.0", set_={"locale": "fr"})
    assert r.status_code == 426 and "mettre à jour" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    "change",
    [{"clientId": "\ud800abc"}, {"clientId": "cl_\u0000x"}, {"ts": 10**400}, {"ts": -1},
     {"nonce": "\ud800" * 16}, {"nonce": "sixteen+chars\u0007bell"}],
)
async def test_a_hostile_payload_field_is_403_before_any_lookup(hdb: Harness, change: dict[str, Any]) -> None:
    """A forged payload (no valid signature needed to reach the client lookup) with a lone
    surrogate, a NUL, a ts past any clock or an odd nonce: 403 signature_invalid, never a 500."""
    caller = await user_caller(hdb, await seed_user(hdb))
    headers = caller.headers()
    payload = json.loads(base64.urlsafe_b64decode(headers["x-app-payload"] + "=="))
    payload.update(change)
    headers["x-app-payload"] = b64url(json.dumps(payload).encode())
    headers["x-app-signature"] = b64url(hmac.new(caller.secret.encode(), headers["x-app-payload"].encode(),
                                                 hashlib.sha256).digest())  # signed, as the worst case
    r = await hdb.client.get(PATH, headers=headers)
    assert r.status_code == 403 and r.json()["error"]["code"] == "signature_invalid", r.text
