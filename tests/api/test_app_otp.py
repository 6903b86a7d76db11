"""App surface OTPs (seed 001): the five natures, sendType rules, the three verify endpoints plus
email/phone verify, and every way a code or an otpToken is refused."""

from __future__ import annotations

import pytest

from authgate.core.model import TokenType
from tests.api.conftest import last_sms_code
from tests.api.test_app import (
    BASE,
    EMAIL,
    PHONE,
    auth,
    claims,
    error,
    get_user,
    login,
    make_user,
    send_otp,
)
from tests.conftest import Harness

SEED_OTP = {"nature": 1, "loginID": "test@aritaone.com", "sendType": 0}


async def verify(h: Harness, path: str, otp: object, token: str, bearer: str | None = None):  # type: ignore[no-untyped-def]
    return await h.client.post(f"{BASE}{path}", json={"otp": otp, "otpToken": token}, headers=auth(bearer) if bearer else {})


# --- sending -------------------------------------------------------------------------------------
async def test_send_otp_seed_example_and_token_contents(hdb: Harness) -> None:
    await make_user(hdb)
    r = await hdb.client.post(f"{BASE}/otp", json=SEED_OTP)
    assert r.status_code == 200, r.text
    assert r.json()["success"] is True and r.json()["message"] == ""
    assert list(r.json()["data"]) == ["otpToken"]
    token = r.json()["data"]["otpToken"]
    payload = claims(token)
    assert payload["typ"] == TokenType.OTP.value
    assert payload["loginID"] == "test@aritaone.com" and payload["nature"] == 1 and payload["channel"] == "email"
    assert payload["oid"] and payload["expiry"].endswith("Z") and payload["exp"] - payload["iat"] <= 300
    code = hdb.last_code()
    assert len(code) == 4 and hdb.outbox[-1][0] == EMAIL
    assert code not in token.split(".")[1]  # the token holds no code (nor a hash of it)
    # seed body verbatim for the verify, with the integer code
    r = await verify(hdb, "/login/verify", int(code), token)
    assert r.status_code == 200, r.text
    assert set(r.json()["data"]) >= {"accessToken"}
    assert claims(r.json()["data"]["accessToken"])["typ"] == "access"


async def test_username_login_id_sends_to_its_email_or_phone(h: Harness) -> None:
    await make_user(h)
    token = await send_otp(h, 1, "OZFQkAz5", send_type=1)
    assert h.outbox[-1][0] == EMAIL
    assert "aritaone" not in str(claims(token))  # the username's email is not in the token
    r = await verify(h, "/login/verify", h.last_code(), token)  # digit string accepted too
    assert r.status_code == 200
    token = await send_otp(h, 3, "OZFQkAz5", send_type=2)
    assert h.sms_outbox[-1][0] == PHONE and claims(token)["channel"] == "sms"
    r = await verify(h, "/forgot-password/verify", int(last_sms_code(h)), token)
    assert r.status_code == 200


async def test_national_phone_login_id_uses_the_default_region(h: Harness) -> None:
    token = await send_otp(h, 2, "68098227")
    assert h.sms_outbox[-1][0] == "+85268098227"
    r = await verify(h, "/signup/verify", int(last_sms_code(h)), token)
    assert r.status_code == 200
    user = await get_user(h, int(claims(r.json()["data"]["accessToken"])["sub"]))
    assert user.phone == "+85268098227" and user.phone_verified and user.email is None
    assert "6809" not in user.username and "8227" not in user.username  # never made from the phone


