"""App surface (seed 001, CONTRACT §4): accounts, info, password login, the envelope and bad input.

Helpers here are shared by the other ``test_app_*.py`` files.
"""

from __future__ import annotations

import asyncio

import json

from typing import Any

import jwt
import pytest

from authgate.core.flows.users import new_user
from authgate.core.model import User
from tests.conftest import Harness

BASE = "/app/auth"
EMAIL = "test@aritaone.com"
PHONE = "+85268098227"
PASSWORD = "PasghWgf"


# --- helpers -------------------------------------------------------------------------------------
async def make_user(
    h: Harness,
    *,
    username: str = "OZFQkAz5",
    email: str | None = EMAIL,
    phone: str | None = PHONE,
    password: str | None = PASSWORD,
    **fields: Any,
) -> User:
    user = new_user(
        h.core,
        username,
        email=email,
        phone=phone,
        **{
            "email_verified": bool(email),
            "phone_verified": bool(phone),
            "password_hash": await h.core.hasher.hash(password) if password else None,
            **fields,
        },
    )
    async with h.core.store.transaction() as tx:
        await tx.users.create(user)
    return user


async def get_user(h: Harness, user_id: int) -> User:
    async with h.core.store.transaction(write=False) as tx:
        user = await tx.users.get(user_id)
    assert user is not None
    return user


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def login(h: Harness, login_id: str = EMAIL, password: str = PASSWORD, device: str = "1234567890") -> dict:
    r = await h.client.post(f"{BASE}/login", json={"loginID": login_id, "password": password, "deviceToken": device})
    assert r.status_code == 200, r.text
    return r.json()["data"]  # type: ignore[no-any-return]


async def send_otp(h: Harness, nature: int, login_id: str, send_type: int = 0, token: str | None = None) -> str:
    r = await h.client.post(
        f"{BASE}/otp",
        json={"nature": nature, "loginID": login_id, "sendType": send_type},
        headers=auth(token) if token else {},
    )
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["message"] == ""
    return r.json()["data"]["otpToken"]  # type: ignore[no-any-return]


def claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})  # type: ignore[no-any-return]


def error(message: str) -> dict[str, Any]:
    return {"success": False, "message": message, "data": None}


# --- account check -------------------------------------------------------------------------------
async def test_account_check_seed_example(hdb: Harness) -> None:
    await make_user(hdb)
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "test@aritaone.com"})
    assert r.status_code == 200
    assert r.json() == {
        "success": True,
        "message": "",
        "data": {"accountType": 2, "exists": True, "setPassword": True},
    }


async def test_account_check_classifies_every_spelling(h: Harness) -> None:
    await make_user(h, password=None)
    for login_id, account_type in (("ozfqkaz5", 1), ("TEST@AritaOne.com", 2), ("68098227", 3), ("+852 6809 8227", 3)):
        r = await h.client.post(f"{BASE}/account/check", json={"loginID": login_id})
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"accountType": account_type, "exists": True, "setPassword": False}


async def test_unknown_account_is_404_localised(hdb: Harness) -> None:
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "test@aritaone.com"}, headers={"locale": "zh-Hant"})
    assert (r.status_code, r.json()) == (404, error("輸入的用戶名不存在"))
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "nobody"})
    assert (r.status_code, r.json()) == (404, error("The username does not exist"))
    # Accept-Language when there is no locale header; the locale header wins over it
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "nobody"}, headers={"accept-language": "zh-HK,en;q=0.5"})
    assert r.json()["message"] == "輸入的用戶名不存在"
    r = await hdb.client.post(
        f"{BASE}/account/check", json={"loginID": "nobody"}, headers={"locale": "fr", "accept-language": "zh-Hant"}
    )
    assert r.json()["message"] == "Le nom d'utilisateur n'existe pas"
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "nobody"}, headers={"locale": "zh"})
    assert r.json()["message"] == "输入的用户名不存在"


async def test_accept_language_weights_are_honoured(h: Harness) -> None:
    """RFC 9110 §12.5.4: the highest q wins, not the first range listed."""
    body = {"loginID": "nobody"}
    r = await h.client.post(f"{BASE}/account/check", json=body, headers={"accept-language": "fr;q=0.1, zh-Hant;q=0.9"})
    assert r.json()["message"] == "輸入的用戶名不存在"
    # the locale header still wins over Accept-Language, whatever its weights
    headers = {"locale": "fr", "accept-language": "zh-Hant;q=1, fr;q=0.1"}
    r = await h.client.post(f"{BASE}/account/check", json=body, headers=headers)
    assert r.json()["message"] == "Le nom d'utilisateur n'existe pas"


