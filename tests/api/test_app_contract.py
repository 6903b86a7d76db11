"""App surface (seed 001) against CONTRACT §1's shared rules, found missing by an audit:
per-IP limits on the OTP endpoints, the user on ``otp.failed`` audit events, and booleans sent for
the seed's numbered values."""

from __future__ import annotations

from tests.api.test_app import BASE, EMAIL, auth, error, login, make_user, send_otp
from tests.conftest import Harness, HarnessFactory


async def _otp(h: Harness, nature: int, login_id: str, send_type: int = 0):  # type: ignore[no-untyped-def]
    body = {"nature": nature, "loginID": login_id, "sendType": send_type}
    return await h.client.post(f"{BASE}/otp", json=body)


# --- CONTRACT §1: rate limits per IP on every endpoint that reveals whether an account exists ----
async def test_otp_answers_that_reveal_an_account_are_limited_per_ip(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_account_check="3/minute")
    await make_user(h)
    # answers that tell nothing about an account do not count
    for _ in range(4):
        assert (await _otp(h, 1, EMAIL, send_type=1)).status_code == 422
    # 404 (natures 1, 3: no such account) and 409 (nature 2: it exists) count
    assert (await _otp(h, 1, "nobody1@example.com")).status_code == 404
    assert (await _otp(h, 3, "nobody2")).status_code == 422  # a username needs sendType 1 or 2
    assert (await _otp(h, 3, "nobody2", send_type=1)).status_code == 404
    assert (await _otp(h, 2, EMAIL)).status_code == 409
    r = await _otp(h, 1, "nobody3@example.com")
    assert (r.status_code, r.json()["success"], r.json()["data"]) == (429, False, None)
    assert int(r.headers["retry-after"]) >= 1
    # refused before anything is looked up, for a real account too
    assert (await _otp(h, 1, EMAIL)).status_code == 429
    # account check keeps its own budget
    r = await h.client.post(f"{BASE}/account/check", json={"loginID": EMAIL})
    assert r.status_code == 200


async def test_ordinary_otp_sends_do_not_use_the_lookup_budget(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_account_check="1/minute")
    await make_user(h)
    await send_otp(h, 1, EMAIL)
    await send_otp(h, 3, EMAIL)
    await send_otp(h, 2, "someone-new@example.com")
    assert (await _otp(h, 1, "nobody@example.com")).status_code == 404


# --- CONTRACT §1: rate limits per IP on every endpoint that checks a secret ----------------------
async def test_wrong_otp_codes_are_limited_per_ip(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_failed_login="3/hour")
    tokens = []
    for i in range(4):
        tokens.append((await send_otp(h, 2, f"new{i}@example.com"), h.last_code()))
    for token, code in tokens[:3]:
        wrong = f"{(int(code) + 1) % 10000:04d}"
        r = await h.client.post(f"{BASE}/signup/verify", json={"otp": wrong, "otpToken": token})
        assert r.status_code == 401
    token, code = tokens[3]
    r = await h.client.post(
        f"{BASE}/signup/verify", json={"otp": code, "otpToken": token}, headers={"locale": "zh-Hant"}
    )
    assert r.status_code == 429 and r.json()["success"] is False and r.json()["data"] is None
    assert int(r.headers["retry-after"]) >= 1
    assert "秒" in r.json()["message"]


async def test_right_otp_codes_do_not_use_the_failure_budget(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_failed_login="1/hour")
    for i in range(3):
        token = await send_otp(h, 2, f"ok{i}@example.com")
        r = await h.client.post(f"{BASE}/signup/verify", json={"otp": h.last_code(), "otpToken": token})
        assert r.status_code == 200, r.text


# --- CONTRACT §1: every OTP failure is audited with its user ----------------------------------------
async def test_failed_otp_is_audited_with_the_account(h: Harness) -> None:
    user = await make_user(h)
    token = await send_otp(h, 1, EMAIL)
    wrong = f"{(int(h.last_code()) + 1) % 10000:04d}"
    r = await h.client.post(f"{BASE}/login/verify", json={"otp": wrong, "otpToken": token})
    assert r.status_code == 401
    async with h.core.store.transaction(write=False) as tx:
        events = [e.type for e in await tx.audit.list(user_id=user.id)]
    assert "otp.failed" in events


# --- CONTRACT §1: an invalid field is 422 naming it --------------------------------------------
async def test_booleans_are_not_the_seeds_numbered_values(h: Harness) -> None:
    await make_user(h)
    r = await h.client.post(f"{BASE}/otp", json={"nature": True, "loginID": EMAIL, "sendType": 0})
    assert (r.status_code, r.json()) == (422, error("Invalid value for nature: must be an integer"))
    r = await h.client.post(f"{BASE}/otp", json={"nature": 1, "loginID": EMAIL, "sendType": False})
    assert (r.status_code, r.json()) == (422, error("Invalid value for sendType: must be an integer"))
    body = {"loginID": EMAIL, "password": "PasghWgf", "deviceToken": "1234567890", "deviceType": True}
    r = await h.client.post(f"{BASE}/login", json=body)
    assert (r.status_code, r.json()) == (422, error("Invalid value for deviceType: must be an integer"))
    access = (await login(h))["accessToken"]
    body = {"deviceToken": "abc", "deviceType": False}
    r = await h.client.put(f"{BASE}/device-token", json=body, headers=auth(access))
    assert (r.status_code, r.json()) == (422, error("Invalid value for deviceType: must be an integer"))
    r = await h.client.post(f"{BASE}/login/verify", json={"otp": 1234, "otpToken": "x", "deviceType": True})
    assert (r.status_code, r.json()) == (422, error("Invalid value for deviceType: must be an integer"))
    # numbers (and digit strings, as before) are still read
    body = {"deviceToken": "abc", "deviceType": "1"}
    r = await h.client.put(f"{BASE}/device-token", json=body, headers=auth(access))
    assert r.status_code == 200


async def test_wrong_pins_are_limited_per_ip(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_failed_login="3/hour")
    await make_user(h)
    await make_user(h, username="second", email="second@example.com", phone=None)
    tokens = [(await login(h))["accessToken"], (await login(h, "second@example.com"))["accessToken"]]
    for access in tokens:
        assert (await h.client.put(f"{BASE}/pin", json={"pin": "1357"}, headers=auth(access))).status_code == 200
    for access in (tokens[0], tokens[1], tokens[0]):  # fewer than either account's 5 tries
        r = await h.client.post(f"{BASE}/pin/verify", json={"pin": "9999"}, headers=auth(access))
        assert (r.status_code, r.json()) == (401, error("The PIN is wrong"))
    for access in tokens:  # refused before the PIN is checked, even the right one, on any account
        r = await h.client.post(f"{BASE}/pin/verify", json={"pin": "1357"}, headers=auth(access))
        assert r.status_code == 429 and r.json()["success"] is False and r.json()["data"] is None
        assert int(r.headers["retry-after"]) >= 1
    # password logins keep their own budget
    assert (await login(h))["accessToken"]


async def test_right_pins_do_not_use_the_failure_budget(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_failed_login="1/hour")
    await make_user(h)
    access = (await login(h))["accessToken"]
    await h.client.put(f"{BASE}/pin", json={"pin": "2468"}, headers=auth(access))
    for _ in range(3):
        r = await h.client.post(f"{BASE}/pin/verify", json={"pin": "2468"}, headers=auth(access))
        assert r.status_code == 200, r.text