async def test_send_type_rules_are_422_naming_sendtype(h: Harness) -> None:
    await make_user(h, phone=None)
    cases = [
        ({"nature": 1, "loginID": EMAIL, "sendType": 1}, "sendType"),
        ({"nature": 1, "loginID": "68098227", "sendType": 2}, "sendType"),
        ({"nature": 1, "loginID": "OZFQkAz5", "sendType": 0}, "sendType"),
        ({"nature": 1, "loginID": "OZFQkAz5"}, "sendType"),  # 0 by default
        ({"nature": 1, "loginID": "OZFQkAz5", "sendType": 2}, "sendType"),  # the account has no phone
        ({"nature": 1, "loginID": EMAIL, "sendType": 3}, "sendType"),
        ({"nature": 6, "loginID": EMAIL, "sendType": 0}, "nature"),
        ({"nature": 0, "loginID": EMAIL, "sendType": 0}, "nature"),
        ({"loginID": EMAIL, "sendType": 0}, "nature"),
        ({"nature": 1, "sendType": 0}, "loginID"),
        ({"nature": 2, "loginID": "new.username", "sendType": 1}, "loginID"),  # signup needs an address
    ]
    for body, field in cases:
        r = await h.client.post(f"{BASE}/otp", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["success"] is False and r.json()["data"] is None
        assert field in r.json()["message"], (body, r.json())
    assert h.outbox == [] and h.sms_outbox == []


async def test_login_and_reset_need_an_account_signup_needs_none(hdb: Harness) -> None:
    for nature in (1, 3):
        r = await hdb.client.post(f"{BASE}/otp", json={**SEED_OTP, "nature": nature}, headers={"locale": "zh-Hant"})
        assert (r.status_code, r.json()) == (404, error("輸入的用戶名不存在"))
    await make_user(hdb)
    r = await hdb.client.post(f"{BASE}/otp", json={**SEED_OTP, "nature": 2})
    assert (r.status_code, r.json()) == (409, error("User already exists"))
    r = await hdb.client.post(f"{BASE}/otp", json={"nature": 2, "loginID": "6809 8227", "sendType": 0})
    assert r.status_code == 409
    assert hdb.outbox == [] and hdb.sms_outbox == []


async def test_sends_are_limited_per_identifier_and_purpose(h: Harness) -> None:
    await make_user(h)
    await send_otp(h, 1, EMAIL)
    r = await h.client.post(f"{BASE}/otp", json=SEED_OTP)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["success"] is False and r.json()["data"] is None
    # the same address reached through the username shares the count
    r = await h.client.post(f"{BASE}/otp", json={"nature": 1, "loginID": "ozfqkaz5", "sendType": 1})
    assert r.status_code == 429
    await send_otp(h, 3, EMAIL)  # another purpose
    assert len(h.outbox) == 2


async def test_sends_are_limited_per_identifier_per_hour(make_harness) -> None:
    h = await make_harness(limit_otp_send_purpose="10/minute", limit_otp_send_hourly="2/hour")
    await make_user(h)
    await send_otp(h, 1, EMAIL)
    await send_otp(h, 1, EMAIL)
    r = await h.client.post(f"{BASE}/otp", json={**SEED_OTP, "nature": 3})
    assert r.status_code == 429
    assert len(h.outbox) == 2


async def test_failed_send_leaves_no_usable_code(make_harness) -> None:
    h = await make_harness()

    class Broken:
        name = "broken"

        async def send(self, to: str, subject: str, text: str) -> None:
            raise OSError("smtp down")

    h.core.messenger.mailer = Broken()
    await make_user(h)
    r = await h.client.post(f"{BASE}/otp", json=SEED_OTP)
    assert r.status_code == 503 and r.json()["success"] is False
    async with h.core.store.transaction(write=False) as tx:
        assert await tx.secrets.get_active("app_login", EMAIL) is None


# --- verifying -----------------------------------------------------------------------------------
async def test_wrong_used_and_expired_codes_are_401(hdb: Harness) -> None:
    await make_user(hdb)
    token = await send_otp(hdb, 1, EMAIL)
    code = hdb.last_code()
    wrong = "0000" if code != "0000" else "1111"
    r = await verify(hdb, "/login/verify", wrong, token)
    assert (r.status_code, r.json()) == (401, error("The verification code is wrong or has expired"))
    assert (await verify(hdb, "/login/verify", code, token)).status_code == 200
    r = await verify(hdb, "/login/verify", code, token)  # used
    assert r.status_code == 401
    # expired: the code's row has run out (the token itself is checked with leeway)
    token = await send_otp(hdb, 3, EMAIL)
    code = hdb.last_code()
    async with hdb.core.store.transaction() as tx:
        row = await tx.secrets.get(claims(token)["oid"])
        assert row is not None
        from datetime import UTC, datetime, timedelta

        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await tx.secrets.save(row)
    r = await verify(hdb, "/forgot-password/verify", code, token)
    assert r.status_code == 401 and r.json()["message"] == "The verification code is wrong or has expired"


async def test_sixth_try_burns_the_code(h: Harness) -> None:
    await make_user(h)
    token = await send_otp(h, 1, EMAIL)
    code = h.last_code()
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(5):
        assert (await verify(h, "/login/verify", wrong, token)).status_code == 401
    r = await verify(h, "/login/verify", code, token)  # right, but too late
    assert r.status_code == 401


async def test_a_token_of_one_nature_is_refused_by_another_endpoint(h: Harness) -> None:
    await make_user(h)
    token = await send_otp(h, 1, EMAIL)
    code = h.last_code()
    for path in ("/signup/verify", "/forgot-password/verify"):
        r = await verify(h, path, code, token)
        assert (r.status_code, r.json()) == (401, error("The verification request is not for this action"))
    r = await h.client.post(
        f"{BASE}/signup/verify", json={"otp": code, "otpToken": token}, headers={"locale": "zh-Hant"}
    )
    assert r.json() == error("驗證請求與此操作不符")
    access = (await login(h))["accessToken"]
    for path in ("/email/verify", "/phone/verify"):
        assert (await verify(h, path, code, token, bearer=access)).status_code == 401
    # none of that cost the code anything: it still logs in
    assert (await verify(h, "/login/verify", code, token)).status_code == 200


async def test_bad_otp_tokens_and_non_integer_otps(h: Harness) -> None:
    await make_user(h)
    access = (await login(h))["accessToken"]
    for bad in ("", "garbage", access):  # an access token is not an otpToken
        r = await verify(h, "/login/verify", 1234, bad)
        assert (r.status_code, r.json()) == (401, error("The verification request is invalid or has expired"))
    token = await send_otp(h, 1, EMAIL)
    for otp in ("12a4", 12.5, True, None, [1234], "", "１２３４"):
        r = await verify(h, "/login/verify", otp, token)
        assert r.status_code == 422, otp
        assert "otp" in r.json()["message"]
    r = await h.client.post(f"{BASE}/login/verify", json={"otp": 1234})
    assert r.status_code == 422 and "otpToken" in r.json()["message"]


async def test_login_verify_takes_a_device_token(h: Harness) -> None:
    await make_user(h)
    token = await send_otp(h, 1, EMAIL)
    r = await h.client.post(
        f"{BASE}/login/verify", json={"otp": h.last_code(), "otpToken": token, "deviceToken": "dev-1", "deviceType": 1}
    )
    sid = claims(r.json()["data"]["accessToken"])["sid"]
    async with h.core.store.transaction(write=False) as tx:
        session = await tx.sessions.get(sid)
    assert session is not None and (session.device_token, session.device_type) == ("dev-1", 1)


async def test_otp_login_refused_for_locked_or_inactive_accounts(h: Harness) -> None:
    from datetime import UTC, datetime

    user = await make_user(h, is_locked=True, locked_at=datetime.now(UTC))
    token = await send_otp(h, 1, EMAIL)
    r = await verify(h, "/login/verify", h.last_code(), token)
    assert (r.status_code, r.json()) == (423, error("The account is locked"))
    async with h.core.store.transaction() as tx:
        fresh = await tx.users.get(user.id)
        assert fresh is not None
        fresh.is_locked, fresh.is_active = False, False
        await tx.users.save(fresh)
    token = await send_otp(h, 3, EMAIL)
    r = await verify(h, "/forgot-password/verify", h.last_code(), token)
    assert (r.status_code, r.json()) == (401, error("The account is inactive"))


# --- pre-account takeover (core/flows/ownership.py) -----------------------------------------------
async def test_a_code_login_hands_a_never_proven_account_to_the_owner_of_the_address(hdb: Harness) -> None:
    """The takeover: someone signs up with the victim's address and a password (never verified),
    keeps a session and sets a PIN; the victim's first login by an emailed code must not leave them
    in an account the stranger can still open."""
    r = await hdb.client.post("/api/auth/v1/signup", json={
        "email": "victim@example.com", "name": "Mallory", "username": "mallory", "password": "Att4cker-pass",
        "metadata": {"phone-number": "+85261234567"},
    })
    assert r.status_code == 201 and r.json()["user"]["emailVerified"] is False, r.text
    account_id = int(r.json()["user"]["id"])
    form_session = {"x-qt-auth": r.headers["x-qt-auth"]}
    stranger = await login(hdb, "mallory", "Att4cker-pass")
    r = await hdb.client.put(f"{BASE}/pin", json={"pin": "4821"}, headers=auth(stranger["accessToken"]))
    assert r.status_code == 200, r.text

    token = await send_otp(hdb, 1, "victim@example.com")
    r = await verify(hdb, "/login/verify", hdb.last_code(), token)
    assert r.status_code == 200, r.text
    victim = r.json()["data"]
    assert claims(victim["accessToken"])["sub"] == str(account_id)

    # the stranger's password, PIN, phone and sessions are gone
    for login_id in ("mallory", "victim@example.com"):
        r = await hdb.client.post(f"{BASE}/login", json={"loginID": login_id, "password": "Att4cker-pass", "deviceToken": "d-1"})
        assert r.status_code == 401, r.text
    r = await hdb.client.post("/api/auth/v1/login", json={"username": "mallory", "password": "Att4cker-pass"})
    assert r.status_code == 401
    assert (await hdb.client.get("/api/auth/v1/users/me", headers=form_session)).status_code == 401
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(stranger["accessToken"]))).status_code == 401
    r = await hdb.client.post("/api/v1/auth/refresh", json={"refreshToken": stranger["refreshToken"]})
    assert r.status_code == 401, r.text
    r = await hdb.client.post(f"{BASE}/otp", json={"nature": 3, "loginID": "+85261234567", "sendType": 0})
    assert r.status_code == 404, r.text  # nor can they come back through their phone
    # the owner is signed in, and stays so
    r = await hdb.client.get(f"{BASE}/info", headers=auth(victim["accessToken"]))
    assert r.json()["data"] == {"email": "victim@example.com", "phone": None}
    user = await get_user(hdb, account_id)
    assert user.password_hash is None and user.pin_hash is None and user.email_verified and user.phone is None
    async with hdb.core.store.transaction(write=False) as tx:
        events = {
            kind: [e.detail for e in await tx.audit.list(user_id=account_id, type=kind)]
            for kind in ("email.verified", "password.reset", "session.revoked")
        }
    assert events == {
        "email.verified": [{"method": "otp", "nature": 1, "credentials_removed": ["password", "pin", "phone"]}],
        "password.reset": [{"reason": "email_claimed", "removed": True}],
        "session.revoked": [{"count": 2, "reason": "email_claimed"}],
    }