@pytest.mark.parametrize(
    ("locale", "accept", "chosen"),
    [
        (None, "fr;q=0.1, zh-Hant;q=0.9", "zh-Hant"),
        (None, "zh-HK,en;q=0.5", "zh-Hant"),
        (None, "sw;q=0.8, fr;q=0.8", "sw"),  # equal weights: the order sent
        (None, "de, fr;q=0.5", "fr"),  # the best range we do not serve is skipped
        (None, "fr;q=0, sw;q=0.2", "sw"),  # q=0: not acceptable
        (None, "fr;Q=0.300, zh;q=0.2", "fr"),
        (None, "fr;q=abc, zh;q=0.2", "zh"),  # an unreadable weight drops its range
        (None, "fr;q=1.5, zh;q=0.2", "zh"),
        (None, "en;q=0, *;q=0.5", "zh-Hant"),  # any language but English
        (None, "de, *;q=0.1", "en"),
        (None, "de", "en"),
        ("zh", "fr", "zh"),
        ("de", "fr;q=0.2, sw;q=0.3", "sw"),  # a locale header we cannot serve leaves it to Accept-Language
        ("fr;q=0.1, zh;q=0.9", None, "zh"),
    ],
)
def test_negotiate(locale: str | None, accept: str | None, chosen: str) -> None:
    from authgate.core.i18n import negotiate

    assert negotiate(locale, accept) == chosen


@pytest.mark.parametrize("path", ["/account/check", "/username/info"])
async def test_lookups_are_rate_limited_per_ip(make_harness, path: str) -> None:
    h = await make_harness(limit_account_check="3/minute")
    body = {"loginID": "nobody"} if path == "/account/check" else {"username": "nobody"}
    for _ in range(3):
        assert (await h.client.post(BASE + path, json=body)).status_code == 404
    r = await h.client.post(BASE + path, json=body)
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) >= 1
    assert r.json()["success"] is False and r.json()["data"] is None
    assert "Too many requests" in r.json()["message"]


# --- username info -------------------------------------------------------------------------------
async def test_username_info_seed_example(hdb: Harness) -> None:
    await make_user(hdb, email="billy.chan@aritaone.com")
    r = await hdb.client.post(f"{BASE}/username/info", json={"username": "OZFQkAz5"})
    assert r.status_code == 200
    assert r.json() == {"success": True, "message": "", "data": {"email": "bi*****@*****.com", "phone": "******27"}}


async def test_username_info_null_where_none_and_404_for_unknown(h: Harness) -> None:
    await make_user(h, email=None, phone="+447911123456", username="only.phone")
    r = await h.client.post(f"{BASE}/username/info", json={"username": "ONLY.PHONE"})
    assert r.json()["data"] == {"email": None, "phone": "********56"}  # 10 national digits
    await make_user(h, phone=None, username="only.mail", email="ab@example.co.uk")
    r = await h.client.post(f"{BASE}/username/info", json={"username": "only.mail"})
    assert r.json()["data"] == {"email": "a*****@*****.uk", "phone": None}
    r = await h.client.post(f"{BASE}/username/info", json={"username": "ghost"}, headers={"locale": "zh-Hant"})
    assert (r.status_code, r.json()) == (404, error("輸入的用戶名不存在"))
    # an email is not a username here
    r = await h.client.post(f"{BASE}/username/info", json={"username": "ab@example.co.uk"})
    assert r.status_code == 404


# --- info (Bearer) -------------------------------------------------------------------------------
async def test_info_seed_example_unblurred(hdb: Harness) -> None:
    await make_user(hdb)
    tokens = await login(hdb)
    r = await hdb.client.get(f"{BASE}/info", headers=auth(tokens["accessToken"]))
    assert r.status_code == 200
    assert r.json() == {"success": True, "message": "", "data": {"email": "test@aritaone.com", "phone": "68098227"}}


async def test_info_foreign_phone_is_e164(h: Harness) -> None:
    await make_user(h, phone="+447911123456")
    tokens = await login(h)
    r = await h.client.get(f"{BASE}/info", headers=auth(tokens["accessToken"]))
    assert r.json()["data"]["phone"] == "+447911123456"


async def test_info_needs_a_valid_access_token(h: Harness) -> None:
    await make_user(h)
    r = await h.client.get(f"{BASE}/info")
    assert (r.status_code, r.json()) == (401, error("Token is missing or invalid"))
    for header in ("Bearer not-a-jwt", "Basic abc", "Bearer "):
        r = await h.client.get(f"{BASE}/info", headers={"authorization": header})
        assert r.status_code == 401 and r.json()["success"] is False
    # a token of another kind (an otpToken) is refused as Bearer
    otp_token = await send_otp(h, 1, EMAIL)
    r = await h.client.get(f"{BASE}/info", headers=auth(otp_token))
    assert (r.status_code, r.json()) == (401, error("Token is missing or invalid"))
    r = await h.client.get(f"{BASE}/info", headers={**auth("x"), "locale": "zh-Hant"})
    assert r.json()["message"] == "令牌缺失或無效"


