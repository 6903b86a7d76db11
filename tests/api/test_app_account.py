"""App surface (seed 001): passwords, logout, device tokens and PINs (all Bearer)."""

from __future__ import annotations

import pytest

from authgate.core.flows.passwords import generate_password
from authgate.core.passwords import PasswordPolicy
from tests.api.test_app import BASE, EMAIL, auth, claims, error, get_user, login, make_user
from tests.conftest import Harness

OK = {"success": True, "message": "", "data": None}


async def session_of(h: Harness, access: str):  # type: ignore[no-untyped-def]
    async with h.core.store.transaction(write=False) as tx:
        return await tx.sessions.get(claims(access)["sid"])


async def otp_signup(h: Harness, email: str = "fresh@aritaone.com") -> str:
    r = await h.client.post(f"{BASE}/otp", json={"nature": 2, "loginID": email, "sendType": 0})
    token = r.json()["data"]["otpToken"]
    r = await h.client.post(f"{BASE}/signup/verify", json={"otp": int(h.last_code()), "otpToken": token})
    return r.json()["data"]["accessToken"]  # type: ignore[no-any-return]


# --- POST /password: the first password ----------------------------------------------------------
async def test_set_first_password_seed_example_then_409(hdb: Harness) -> None:
    access = await otp_signup(hdb)
    r = await hdb.client.post(f"{BASE}/password", json={"password": "gdfhdjo33"}, headers=auth(access))
    assert (r.status_code, r.json()) == (200, OK)
    await login(hdb, "fresh@aritaone.com", "gdfhdjo33")
    r = await hdb.client.post(f"{BASE}/password", json={"password": "an0ther-one"}, headers=auth(access))
    assert (r.status_code, r.json()) == (409, error("A password is already set"))
    r = await hdb.client.post(
        f"{BASE}/password", json={"password": "an0ther-one"}, headers={**auth(access), "locale": "zh-Hant"}
    )
    assert r.json()["message"] == "已設定密碼"


async def test_set_password_generated_when_absent(h: Harness) -> None:
    access = await otp_signup(h)
    r = await h.client.post(f"{BASE}/password", headers=auth(access))  # no body at all
    assert r.status_code == 200, r.text
    generated = r.json()["data"]["password"]
    PasswordPolicy().check(generated)
    await login(h, "fresh@aritaone.com", generated)
    access = await otp_signup(h, "second@aritaone.com")
    r = await h.client.post(f"{BASE}/password", json={}, headers=auth(access))
    assert r.json()["data"]["password"] != generated


def test_generated_passwords_pass_narrow_policies() -> None:
    for policy in (PasswordPolicy(6, 8), PasswordPolicy(20, 40), PasswordPolicy(8, 64, any_printable=True)):
        for _ in range(20):
            policy.check(generate_password(policy))


async def test_password_policy_is_422_naming_password(h: Harness) -> None:
    access = await otp_signup(h)
    for bad in ("abc12", "a" * 41, "pässword12", "has space1", "password1", 12345678):
        for method in ("POST", "PUT"):
            r = await h.client.request(method, f"{BASE}/password", json={"password": bad}, headers=auth(access))
            assert r.status_code == 422, (bad, method, r.text)
            assert "password" in r.json()["message"] and r.json()["data"] is None
    r = await h.client.put(f"{BASE}/password", json={}, headers=auth(access))
    assert r.status_code == 422 and "password" in r.json()["message"]
    user = await get_user(h, int(claims(access)["sub"]))
    assert user.password_hash is None


async def test_password_endpoints_need_a_bearer(h: Harness) -> None:
    for method in ("POST", "PUT"):
        r = await h.client.request(method, f"{BASE}/password", json={"password": "gdfhdjo33"})
        assert (r.status_code, r.json()) == (401, error("Token is missing or invalid"))


# --- PUT /password with an access token ----------------------------------------------------------
async def test_reset_with_access_token_keeps_this_session_revokes_the_others(hdb: Harness) -> None:
    user = await make_user(hdb)
    this = (await login(hdb))["accessToken"]
    other = (await login(hdb))["accessToken"]
    async with hdb.core.store.transaction() as tx:
        fresh = await tx.users.get(user.id)
        assert fresh is not None
        fresh.failed_logins = 4
        await tx.users.save(fresh)
    r = await hdb.client.put(f"{BASE}/password", json={"password": "gdfhdjo33"}, headers=auth(this))
    assert (r.status_code, r.json()) == (200, OK)
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(this))).status_code == 200
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(other))).status_code == 401
    assert (await get_user(hdb, user.id)).failed_logins == 0
    await login(hdb, password="gdfhdjo33")
    r = await hdb.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "PasghWgf", "deviceToken": "d"})
    assert r.status_code == 401


# --- logout and device tokens --------------------------------------------------------------------
async def test_logout_revokes_the_session(hdb: Harness) -> None:
    await make_user(hdb)
    tokens = await login(hdb)
    other = (await login(hdb))["accessToken"]
    r = await hdb.client.delete(f"{BASE}/logout", headers=auth(tokens["accessToken"]))
    assert (r.status_code, r.json()) == (200, OK)
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(tokens["accessToken"]))).status_code == 401
    assert (await hdb.client.delete(f"{BASE}/logout", headers=auth(tokens["accessToken"]))).status_code == 401
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(other))).status_code == 200  # only that one
    assert (await hdb.client.delete(f"{BASE}/logout")).status_code == 401
    assert (await hdb.client.post(f"{BASE}/logout", headers=auth(other))).status_code == 405


