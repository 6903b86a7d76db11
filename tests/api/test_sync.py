"""Sync surface (seed 002, CONTRACT §5): the token endpoint, PUT /api/users, the internal listener,
role rules, the admin user API and the audit API, in the ``{statusCode, error, message}`` envelope."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from authgate.core.errors import AuthError
from authgate.core.flows.admin import create_user_cli
from authgate.core.flows.clients import disable_client, register_client, rotate_client_secret
from authgate.core.model import TokenType
from tests.api.conftest import harness, seed_client  # seed_client is also imported from here elsewhere
from tests.conftest import Harness

SYSTEM_CTX = base64.b64encode(json.dumps({"id": "__system", "user": "__system"}).encode()).decode()
SYS = {"x-user-ctx": SYSTEM_CTX}
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SEED_KEYS = {
    "emailVerified", "username", "email", "id", "_guid", "createdBy", "createdAt", "updatedAt",
    "deletedAt", "updatedBy", "deletedBy", "firstName", "lastName", "locale", "roles", "phoneNumber",
    "avatar", "birthday", "gender", "lockedAt", "isActive", "isLocked",
}  # seed 002's sample, without "password": we never return the hash


def password_login(client: dict, who: str, password: str) -> dict:
    return {"type": "password", **client, "withPassword": {"emailOrUsername": who, "password": password}}


async def make_user(h: Harness, username: str, roles: list[str] | None = None, password: str = "Adm1n-pass!") -> str:
    out = await create_user_cli(h.core, username, f"{username}@example.com", password, None, roles or [])
    return str(out["id"])


async def token_of(h: Harness, username: str, password: str = "Adm1n-pass!") -> str:
    r = await h.client.post("/api/auth/login", json=password_login(h.seed_client, username, password))  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    return str(r.json()["accessToken"])


async def admin(h: Harness, username: str = "admin1", role: str = "ROLE_ADMIN") -> tuple[str, dict[str, str]]:
    uid = await make_user(h, username, [role])
    return uid, {"authorization": f"Bearer {await token_of(h, username)}"}


async def put(h: Harness, body: dict, headers: dict | None = None) -> Any:
    return await h.client.put("/api/users", json=body, headers=SYS if headers is None else headers)


def envelope(r: Any, status: int, message: str | None = None) -> dict:
    body = r.json()
    assert r.status_code == status, r.text
    assert body["statusCode"] == status and isinstance(body["error"], str) and isinstance(body["message"], str)
    if message is not None:
        assert body["message"] == message
    return body


async def user_count(h: Harness) -> int:
    async with h.core.store.transaction(write=False) as tx:
        return len(await tx.users.list(None, 1000, None))


# --- seed 002, verbatim ---------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_seed_002_three_steps(make_harness: Any, backend: str) -> None:
    if True:
        h = await make_harness(backend, internal=True)
        await seed_client(h)
        # Step 1: log in with a user that does not exist.
        r = await h.client.post("/api/auth/login", json={
            "type": "password",
            "clientId": "client-app-id",
            "clientSecret": "client-app-secret",
            "withPassword": {"emailOrUsername": "none-exists-email@gmail.com", "password": "arbitrary-password"},
        })
        assert r.json() == {"statusCode": 401, "error": "Unauthorized", "message": "User not found"}
        # Step 2, the seed's body as printed (stray quote after the email included): the seed
        # answers 200 with the address without it.
        seed_body = {
            "username": "cersei.lannister",
            "email": "cersei-lannister@gmail.com'",
            "password": "C3rs3i#L4nnist3r",
            "emailVerified": True,
        }
        r = await h.client.put("/api/users/", json=seed_body, headers={"x-user-ctx": SYSTEM_CTX})
        assert r.status_code == 200, r.text
        user = r.json()
        assert set(user) == SEED_KEYS and "password" not in user
        assert user["emailVerified"] is True and user["username"] == "cersei.lannister"
        assert user["email"] == "cersei-lannister@gmail.com"
        assert user["id"].isdigit() and re.fullmatch(r"user_[0-9A-Za-z]{26}", user["_guid"])
        assert user["createdBy"] == "__system" and user["updatedBy"] is None and user["deletedBy"] is None
        assert ISO_MS.match(user["createdAt"]) and user["updatedAt"] == user["createdAt"]
        assert user["deletedAt"] is None and user["roles"] is None and user["lockedAt"] is None
        assert user["isActive"] is True and user["isLocked"] is False
        assert all(user[k] is None for k in ("firstName", "lastName", "locale", "phoneNumber", "avatar", "birthday", "gender"))
        # Step 3: the same login now succeeds.
        r = await h.client.post("/api/auth/login", json={
            "type": "password",
            "clientId": "client-app-id",
            "clientSecret": "client-app-secret",
            "withPassword": {"emailOrUsername": "cersei-lannister@gmail.com", "password": "C3rs3i#L4nnist3r"},
        })
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["tokenType"] == "Bearer" and out["expiresIn"] == 3600
        assert out["refreshToken"] and out["user"]["id"] == user["id"]
        principal = await h.core.sessions.authenticate(out["accessToken"])
        assert principal.user_id == int(user["id"])


# --- POST /api/auth/login -----------------------------------------------------------------------
async def test_wrong_password_and_bad_clients(s: Harness) -> None:
    await put(s, {"username": "jaime", "email": "jaime@example.com", "password": "Kingsl4yer!"})
    good = s.seed_client  # type: ignore[attr-defined]
    r = await s.client.post("/api/auth/login", json=password_login(good, "jaime", "wrong-pass"))
    assert r.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Invalid credentials"}
    # the client is checked first: a bad one is "Invalid client" whatever the user
    for client in (
        {"clientId": "client-app-id", "clientSecret": "not-the-secret"},
        {"clientId": "no-such-client", "clientSecret": "client-app-secret"},
        {"clientSecret": "client-app-secret"},
        {},
    ):
        for who in ("jaime", "nobody@example.com"):
            r = await s.client.post("/api/auth/login", json=password_login(client, who, "Kingsl4yer!"))
            assert r.json() == {"statusCode": 401, "error": "Unauthorized", "message": "Invalid client"}


async def test_request_shape_errors(s: Harness) -> None:
    c = s.seed_client  # type: ignore[attr-defined]
    r = await s.client.post("/api/auth/login", json={"type": "magic", **c})
    assert envelope(r, 422)["field"] == "type"
    r = await s.client.post("/api/auth/login", json={"type": "password", **c})
    assert envelope(r, 422)["field"] == "withPassword"
    r = await s.client.post("/api/auth/login", json={"type": "password", **c, "withPassword": {"password": "x"}})
    assert envelope(r, 422)["field"] == "withPassword.emailOrUsername"
    r = await s.client.post("/api/auth/login", json={"type": "refreshToken", **c})
    assert envelope(r, 422)["field"] == "refreshToken"
    r = await s.client.post("/api/auth/login", json={**c})
    assert envelope(r, 422)["field"] == "type"
    r = await s.client.post("/api/auth/login", content=b"{not json", headers={"content-type": "application/json"})
    assert envelope(r, 400)["error"] == "Bad Request"
    r = await s.client.get("/api/auth/login")
    envelope(r, 405)
    r = await s.client.get("/api/users/1/nothing-here", headers=SYS)
    envelope(r, 404)


async def test_refresh_token_grant(s: Harness) -> None:
    await put(s, {"username": "tyrion", "password": "Imp-0f-Casterly"})
    c = s.seed_client  # type: ignore[attr-defined]
    first = (await s.client.post("/api/auth/login", json=password_login(c, "tyrion", "Imp-0f-Casterly"))).json()
    r = await s.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": first["refreshToken"]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["tokenType"] == "Bearer" and out["user"]["username"] == "tyrion"
    assert (await s.core.sessions.authenticate(out["accessToken"])).user_id == int(out["user"]["id"])
    r = await s.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": "forged"})
    envelope(r, 401)
    r = await s.client.post("/api/auth/login", json={
        "type": "refreshToken", "clientId": "client-app-id", "clientSecret": "bad", "refreshToken": first["refreshToken"],
    })
    envelope(r, 401, "Invalid client")


async def test_client_credentials_gives_an_app_token_that_cannot_sync(pub: Harness) -> None:
    r = await pub.client.post("/api/auth/login", json={"type": "clientCredentials", **pub.seed_client})  # type: ignore[attr-defined]
    assert r.status_code == 200, r.text
    out = r.json()
    assert set(out) == {"accessToken", "tokenType", "expiresIn"}
    claims = await pub.core.tokens.verify(out["accessToken"], TokenType.APP)
    assert claims.sub == "client-app-id"
    r = await put(pub, {"username": "bran"}, {"authorization": f"Bearer {out['accessToken']}"})
    envelope(r, 403)


async def test_disabled_and_rotated_clients(s: Harness) -> None:
    made = await register_client(s.core, "mobile", ["ios"], [])
    body = {"type": "clientCredentials", "clientId": made["clientId"], "clientSecret": made["clientSecret"]}
    assert (await s.client.post("/api/auth/login", json=body)).status_code == 200
    rotated = await rotate_client_secret(s.core, made["clientId"])
    assert rotated["clientSecret"] != made["clientSecret"]
    envelope(await s.client.post("/api/auth/login", json=body), 401, "Invalid client")
    fresh = {**body, "clientSecret": rotated["clientSecret"]}
    assert (await s.client.post("/api/auth/login", json=fresh)).status_code == 200
    await disable_client(s.core, made["clientId"])
    envelope(await s.client.post("/api/auth/login", json=fresh), 401, "Invalid client")


# --- who may call -------------------------------------------------------------------------------
async def test_public_listener_ignores_x_user_ctx(pub: Harness) -> None:
    envelope(await put(pub, {"username": "arya"}), 401)
    envelope(await put(pub, {"username": "arya"}, {"x-user-ctx": "%%% not base64"}), 401)  # ignored, not 400
    uid, auth = await admin(pub)
    r = await put(pub, {"username": "arya"}, {**auth, "x-user-ctx": SYSTEM_CTX})
    assert r.status_code == 200 and r.json()["createdBy"] == uid  # the Bearer's admin, never __system
    _, plain = await admin(pub, "sansa", "ROLE_USER")
    envelope(await put(pub, {"username": "rickon"}, {**plain, "x-user-ctx": SYSTEM_CTX}), 403)
    assert await user_count(pub) == 3


@pytest.mark.parametrize(
    "header",
    [
        "%%% not base64",
        base64.b64encode(b"not json").decode(),
        base64.b64encode(b'["__system"]').decode(),
        base64.b64encode(b'{"user": "__system"}').decode(),
    ],
)
async def test_malformed_x_user_ctx_is_400_on_the_internal_listener(s: Harness, header: str) -> None:
    body = envelope(await put(s, {"username": "arya"}, {"x-user-ctx": header}), 400)
    assert body["field"] == "x-user-ctx"
    assert await user_count(s) == 0


async def test_x_user_ctx_padding_and_urlsafe_forms(s: Harness) -> None:
    raw = base64.urlsafe_b64encode(json.dumps({"id": "__system", "user": "__system"}).encode()).decode().rstrip("=")
    assert (await put(s, {"username": "hodor"}, {"x-user-ctx": raw})).status_code == 200


async def test_x_user_ctx_of_a_real_user_needs_that_user_to_be_admin(s: Harness) -> None:
    uid = await make_user(s, "plainuser")
    ctx = base64.b64encode(json.dumps({"id": uid, "user": "plainuser"}).encode()).decode()
    envelope(await put(s, {"username": "x1y"}, {"x-user-ctx": ctx}), 403)
    other = base64.b64encode(json.dumps({"id": "someone-else"}).encode()).decode()
    envelope(await put(s, {"username": "x1y"}, {"x-user-ctx": other}), 403)
    aid = await make_user(s, "ctxadmin", ["ROLE_ADMIN"])
    ctx = base64.b64encode(json.dumps({"id": aid, "user": "ctxadmin"}).encode()).decode()
    r = await put(s, {"username": "x1y"}, {"x-user-ctx": ctx})
    assert r.status_code == 200 and r.json()["createdBy"] == aid


async def test_internal_port_is_known_by_the_socket(make_harness: Any) -> None:
    """The real server binds both ports to one app: the socket a request came in on decides."""
    h = await harness(make_harness, internal=False, internal_port=8081)
    body = {"username": "arya"}
    envelope(await h.client.put("http://testserver:8000/api/users", json=body, headers=SYS), 401)
    envelope(await h.client.put("http://testserver/api/users", json=body, headers=SYS), 401)
    r = await h.client.put("http://testserver:8081/api/users", json=body, headers=SYS)
    assert r.status_code == 200 and r.json()["createdBy"] == "__system"


async def test_credentials_needed_and_admin_required(pub: Harness) -> None:
    envelope(await put(pub, {"username": "arya"}, {}), 401)
    envelope(await put(pub, {"username": "arya"}, {"authorization": "Bearer not.a.jwt"}), 401)
    for name, role in (("user1", "ROLE_USER"), ("mod1", "ROLE_MODERATOR")):
        _, auth = await admin(pub, name, role)
        envelope(await put(pub, {"username": "arya"}, auth), 403)
        envelope(await pub.client.get("/api/users", headers=auth), 403)
        envelope(await pub.client.get("/api/admin/audit", headers=auth), 403)
    for path in ("/api/users", "/api/users/1", "/api/admin/audit"):
        envelope(await pub.client.get(path), 401)
    envelope(await pub.client.delete("/api/users/1"), 401)
    envelope(await pub.client.post("/api/users/1/unlock"), 401)


async def test_a_demoted_admin_is_refused_at_once(pub: Harness) -> None:
    uid, auth = await admin(pub, "cersei")
    _, sup = await admin(pub, "robert", "ROLE_SUPER_ADMIN")
    r = await put(pub, {"username": "cersei", "roles": ["ROLE_USER"]}, sup)
    assert r.status_code == 200 and r.json()["roles"] == ["ROLE_USER"]
    # the token still says ROLE_ADMIN; the database does not
    envelope(await put(pub, {"username": "joffrey"}, auth), 403)


# --- role rules -----------------------------------------------------------------------------------
async def test_role_escalation_attempts(pub: Harness) -> None:
    aid, adm = await admin(pub, "admin1")
    sid, sup = await admin(pub, "super1", "ROLE_SUPER_ADMIN")
    await admin(pub, "admin2")
    # an admin may not grant admin roles
    for roles in (["ROLE_ADMIN"], ["ROLE_SUPER_ADMIN"], ["ROLE_USER", "ROLE_ADMIN"]):
        envelope(await put(pub, {"username": "newbie", "roles": roles}, adm), 403)
    assert (await pub.client.get("/api/users?search=newbie", headers=adm)).json()["items"] == []
    # nor raise or change their own roles
    body = envelope(await put(pub, {"username": "admin1", "roles": ["ROLE_SUPER_ADMIN"]}, adm), 403)
    assert "own roles" in body["message"]
    envelope(await put(pub, {"username": "admin1", "roles": ["ROLE_USER"]}, adm), 403)
    # nor touch, demote or take over another admin
    envelope(await put(pub, {"username": "admin2", "roles": ["ROLE_USER"]}, adm), 403)
    envelope(await put(pub, {"username": "admin2", "password": "T4keover-pass"}, adm), 403)
    envelope(await put(pub, {"username": "super1", "email": "mine@example.com"}, adm), 403)
    admin2 = (await pub.client.get("/api/users?search=admin2", headers=sup)).json()["items"][0]
    envelope(await pub.client.delete(f"/api/users/{admin2['id']}", headers=adm), 403)
    await token_of(pub, "admin2")  # password unchanged
    # a moderator role is an admin's to give
    r = await put(pub, {"username": "newbie", "roles": ["ROLE_MODERATOR"]}, adm)
    assert r.status_code == 200 and r.json()["roles"] == ["ROLE_MODERATOR"]
    # a super admin grants admin roles, but not to themselves
    r = await put(pub, {"username": "newbie", "roles": ["ROLE_ADMIN"]}, sup)
    assert r.status_code == 200 and r.json()["roles"] == ["ROLE_ADMIN"] and r.json()["updatedBy"] == sid
    envelope(await put(pub, {"username": "super1", "roles": ["ROLE_USER"]}, sup), 403)
    # an admin may edit their own profile, and send their unchanged roles back
    r = await put(pub, {"username": "admin1", "firstName": "Ann", "roles": ["ROLE_ADMIN", "ROLE_USER"]}, adm)
    assert r.status_code == 200 and r.json()["firstName"] == "Ann" and r.json()["updatedBy"] == aid
    # the system grants anything
    r = await pub.client.get("/api/users?search=admin2", headers=sup)
    assert r.json()["items"][0]["roles"] is not None


async def test_system_context_may_grant_super_admin(s: Harness) -> None:
    r = await put(s, {"username": "root.user", "roles": ["ROLE_SUPER_ADMIN"]})
    assert r.status_code == 200 and r.json()["roles"] == ["ROLE_SUPER_ADMIN"]


# --- PUT /api/users --------------------------------------------------------------------------------
async def test_update_by_username_honours_fields_and_records_the_actor(pub: Harness) -> None:
    aid, auth = await admin(pub)
    created = (await put(pub, {"username": "sam", "email": "sam@example.com", "emailVerified": True}, auth)).json()
    assert created["createdBy"] == aid and created["updatedBy"] is None
    r = await put(pub, {
        "username": "SAM", "firstName": "Samwell", "lastName": "Tarly", "locale": "zh-Hant",
        "phoneNumber": "+85261234567", "isActive": True, "birthday": "1990-02-03", "gender": "male",
        "avatar": "https://cdn.example.com/sam.png",
    }, auth)
    assert r.status_code == 200, r.text
    user = r.json()
    assert user["id"] == created["id"] and user["username"] == "sam"
    assert (user["firstName"], user["lastName"], user["locale"]) == ("Samwell", "Tarly", "zh-Hant")
    assert user["phoneNumber"] == "+85261234567" and user["birthday"] == "1990-02-03"
    assert user["updatedBy"] == aid and user["createdBy"] == aid
    assert user["emailVerified"] is True  # untouched
    # the same record again changes nothing
    again = (await put(pub, {"username": "sam", "firstName": "Samwell"}, auth)).json()
    assert again["updatedAt"] == user["updatedAt"]
    # a new email is unverified unless the caller says so
    r = await put(pub, {"username": "sam", "email": "sam@citadel.example.com"}, auth)
    assert r.json()["email"] == "sam@citadel.example.com" and r.json()["emailVerified"] is False
    r = await put(pub, {"username": "sam", "email": "sam@wall.example.com", "emailVerified": True}, auth)
    assert r.json()["emailVerified"] is True
    # explicit null clears a field
    r = await put(pub, {"username": "sam", "firstName": None}, auth)
    assert r.json()["firstName"] is None and r.json()["lastName"] == "Tarly"


async def test_upsert_by_email_alone(s: Harness) -> None:
    r = await put(s, {"email": "Gilly@Example.com", "password": "Littl3-Sam!"})
    assert r.status_code == 200, r.text
    first = r.json()
    assert first["username"] == "gilly" and first["email"] == "gilly@example.com"
    r = await put(s, {"email": "gilly@example.com", "firstName": "Gilly"})
    assert r.json()["id"] == first["id"] and r.json()["firstName"] == "Gilly"
    assert await user_count(s) == 1
    await token_of(s, "gilly@example.com", "Littl3-Sam!")


async def test_duplicate_email_or_phone_on_another_user_is_409(hdb: Harness) -> None:
    h = hdb
    r = await h.client.put("/api/users", json={"username": "ned", "email": "ned@example.com", "phoneNumber": "+85261234567"},
                           headers={"x-user-ctx": SYSTEM_CTX})
    # hdb is a public-listener harness: x-user-ctx is ignored there
    assert r.status_code == 401
    _, auth = await admin(await _seeded(h))
    assert (await put(h, {"username": "ned", "email": "ned@example.com", "phoneNumber": "+85261234567"}, auth)).status_code == 200
    before = await user_count(h)
    body = envelope(await put(h, {"username": "robb", "email": "NED@example.com"}, auth), 409)
    assert body["field"] == "email"
    body = envelope(await put(h, {"username": "robb", "phoneNumber": "61234567"}, auth), 409)
    assert body["field"] == "phoneNumber"
    assert await user_count(h) == before
    await put(h, {"username": "robb", "email": "robb@example.com"}, auth)
    envelope(await put(h, {"username": "robb", "email": "ned@example.com"}, auth), 409)
    r = await h.client.get("/api/users?search=robb", headers=auth)
    assert r.json()["items"][0]["email"] == "robb@example.com"


async def _seeded(h: Harness) -> Harness:
    h.seed_client = await seed_client(h)  # type: ignore[attr-defined]
    return h


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "a b"}, "username"),
        ({"username": "ab"}, "username"),
        ({"username": "ok.name", "email": "not-an-email"}, "email"),
        ({"username": "ok.name", "phoneNumber": "12"}, "phoneNumber"),
        ({"username": "ok.name", "locale": "de"}, "locale"),
        ({"username": "ok.name", "roles": ["ROLE_GOD"]}, "roles"),
        ({"username": "ok.name", "birthday": "1990-13-01"}, "birthday"),
        ({"username": "ok.name", "avatar": "javascript:alert(1)"}, "avatar"),
        ({"username": "ok.name", "password": "123"}, "password"),
        ({"username": "ok.name", "password": "password1"}, "password"),
        ({"username": "ok.name", "password": "$2b$06$tooshort"}, "password"),
        ({"username": "ok.name", "password": "$2b$31$" + "a" * 53}, "password"),
        # the right length and prefix, but no bcrypt hash: a cost that is not a number, a cost under
        # bcrypt's 4, characters outside its alphabet (a 500, and accounts that could never log in)
        ({"username": "ok.name", "password": "$2b$zz$" + "a" * 53}, "password"),
        ({"username": "ok.name", "password": "$2b$03$" + "a" * 53}, "password"),
        ({"username": "ok.name", "password": "$2b$10$" + "!" * 53}, "password"),
        ({"username": "ok.name", "password": "firebase_scrypt$c2FsdA==$aGFzaA=="}, "password"),
        ({"username": "ok.name", "emailVerified": "maybe"}, "emailVerified"),
        ({"firstName": "nobody"}, "username"),
    ],
)
async def test_invalid_fields_are_422_and_write_nothing(s: Harness, body: dict, field: str) -> None:
    r = await put(s, body)
    assert envelope(r, 422)["field"] == field
    assert await user_count(s) == 0


async def test_invalid_update_writes_nothing(s: Harness) -> None:
    user = (await put(s, {"username": "bronn", "firstName": "Bronn"})).json()
    envelope(await put(s, {"username": "bronn", "firstName": "Ser Bronn", "phoneNumber": "nope"}), 422)
    assert (await s.client.get(f"/api/users/{user['id']}", headers=SYS)).json()["firstName"] == "Bronn"


async def test_password_change_revokes_sessions_but_a_resync_does_not(s: Harness) -> None:
    await put(s, {"username": "davos", "password": "Onion-Kn1ght"})
    c = s.seed_client  # type: ignore[attr-defined]
    first = (await s.client.post("/api/auth/login", json=password_login(c, "davos", "Onion-Kn1ght"))).json()
    await put(s, {"username": "davos", "password": "Onion-Kn1ght"})  # same password: nothing changes
    await s.core.sessions.authenticate(first["accessToken"])
    r = await put(s, {"username": "davos", "password": "Fingers-0ff"})
    assert r.status_code == 200
    r = await s.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": first["refreshToken"]})
    envelope(r, 401)
    envelope(await s.client.post("/api/auth/login", json=password_login(c, "davos", "Onion-Kn1ght")), 401, "Invalid credentials")
    await token_of(s, "davos", "Fingers-0ff")
    types = [e["type"] for e in (await s.client.get("/api/admin/audit", headers=SYS)).json()["items"]]
    assert "password.set" in types and "session.revoked" in types
    log = (await s.client.get("/api/admin/audit", params={"limit": 200}, headers=SYS)).text
    assert "Onion-Kn1ght" not in log and "Fingers-0ff" not in log and "$argon2" not in log


async def test_deactivation_blocks_login_and_ends_sessions(s: Harness) -> None:
    await put(s, {"username": "theon", "password": "Reek-Reek-1"})
    c = s.seed_client  # type: ignore[attr-defined]
    first = (await s.client.post("/api/auth/login", json=password_login(c, "theon", "Reek-Reek-1"))).json()
    r = await put(s, {"username": "theon", "isActive": False})
    assert r.json()["isActive"] is False
    envelope(await s.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": first["refreshToken"]}), 401)
    envelope(await s.client.post("/api/auth/login", json=password_login(c, "theon", "Reek-Reek-1")), 401)


# --- GET, list, DELETE, unlock -----------------------------------------------------------------------
async def test_get_and_list_with_search_and_cursor(s: Harness) -> None:
    ids = []
    for i in range(5):
        ids.append((await put(s, {"username": f"stark.{i}", "email": f"stark{i}@winterfell.example.com"})).json()["id"])
    await put(s, {"username": "lannister.1"})
    r = await s.client.get(f"/api/users/{ids[2]}", headers=SYS)
    assert r.status_code == 200 and r.json()["username"] == "stark.2"
    envelope(await s.client.get("/api/users/123", headers=SYS), 404, "User not found")
    envelope(await s.client.get("/api/users/abc", headers=SYS), 404)
    seen, cursor, pages = [], None, 0
    while True:
        params = {"search": "STARK", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await s.client.get("/api/users", params=params, headers=SYS)).json()
        seen += [u["id"] for u in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    assert len((await s.client.get("/api/users/", headers=SYS)).json()["items"]) == 6
    page = (await s.client.get("/api/users", params={"search": "winterfell", "limit": 10}, headers=SYS)).json()
    assert len(page["items"]) == 5 and page["nextCursor"] is None
    envelope(await s.client.get("/api/users", params={"cursor": "!!!"}, headers=SYS), 422)
    envelope(await s.client.get("/api/users", params={"limit": 0}, headers=SYS), 422)
    envelope(await s.client.get("/api/users", params={"limit": 1000}, headers=SYS), 422)


async def test_delete_is_soft_revokes_sessions_and_blocks_login(hdb: Harness) -> None:
    h = await _seeded(hdb)
    aid, auth = await admin(h)
    user = (await put(h, {"username": "ygritte", "email": "ygritte@example.com", "password": "Kn0w-Nothing"}, auth)).json()
    c = h.seed_client  # type: ignore[attr-defined]
    session = (await h.client.post("/api/auth/login", json=password_login(c, "ygritte", "Kn0w-Nothing"))).json()
    r = await h.client.delete(f"/api/users/{user['id']}", headers=auth)
    assert r.status_code == 200, r.text
    assert r.json()["deletedBy"] == aid and ISO_MS.match(r.json()["deletedAt"])
    envelope(await h.client.get(f"/api/users/{user['id']}", headers=auth), 404)
    envelope(await h.client.delete(f"/api/users/{user['id']}", headers=auth), 404)
    envelope(await h.client.post("/api/auth/login", json=password_login(c, "ygritte", "Kn0w-Nothing")), 401, "User not found")
    envelope(await h.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": session["refreshToken"]}), 401)
    with pytest.raises(AuthError):
        await h.core.sessions.authenticate(session["accessToken"])
    assert "ygritte" not in str((await h.client.get("/api/users", headers=auth)).json())
    events = (await h.client.get("/api/admin/audit", params={"userId": user["id"], "type": "user.deleted"}, headers=auth)).json()
    assert [e["actor"] for e in events["items"]] == [aid]
    # the name is free again: a new sync creates a new account
    again = (await put(h, {"username": "ygritte"}, auth)).json()
    assert again["id"] != user["id"]


async def test_unlock(make_harness: Any) -> None:
    s = await harness(make_harness, internal=True, lockout_threshold=3)
    user = (await put(s, {"username": "hound", "password": "Chick3n-pls"})).json()
    c = s.seed_client  # type: ignore[attr-defined]
    for _ in range(3):
        await s.client.post("/api/auth/login", json=password_login(c, "hound", "wrong-one"))
    r = await s.client.get(f"/api/users/{user['id']}", headers=SYS)
    assert r.json()["isLocked"] is True and ISO_MS.match(r.json()["lockedAt"])
    envelope(await s.client.post("/api/auth/login", json=password_login(c, "hound", "Chick3n-pls")), 401)
    r = await s.client.post(f"/api/users/{user['id']}/unlock", headers=SYS)
    assert r.status_code == 200 and r.json()["isLocked"] is False and r.json()["lockedAt"] is None
    await token_of(s, "hound", "Chick3n-pls")
    events = (await s.client.get("/api/admin/audit", params={"type": "account.unlocked"}, headers=SYS)).json()["items"]
    assert events[0]["actor"] == "__system" and events[0]["userId"] == user["id"]
    envelope(await s.client.post("/api/users/999/unlock", headers=SYS), 404)


# --- GET /api/admin/audit ---------------------------------------------------------------------------
async def test_audit_filters_and_pagination(s: Harness) -> None:
    a = (await put(s, {"username": "oberyn"})).json()
    b = (await put(s, {"username": "ellaria"})).json()
    await put(s, {"username": "oberyn", "firstName": "Oberyn"})
    r = await s.client.get("/api/admin/audit", params={"userId": a["id"]}, headers=SYS)
    items = r.json()["items"]
    assert [e["type"] for e in items] == ["user.updated", "user.synced"]  # newest first
    assert items[0]["detail"]["fields"] == ["first_name"] and items[0]["actor"] == "__system"
    assert ISO_MS.match(items[0]["at"]) and items[0]["ip"] == "203.0.113.7"
    synced = (await s.client.get("/api/admin/audit", params={"type": "user.synced", "limit": 1}, headers=SYS)).json()
    assert [e["userId"] for e in synced["items"]] == [b["id"]] and synced["nextCursor"]
    rest = (await s.client.get("/api/admin/audit", params={"type": "user.synced", "cursor": synced["nextCursor"]}, headers=SYS)).json()
    assert [e["userId"] for e in rest["items"]] == [a["id"]] and rest["nextCursor"] is None
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    past = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    assert (await s.client.get("/api/admin/audit", params={"since": future}, headers=SYS)).json()["items"] == []
    assert (await s.client.get("/api/admin/audit", params={"until": past}, headers=SYS)).json()["items"] == []
    assert len((await s.client.get("/api/admin/audit", params={"since": past}, headers=SYS)).json()["items"]) >= 3
    envelope(await s.client.get("/api/admin/audit", params={"since": "yesterday"}, headers=SYS), 422)
    envelope(await s.client.get("/api/admin/audit", params={"userId": "x"}, headers=SYS), 422)


async def test_failed_client_checks_are_rate_limited(make_harness: Any) -> None:
    h = await harness(make_harness, internal=True, limit_failed_login="2/hour")
    bad = {"type": "clientCredentials", "clientId": "client-app-id", "clientSecret": "guess"}
    for _ in range(2):
        envelope(await h.client.post("/api/auth/login", json=bad), 401, "Invalid client")
    r = await h.client.post("/api/auth/login", json=bad)
    assert envelope(r, 429)["error"] == "Too Many Requests" and int(r.headers["retry-after"]) > 0


async def test_405_allow_names_every_method_served_at_the_path(h: Harness) -> None:
    """RFC 9110 §15.5.6; Starlette named only the first route matching the path."""
    r = await h.client.patch("/api/users", json={})
    assert r.status_code == 405 and r.json()["statusCode"] == 405
    assert set(r.headers["allow"].split(", ")) >= {"GET", "PUT"}
    r = await h.client.put("/api/users/123", json={})
    assert r.status_code == 405
    assert set(r.headers["allow"].split(", ")) >= {"GET", "DELETE"}


async def test_refresh_works_again_once_a_lockout_is_over(make_harness: Any) -> None:
    """CONTRACT §1: an account is locked for 15 minutes; a refresh after that works (it was refused
    until the next password login)."""
    s = await harness(make_harness, internal=True, lockout_threshold=3)
    user = (await put(s, {"username": "bran", "password": "Thr33-eyed-raven"})).json()
    c = s.seed_client  # type: ignore[attr-defined]
    first = (await s.client.post("/api/auth/login", json=password_login(c, "bran", "Thr33-eyed-raven"))).json()
    for _ in range(3):
        await s.client.post("/api/auth/login", json=password_login(c, "bran", "wrong-one"))
    refresh = {"type": "refreshToken", **c, "refreshToken": first["refreshToken"]}
    envelope(await s.client.post("/api/auth/login", json=refresh), 401)  # the lockout is running
    async with s.core.store.transaction() as tx:
        row = await tx.users.get(int(user["id"]), for_update=True)
        assert row is not None and row.is_locked
        row.locked_at = datetime.now(UTC) - timedelta(minutes=s.core.settings.lockout_minutes, seconds=1)
        await tx.users.save(row)
    r = await s.client.post("/api/auth/login", json=refresh)
    assert r.status_code == 200, r.text
    assert (await s.core.sessions.authenticate(r.json()["accessToken"])).user_id == int(user["id"])
    r = await s.client.get(f"/api/users/{user['id']}", headers=SYS)
    assert r.json()["isLocked"] is False and r.json()["lockedAt"] is None
    events = (await s.client.get("/api/admin/audit", params={"type": "account.unlocked"}, headers=SYS)).json()["items"]
    assert [e["userId"] for e in events] == [user["id"]]


async def test_refresh_follows_the_configured_lockout_length(make_harness: Any) -> None:
    """AUTHGATE_LOCKOUT_MINUTES=2: a lock set 3 minutes ago is over for refresh too (not the default 15);
    the unlock is audited with the caller's IP."""
    s = await harness(make_harness, internal=True, lockout_threshold=3, lockout_minutes=2)
    user = (await put(s, {"username": "hodor", "password": "H0ld-the-door"})).json()
    c = s.seed_client  # type: ignore[attr-defined]
    first = (await s.client.post("/api/auth/login", json=password_login(c, "hodor", "H0ld-the-door"))).json()
    for _ in range(3):
        await s.client.post("/api/auth/login", json=password_login(c, "hodor", "wrong-one"))
    async with s.core.store.transaction() as tx:
        row = await tx.users.get(int(user["id"]), for_update=True)
        assert row is not None and row.is_locked
        row.locked_at = datetime.now(UTC) - timedelta(minutes=3)
        await tx.users.save(row)
    refresh = {"type": "refreshToken", **c, "refreshToken": first["refreshToken"]}
    r = await s.client.post("/api/auth/login", json=refresh)
    assert r.status_code == 200, r.text
    events = (await s.client.get("/api/admin/audit", params={"type": "account.unlocked"}, headers=SYS)).json()["items"]
    assert [(e["userId"], e["ip"]) for e in events] == [(user["id"], "203.0.113.7")]