async def test_a_reset_code_by_sms_claims_a_never_proven_account_for_the_phone(h: Harness) -> None:
    user = await make_user(h, email="stranger@example.com", email_verified=False, phone_verified=False)
    old = await login(h, "stranger@example.com")
    token = await send_otp(h, 3, PHONE)
    r = await verify(h, "/forgot-password/verify", int(last_sms_code(h)), token)
    assert r.status_code == 200, r.text
    reset = r.json()["data"]["accessToken"]
    claimed = await get_user(h, user.id)
    assert claimed.email is None and claimed.phone == PHONE and claimed.phone_verified
    assert claimed.password_hash is None
    assert (await h.client.get(f"{BASE}/info", headers=auth(old["accessToken"]))).status_code == 401
    r = await h.client.put(f"{BASE}/password", json={"password": "Fresh-pass9"}, headers=auth(reset))
    assert r.status_code == 200, r.text
    await login(h, PHONE, "Fresh-pass9")
    r = await h.client.post(f"{BASE}/login", json={"loginID": "stranger@example.com", "password": "Fresh-pass9", "deviceToken": "d-1"})
    assert r.status_code == 401, r.text  # the address is no longer the account's


async def test_an_account_that_proved_an_address_keeps_its_credentials(h: Harness) -> None:
    """The phone was proven: the account's holder is known, and a code to its email only verifies it."""
    user = await make_user(h, email_verified=False)
    session = await login(h)
    token = await send_otp(h, 1, EMAIL)
    r = await verify(h, "/login/verify", h.last_code(), token)
    assert r.status_code == 200, r.text
    kept = await get_user(h, user.id)
    assert kept.email_verified and kept.phone == PHONE and kept.password_hash == user.password_hash
    assert (await h.client.get(f"{BASE}/info", headers=auth(session["accessToken"]))).status_code == 200
    await login(h)