# --- password login ------------------------------------------------------------------------------
async def test_login_seed_example_stores_the_device_token(hdb: Harness) -> None:
    user = await make_user(hdb)
    r = await hdb.client.post(
        f"{BASE}/login", json={"loginID": "test@aritaone.com", "password": "PasghWgf", "deviceToken": "1234567890"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["message"] == ""
    assert set(body["data"]) == {"accessToken", "refreshToken", "expiresIn"}
    assert body["data"]["expiresIn"] == 3600
    token = claims(body["data"]["accessToken"])
    assert token["typ"] == "access" and token["sub"] == str(user.id)
    async with hdb.core.store.transaction(write=False) as tx:
        session = await tx.sessions.get(token["sid"])
    assert session is not None and session.device_token == "1234567890" and session.surface == "app"


async def test_login_by_username_and_phone(h: Harness) -> None:
    await make_user(h)
    for login_id in ("ozfqkaz5", "68098227", "+85268098227"):
        await login(h, login_id)


async def test_unknown_user_and_wrong_password_are_the_same_401(hdb: Harness) -> None:
    await make_user(hdb)
    wrong = await hdb.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "Wrong-pass1", "deviceToken": "d"})
    unknown = await hdb.client.post(
        f"{BASE}/login", json={"loginID": "who@aritaone.com", "password": "Wrong-pass1", "deviceToken": "d"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json() == error("Invalid username or password")
    r = await hdb.client.post(
        f"{BASE}/login", json={"loginID": "ghost", "password": "x", "deviceToken": "d"}, headers={"locale": "zh-Hant"}
    )
    assert r.json() == error("用戶名或密碼錯誤")


async def test_locked_account_is_423_and_a_reset_unlocks_it(make_harness) -> None:
    h = await make_harness(lockout_threshold=3)
    await make_user(h)
    for _ in range(3):
        r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "Wrong-pass1", "deviceToken": "d"})
        assert r.status_code == 401
    r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": PASSWORD, "deviceToken": "d"})
    assert (r.status_code, r.json()) == (423, error("The account is locked"))
    # forgot password by OTP, then reset: the lock is gone
    otp_token = await send_otp(h, 3, EMAIL)
    r = await h.client.post(f"{BASE}/forgot-password/verify", json={"otp": int(h.last_code()), "otpToken": otp_token})
    reset = r.json()["data"]["accessToken"]
    r = await h.client.put(f"{BASE}/password", json={"password": "N3w-secret"}, headers=auth(reset))
    assert r.status_code == 200, r.text
    await login(h, password="N3w-secret")


async def test_a_locked_account_answers_every_guess_alike_so_guessing_on_learns_nothing(make_harness) -> None:
    """While the lockout holds the password is not checked: without this the right password got 423
    and a wrong one 401, so an attacker could keep guessing past the lock and tell when he hit."""
    h = await make_harness(lockout_threshold=3)
    await make_user(h)
    for _ in range(3):
        r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "Wrong-pass1", "deviceToken": "d"})
        assert r.status_code == 401
    answers = set()
    for guess in ("Wrong-pass2", PASSWORD, "Wrong-pass3"):
        r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": guess, "deviceToken": "d"})
        answers.add((r.status_code, r.text))
    assert answers == {(423, json.dumps(error("The account is locked"), separators=(",", ":")))}, answers


async def test_parallel_guesses_past_the_threshold_get_the_locked_answer(make_harness) -> None:
    """Guesses read the account before it was locked, and counted after: past the threshold they
    get 423, as the right password does then, not the 401 of a plain wrong password."""
    h = await make_harness(lockout_threshold=3)
    await make_user(h)

    async def attempt(i: int) -> int:
        r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": f"Wrong-pass{i}", "deviceToken": "d"})
        return r.status_code

    statuses = await asyncio.gather(*(attempt(i) for i in range(12)))
    assert sorted(statuses) == [401] * 3 + [423] * 9, statuses