async def test_device_token_seed_example_and_type(h: Harness) -> None:
    await make_user(h)
    access = (await login(h))["accessToken"]
    seed = "D2fdAbE5e9bcAFDBE5bEeED3b795ecf44B35e99B6D28591429fEE6B7C0BcCed1"
    r = await h.client.put(f"{BASE}/device-token", json={"deviceToken": seed}, headers=auth(access))
    assert (r.status_code, r.json()) == (200, OK)
    session = await session_of(h, access)
    assert (session.device_token, session.device_type) == (seed, None)
    r = await h.client.put(f"{BASE}/device-token", json={"deviceToken": "x" * 255, "deviceType": 2}, headers=auth(access))
    assert r.status_code == 200
    r = await h.client.put(f"{BASE}/device-token", json={"deviceToken": "again"}, headers=auth(access))
    session = await session_of(h, access)
    assert (session.device_token, session.device_type) == ("again", 2)  # the type stays when not sent


async def test_device_token_bad_input_and_no_bearer(h: Harness) -> None:
    await make_user(h)
    access = (await login(h))["accessToken"]
    for body, field in (
        ({"deviceToken": "x" * 256}, "deviceToken"),
        ({"deviceToken": ""}, "deviceToken"),
        ({}, "deviceToken"),
        ({"deviceToken": "ok", "deviceType": 3}, "deviceType"),
        ({"deviceToken": "ok", "deviceType": "ios"}, "deviceType"),
    ):
        r = await h.client.put(f"{BASE}/device-token", json=body, headers=auth(access))
        assert r.status_code == 422, body
        assert field in r.json()["message"]
    r = await h.client.put(f"{BASE}/device-token", json={"deviceToken": "ok"})
    assert r.status_code == 401


# --- PIN -----------------------------------------------------------------------------------------
async def test_pin_set_verify_and_lock_after_five_wrong(hdb: Harness) -> None:
    user = await make_user(hdb)
    access = (await login(hdb))["accessToken"]
    r = await hdb.client.post(f"{BASE}/pin/verify", json={"pin": "1234"}, headers=auth(access))
    assert (r.status_code, r.json()) == (409, error("No PIN is set"))
    r = await hdb.client.put(f"{BASE}/pin", json={"pin": "123456"}, headers=auth(access))
    assert (r.status_code, r.json()) == (200, OK)
    stored = (await get_user(hdb, user.id)).pin_hash
    assert stored and stored.startswith("$argon2id$") and "123456" not in stored
    assert (await hdb.client.post(f"{BASE}/pin/verify", json={"pin": "123456"}, headers=auth(access))).json() == OK
    for attempt in range(1, 6):
        r = await hdb.client.post(f"{BASE}/pin/verify", json={"pin": "654321"}, headers=auth(access))
        if attempt < 5:
            assert (r.status_code, r.json()) == (401, error("The PIN is wrong"))
        else:
            assert (r.status_code, r.json()) == (423, error("Too many wrong PINs; reset the PIN to use it again"))
    r = await hdb.client.post(f"{BASE}/pin/verify", json={"pin": "123456"}, headers=auth(access))
    assert r.status_code == 423  # even the right PIN, until it is reset
    r = await hdb.client.post(
        f"{BASE}/pin/verify", json={"pin": "123456"}, headers={**auth(access), "locale": "zh-Hant"}
    )
    assert r.json()["message"] == "PIN 碼錯誤次數過多，請重設 PIN 碼"
    assert (await hdb.client.put(f"{BASE}/pin", json={"pin": "2468"}, headers=auth(access))).status_code == 200
    assert (await hdb.client.post(f"{BASE}/pin/verify", json={"pin": "2468"}, headers=auth(access))).json() == OK


async def test_right_pin_resets_the_count(h: Harness) -> None:
    await make_user(h)
    access = (await login(h))["accessToken"]
    await h.client.put(f"{BASE}/pin", json={"pin": "1357"}, headers=auth(access))
    for _ in range(3):
        for _ in range(4):
            r = await h.client.post(f"{BASE}/pin/verify", json={"pin": "9999"}, headers=auth(access))
            assert r.status_code == 401
        assert (await h.client.post(f"{BASE}/pin/verify", json={"pin": "1357"}, headers=auth(access))).status_code == 200


async def test_pin_bad_input_and_no_bearer(h: Harness) -> None:
    await make_user(h)
    access = (await login(h))["accessToken"]
    for path, method in (("/pin", "PUT"), ("/pin/verify", "POST")):
        for pin in ("123", "1234567", "12a4", "１２３４", 1234, None):
            r = await h.client.request(method, f"{BASE}{path}", json={"pin": pin}, headers=auth(access))
            assert r.status_code == 422, (path, pin)
            assert "pin" in r.json()["message"]
        r = await h.client.request(method, f"{BASE}{path}", json={"pin": "1234"})
        assert r.status_code == 401


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/password"), ("POST", "/password"), ("PUT", "/device-token"), ("PUT", "/pin"),
    ("POST", "/pin/verify"), ("POST", "/email/verify"), ("POST", "/phone/verify"),
])
async def test_the_bearer_is_checked_before_the_body(h: Harness, method: str, path: str) -> None:
    """No token → 401 whatever the body (it was a 422 about the body, telling a caller without a
    token what the endpoint wants); a good token with a bad body → 422."""
    r = await h.client.request(method, f"/app/auth{path}", json={"unexpected": True})
    assert r.status_code == 401, (path, r.text)
    assert r.json()["success"] is False and r.json()["data"] is None
    if (method, path) == ("POST", "/password"):
        return  # its body is optional: nothing in it can be missing
    await make_user(h)
    token = (await login(h))["accessToken"]
    r = await h.client.request(method, f"/app/auth{path}", json={"unexpected": True}, headers=auth(token))
    assert r.status_code == 422, (path, r.text)