async def test_an_account_an_operator_opened_keeps_its_credentials(h: Harness) -> None:
    """A synced or imported account is vouched for by whoever set it up: its first code login
    verifies the address and keeps the imported password."""
    user = await make_user(h, email_verified=False, phone_verified=False, created_by="admin-7")
    token = await send_otp(h, 1, EMAIL)
    r = await verify(h, "/login/verify", h.last_code(), token)
    assert r.status_code == 200, r.text
    kept = await get_user(h, user.id)
    assert kept.email_verified and not kept.phone_verified and kept.phone == PHONE
    assert kept.password_hash == user.password_hash
    await login(h)


async def test_a_refused_code_login_claims_nothing(h: Harness) -> None:
    from datetime import UTC, datetime

    user = await make_user(h, email_verified=False, phone_verified=False, is_locked=True, locked_at=datetime.now(UTC))
    token = await send_otp(h, 1, EMAIL)
    r = await verify(h, "/login/verify", h.last_code(), token)
    assert r.status_code == 423, r.text
    kept = await get_user(h, user.id)
    assert kept.password_hash == user.password_hash and kept.phone == PHONE and not kept.email_verified


# --- signup --------------------------------------------------------------------------------------
async def test_signup_by_email_creates_a_verified_user_without_password(hdb: Harness) -> None:
    token = await send_otp(hdb, 2, "New.Person@Example.com")
    r = await verify(hdb, "/signup/verify", int(hdb.last_code()), token)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert set(data) == {"accessToken", "refreshToken", "expiresIn"}
    user = await get_user(hdb, int(claims(data["accessToken"])["sub"]))
    assert user.email == "new.person@example.com" and user.email_verified and user.password_hash is None
    assert user.username.startswith("new.person")
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "new.person@example.com"})
    assert r.json()["data"] == {"accountType": 2, "exists": True, "setPassword": False}
    r = await hdb.client.get(f"{BASE}/info", headers=auth(data["accessToken"]))
    assert r.json()["data"] == {"email": "new.person@example.com", "phone": None}