async def test_an_access_token_stops_working_on_every_endpoint_while_its_account_is_locked(make_harness) -> None:
    """A thief's token must stop with the lock (and with a deactivation) on every endpoint, not
    only on /info: device token, PIN and OTP natures answered 200 before."""
    h = await make_harness(lockout_threshold=3)
    await make_user(h)
    token = (await login(h))["accessToken"]
    calls = [("GET", "/info", None), ("PUT", "/device-token", {"deviceToken": "dt-2"}),
             ("PUT", "/pin", {"pin": "4821"}), ("POST", "/pin/verify", {"pin": "4821"})]
    for method, path, body in calls[:3]:
        r = await h.client.request(method, f"{BASE}{path}", json=body, headers=auth(token))
        assert r.status_code == 200, (path, r.text)
    for _ in range(3):
        r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "Wrong-pass1", "deviceToken": "d"})
    await asyncio.sleep(0.6)  # past the user cache
    for method, path, body in calls:
        r = await h.client.request(method, f"{BASE}{path}", json=body, headers=auth(token))
        assert (r.status_code, r.json()) == (423, error("The account is locked")), (path, r.text)


LOGIN_422 = [
    ({"loginID": EMAIL, "password": PASSWORD, "deviceToken": "x" * 256}, "deviceToken"),
    ({"loginID": EMAIL, "password": PASSWORD, "deviceToken": ""}, "deviceToken"),
    ({"loginID": EMAIL, "password": PASSWORD}, "deviceToken"),
    ({"loginID": EMAIL, "password": PASSWORD, "deviceToken": "d", "deviceType": 7}, "deviceType"),
    ({"loginID": EMAIL, "deviceToken": "d"}, "password"),
    ({"password": PASSWORD, "deviceToken": "d"}, "loginID"),
    ({"loginID": "bad@", "password": PASSWORD, "deviceToken": "d"}, "loginID"),
]


async def test_login_bad_input_is_422_naming_the_field(h: Harness) -> None:
    for body, field in LOGIN_422:
        r = await h.client.post(f"{BASE}/login", json=body)
        assert r.status_code == 422, body
        assert set(r.json()) == {"success", "message", "data"}
        assert r.json()["success"] is False and r.json()["data"] is None
        assert field in r.json()["message"], (body, r.json())


async def test_422_message_is_localised(h: Harness) -> None:
    r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "deviceToken": "d"}, headers={"locale": "zh-Hant"})
    assert (r.status_code, r.json()) == (422, error("password 的值無效"))


async def test_password_longer_than_a_legacy_hash_checks_is_a_failed_login(h: Harness) -> None:
    import bcrypt

    # bcrypt only reads 72 bytes: the 80-byte password would "match" a hash of its first 72
    legacy = bcrypt.hashpw(("é" * 36).encode(), bcrypt.gensalt(4)).decode()
    await make_user(h, password=None, password_hash=legacy)
    r = await h.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": "é" * 40, "deviceToken": "d"})
    assert (r.status_code, r.json()) == (401, error("Invalid username or password"))
    await login(h, password="é" * 36)


# --- the shared pipeline in this envelope --------------------------------------------------------
async def test_malformed_oversized_unknown_path_and_wrong_method(h: Harness) -> None:
    r = await h.client.post(f"{BASE}/login", content=b"{bad", headers={"content-type": "application/json"})
    assert (r.status_code, r.json()) == (400, error("Malformed JSON body"))
    r = await h.client.post(f"{BASE}/login", content=b"{" + b" " * 70000 + b"}")
    assert (r.status_code, r.json()) == (413, error("Request body too large"))
    r = await h.client.get(f"{BASE}/nothing-here")
    assert (r.status_code, r.json()) == (404, error("Not found"))
    r = await h.client.get(f"{BASE}/login")
    assert (r.status_code, r.json()) == (405, error("Method not allowed"))
    r = await h.client.get(f"{BASE}/nothing-here", headers={"locale": "zh-Hant"})
    assert (r.status_code, r.json()) == (404, error("找不到資源"))


async def test_a_deactivated_account_answers_alike_for_right_and_wrong_passwords(hdb: Harness) -> None:
    """As for a lockout: a deactivated account's password is not checked, so the answer cannot
    tell a guesser they found it (the right one got "inactive", a wrong one "invalid")."""
    user = await make_user(hdb, is_active=False)
    answers = set()
    for password in (PASSWORD, "Wrong-pass1"):
        r = await hdb.client.post(f"{BASE}/login", json={"loginID": EMAIL, "password": password, "deviceToken": "d"})
        answers.add((r.status_code, r.json()["message"]))
        r = await hdb.client.post("/api/auth/v1/login", json={"email": EMAIL, "password": password})
        answers.add((r.status_code, r.json()["message"]))
    assert answers == {(401, "The account is inactive"), (401, "User login failed")}, answers
    async with hdb.core.store.transaction(write=False) as tx:
        stored = await tx.users.get_any(user.id)
        reasons = [e.detail["reason"] for e in await tx.audit.list(user_id=user.id, type="login.failed")]
    assert stored is not None and stored.failed_logins == 0 and reasons == ["inactive"] * 4