async def test_signup_gets_a_free_username_and_a_race_is_409(h: Harness) -> None:
    await make_user(h, username="taken", email="someone@else.com", phone=None)
    token = await send_otp(h, 2, "taken@example.com")
    r = await verify(h, "/signup/verify", h.last_code(), token)
    user = await get_user(h, int(claims(r.json()["data"]["accessToken"])["sub"]))
    assert user.username != "taken" and user.username.startswith("taken")
    # someone else registers the address between send and verify
    token = await send_otp(h, 2, "race@example.com")
    code = h.last_code()
    await make_user(h, username="racer", email="race@example.com", phone=None)
    r = await verify(h, "/signup/verify", code, token)
    assert (r.status_code, r.json()) == (409, error("User already exists"))


# --- forgot password -----------------------------------------------------------------------------
async def test_forgot_password_gives_a_reset_token_for_password_reset_only(hdb: Harness) -> None:
    user = await make_user(hdb)
    old = await login(hdb)
    token = await send_otp(hdb, 3, EMAIL)
    r = await verify(hdb, "/forgot-password/verify", int(hdb.last_code()), token)
    assert r.status_code == 200
    reset = r.json()["data"]["accessToken"]
    payload = claims(reset)
    assert payload["typ"] == "reset" and payload["exp"] - payload["iat"] == 600
    assert r.json()["data"]["expiresIn"] == 600
    # refused everywhere but PUT /password
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(reset))).status_code == 401
    assert (await hdb.client.post(f"{BASE}/password", json={}, headers=auth(reset))).status_code == 401
    assert (await hdb.client.put(f"{BASE}/pin", json={"pin": "1234"}, headers=auth(reset))).status_code == 401
    assert (await hdb.client.delete(f"{BASE}/logout", headers=auth(reset))).status_code == 401
    r = await hdb.client.put(f"{BASE}/password", json={"password": "Fresh-pass9"}, headers=auth(reset))
    assert r.json() == {"success": True, "message": "", "data": None}
    # the reset token works once; the old sessions are gone; the new password works
    assert (await hdb.client.put(f"{BASE}/password", json={"password": "Other-pass9"}, headers=auth(reset))).status_code == 401
    assert (await hdb.client.get(f"{BASE}/info", headers=auth(old["accessToken"]))).status_code == 401
    await login(hdb, password="Fresh-pass9")
    async with hdb.core.store.transaction(write=False) as tx:
        events = [e.type for e in await tx.audit.list(user_id=user.id)]
    assert "password.reset" in events and "session.revoked" in events


# --- email and phone changes (natures 4 and 5) -----------------------------------------------------
async def test_update_email_and_phone(hdb: Harness) -> None:
    user = await make_user(hdb)
    access = (await login(hdb))["accessToken"]
    token = await send_otp(hdb, 4, "New@Aritaone.com", token=access)
    assert hdb.outbox[-1][0] == "new@aritaone.com"
    r = await verify(hdb, "/email/verify", int(hdb.last_code()), token, bearer=access)
    assert r.status_code == 200, r.text
    token = await send_otp(hdb, 5, "+44 7911 123456", token=access)
    assert hdb.sms_outbox[-1][0] == "+447911123456"
    r = await verify(hdb, "/phone/verify", last_sms_code(hdb), token, bearer=access)
    assert r.status_code == 200, r.text
    fresh = await get_user(hdb, user.id)
    assert (fresh.email, fresh.email_verified) == ("new@aritaone.com", True)
    assert (fresh.phone, fresh.phone_verified) == ("+447911123456", True)
    r = await hdb.client.get(f"{BASE}/info", headers=auth(access))
    assert r.json()["data"] == {"email": "new@aritaone.com", "phone": "+447911123456"}


async def test_update_natures_need_a_bearer_and_a_free_address(h: Harness) -> None:
    await make_user(h)
    await make_user(h, username="other", email="other@aritaone.com", phone="+85261234567")
    for nature, login_id in ((4, "fresh@aritaone.com"), (5, "61112222")):
        r = await h.client.post(f"{BASE}/otp", json={"nature": nature, "loginID": login_id, "sendType": 0})
        assert (r.status_code, r.json()) == (401, error("Token is missing or invalid"))
    access = (await login(h))["accessToken"]
    r = await h.client.post(f"{BASE}/otp", json={"nature": 4, "loginID": "other@aritaone.com"}, headers=auth(access))
    assert (r.status_code, r.json()) == (409, error("This email address is already in use"))
    r = await h.client.post(f"{BASE}/otp", json={"nature": 5, "loginID": "61234567"}, headers=auth(access))
    assert (r.status_code, r.json()) == (409, error("This phone number is already in use"))
    # nature 4 needs an email, 5 a phone
    r = await h.client.post(f"{BASE}/otp", json={"nature": 4, "loginID": "61112222"}, headers=auth(access))
    assert r.status_code == 422 and "loginID" in r.json()["message"]
    r = await h.client.post(f"{BASE}/otp", json={"nature": 5, "loginID": "x@y.com"}, headers=auth(access))
    assert r.status_code == 422 and "loginID" in r.json()["message"]


IN_USE = (
    ("zh-Hant", 4, "other@aritaone.com", "此電郵地址已被使用"),
    ("zh-Hant", 5, "61234567", "此電話號碼已被使用"),
    ("zh", 4, "other@aritaone.com", "此电子邮箱已被使用"),
    ("zh", 5, "61234567", "此电话号码已被使用"),
    ("fr", 4, "other@aritaone.com", "Cette adresse e-mail est déjà utilisée"),
    ("fr", 5, "61234567", "Ce numéro de téléphone est déjà utilisé"),
    ("sw", 4, "other@aritaone.com", "Anwani hii ya barua pepe tayari inatumika"),
    ("sw", 5, "61234567", "Nambari hii ya simu tayari inatumika"),
)


async def test_address_in_use_is_said_in_the_language_s_own_words(h: Harness) -> None:
    """Not "此email已被使用" or "Ce phone est déjà utilisé": the sentence names the address in its
    own words (and, in French and Swahili, agrees with it)."""
    await make_user(h)
    await make_user(h, username="other", email="other@aritaone.com", phone="+85261234567")
    access = (await login(h))["accessToken"]
    for locale, nature, login_id, text in IN_USE:
        r = await h.client.post(f"{BASE}/otp", json={"nature": nature, "loginID": login_id},
                                headers={**auth(access), "locale": locale})
        assert (r.status_code, r.json()) == (409, error(text)), locale


@pytest.mark.parametrize("locale", ["zh-Hant", "zh"])
def test_chinese_messages_have_no_english_words_left_in(locale: str) -> None:
    import re

    from authgate.core.i18n import CATALOGUE, message

    assert set(CATALOGUE[locale]) == set(CATALOGUE["en"])  # nothing falls back to English
    names = ("CSRF", "JSON", "PIN", "Firebase")  # acronyms and names, not words
    for code in CATALOGUE["en"]:
        for field in ("email", "phone", "phoneNumber", "username", "identity", "id"):
            text = message(code, locale, field=field, retry_after=3)
            if "{field}" in CATALOGUE[locale][code] and code != "identifier_taken":
                text = text.replace(field, "")  # the name of the field the client sent
            for name in names:
                text = text.replace(name, "")
            assert not re.search(r"[A-Za-z]", text), (code, text)


async def test_update_verify_is_bound_to_the_requesting_user_and_checks_conflicts(h: Harness) -> None:
    await make_user(h)
    await make_user(h, username="other", email="other@aritaone.com", phone="+85261234567")
    mine = (await login(h))["accessToken"]
    theirs = (await login(h, "other@aritaone.com"))["accessToken"]
    token = await send_otp(h, 4, "wanted@aritaone.com", token=mine)
    code = h.last_code()
    r = await verify(h, "/email/verify", code, token)  # no Bearer
    assert r.status_code == 401
    r = await verify(h, "/email/verify", code, token, bearer=theirs)  # someone else's Bearer
    assert (r.status_code, r.json()) == (401, error("The verification request is invalid or has expired"))
    # another account takes the address before the code comes back
    await make_user(h, username="third", email="wanted@aritaone.com", phone=None)
    r = await verify(h, "/email/verify", code, token, bearer=mine)
    assert (r.status_code, r.json()) == (409, error("This email address is already in use"))


@pytest.mark.parametrize("path", ["/email/verify", "/phone/verify"])
async def test_update_verify_without_bearer_is_401(h: Harness, path: str) -> None:
    r = await h.client.post(f"{BASE}{path}", json={"otp": 1234, "otpToken": "x"})
    assert (r.status_code, r.json()) == (401, error("Token is missing or invalid"))


SEED_VERIFY = {
    "otp": 37695,
    "otpToken": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJleHBpcnkiOiIyMDI0LTA0LTIzVDA5OjA0OjQ1WiIsImxvZ2luSUQiOiJ0ZXN0"
    "QGFyaXRhb25lLmNvbSIsIm5hdHVyZSI6MX0.iTIbn6BUqsAAxLVrTSHYxkLV39ajcp8H-PL_KYb_3OI",
}


async def test_seed_verify_body_is_well_formed_but_its_hs256_token_is_refused(h: Harness) -> None:
    """The seed's sample token is HS256 and unsigned by us: algorithm pinning refuses it (401, not 422)."""
    for path in ("/login/verify", "/signup/verify", "/forgot-password/verify"):
        r = await h.client.post(f"{BASE}{path}", json=SEED_VERIFY)
        assert (r.status_code, r.json()) == (401, error("The verification request is invalid or has expired"))


def test_in_use_names_the_field_in_words_not_its_api_name() -> None:
    """The sync surface's ``phoneNumber`` and the hosted pages' labels are said in words too."""
    import re

    from authgate.core.i18n import message

    said = {
        "en": ("This email address is already in use", "This phone number is already in use",
               "This username is already in use"),
        "fr": ("Cette adresse e-mail est déjà utilisée", "Ce numéro de téléphone est déjà utilisé",
               "Ce nom d'utilisateur est déjà utilisé"),
        "sw": ("Anwani hii ya barua pepe tayari inatumika", "Nambari hii ya simu tayari inatumika",
               "Jina hili la mtumiaji tayari linatumika"),
    }
    labels = {"en": ("Email", "Phone", "Username"), "fr": ("E-mail", "Téléphone", "Nom d'utilisateur"),
              "sw": ("Barua pepe", "Simu", "Jina la mtumiaji")}  # web/strings.py label_email/phone/username
    for locale, (email, phone, username) in said.items():
        assert message("identifier_taken", locale, field="email") == email
        assert message("identifier_taken", locale, field="phone") == phone
        assert message("identifier_taken", locale, field="phoneNumber") == phone
        assert message("identifier_taken", locale, field="username") == username
        assert [message("identifier_taken", locale, field=f) for f in labels[locale]] == [email, phone, username]
    for locale in ("fr", "sw"):
        for field in ("email", "phone", "phoneNumber", "username", "identity", "guid", "id", ""):
            text = message("identifier_taken", locale, field=field)
            assert field == "" or not re.search(rf"\b{field}\b", text), (locale, field, text)
            assert text != message("identifier_taken", "en", field=field)


@pytest.mark.parametrize("locale", ["fr", "sw"])
def test_french_and_swahili_have_every_message_in_their_own_words(locale: str) -> None:
    import re

    from authgate.core.i18n import CATALOGUE, message

    assert set(CATALOGUE[locale]) == set(CATALOGUE["en"])  # nothing falls back to English
    english = ("the", "is", "not", "this", "token", "invalid", "expired", "already", "use", "user", "found",
               "please", "try", "again", "may", "here", "refresh", "redirect", "onboarding", "webhook", "step")
    for code in CATALOGUE["en"]:
        assert CATALOGUE[locale][code].strip(), code
        for field in ("email", "phoneNumber", "username"):
            text = message(code, locale, field=field, retry_after=3)
            assert text != message(code, "en", field=field, retry_after=3), (code, text)
            if "{field}" in CATALOGUE[locale][code]:
                text = text.replace(field, "")  # the name of the field the client sent
            words = set(re.findall(r"\w+", text.lower()))
            assert not words & set(english), (code, text)
