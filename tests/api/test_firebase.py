"""Firebase surface (seed 004, CONTRACT §7): authenticate, refresh, logout, me, onboarding.

Tokens are real RS256 JWTs signed by the test's own key; the certificates are served by a real
HTTP server on loopback with a Cache-Control max-age.
"""

from __future__ import annotations

import asyncio
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from authgate.core.model import TokenType
from tests.api.conftest import last_sms_code as sms_code
from tests.conftest import Harness
from tests.e2e.support import HttpSink
from tests.unit.test_firebase_verify import DROP, PROJECT, Minter, closed_port_url

AUTH = "/api/v1/auth/firebase/authenticate"
INVALID_FIREBASE = "Invalid or expired Firebase token"
ACTION_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$")
PHONE = "+255712345678"


def envelope_of(r: httpx.Response, status: int, name: str, message: str) -> Any:
    body = r.json()
    assert r.status_code == status, r.text
    assert list(body) == ["success", "httpStatus", "message", "action_time", "data"]
    assert body["success"] is (status < 400)
    assert body["httpStatus"] == name
    assert body["message"] == message
    assert ACTION_TIME.match(body["action_time"])
    return body["data"]


def error_of(r: httpx.Response, status: int, name: str, message: str) -> None:
    assert envelope_of(r, status, name, message) == message


async def authenticate(h: Harness, token: str, **extra: Any) -> dict[str, Any]:
    r = await h.client.post(AUTH, json={"firebaseToken": token, **extra})
    return envelope_of(r, 200, "OK", "Authentication successful")  # type: ignore[no-any-return]


def bearer(data: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {data['accessToken']}"}


async def set_user(h: Harness, user_id: str, **fields: Any) -> None:
    async with h.core.store.transaction() as tx:
        user = await tx.users.get(int(user_id), for_update=True)
        assert user is not None
        for name, value in fields.items():
            setattr(user, name, value)
        await tx.users.save(user)


# --- authenticate --------------------------------------------------------------------------------
async def test_first_sign_in_creates_the_user_exactly_as_the_seed_shows(fhdb: Harness, minter: Minter) -> None:
    data = await authenticate(fhdb, minter.token("uid-john"), preferredLanguage="en", deviceInfo="iPhone 14 Pro, iOS 17.2")
    assert list(data) == ["accessToken", "refreshToken", "tokenType", "expiresIn", "user", "onboarding"]
    assert data["tokenType"] == "Bearer" and data["expiresIn"] == 3600
    user = data["user"]
    assert list(user) == [
        "id", "email", "username", "phoneNumber", "fullName", "profilePhotoUrl", "isPhoneVerified",
        "isEmailVerified", "preferredLanguage", "authProvider", "role", "createdAt",
    ]
    assert user["id"].isdigit()  # our snowflake id, as a string
    assert user | {"id": None, "createdAt": None} == {
        "id": None,
        "email": "john.doe@gmail.com",
        "username": "johndoe",
        "phoneNumber": None,
        "fullName": "John Doe",
        "profilePhotoUrl": "https://lh3.googleusercontent.com/a/photo.jpg",
        "isPhoneVerified": False,
        "isEmailVerified": True,
        "preferredLanguage": "en",
        "authProvider": "GOOGLE",
        "role": "ROLE_USER",
        "createdAt": None,
    }
    assert ACTION_TIME.match(user["createdAt"])
    assert data["onboarding"] == {"isComplete": False, "currentStep": "PENDING_PHONE_VERIFICATION"}
    # the access token is ours (EdDSA, our issuer), the refresh token opaque
    claims = await fhdb.core.tokens.verify(data["accessToken"], TokenType.ACCESS)
    assert claims.sub == user["id"]
    # the device info is kept on the session
    async with fhdb.core.store.transaction(write=False) as tx:
        sessions = await tx.sessions.list_active(int(user["id"]), datetime.now(UTC))
        identities = await tx.identities.for_user(int(user["id"]))
        stored = await tx.users.get(int(user["id"]))
    assert [s.device_info for s in sessions] == ["iPhone 14 Pro, iOS 17.2"]
    assert [(i.provider, i.subject) for i in identities] == [("firebase", "uid-john")]
    assert stored is not None and stored.onboarding == "PENDING_PHONE_VERIFICATION" and stored.roles == ["ROLE_USER"]


async def test_repeat_sign_ins_return_the_same_user(fhdb: Harness, minter: Minter) -> None:
    first = await authenticate(fhdb, minter.token("uid-repeat"))
    second = await authenticate(fhdb, minter.token("uid-repeat"))
    assert first["user"]["id"] == second["user"]["id"]
    assert first["refreshToken"] != second["refreshToken"]  # one session per sign-in
    async with fhdb.core.store.transaction(write=False) as tx:
        assert len(await tx.identities.for_user(int(first["user"]["id"]))) == 1


@pytest.mark.parametrize(("method", "provider"), [("apple.com", "APPLE"), ("password", "EMAIL")])
async def test_auth_provider_comes_from_the_sign_in_method(fh: Harness, minter: Minter, method: str, provider: str) -> None:
    data = await authenticate(fh, minter.token("uid-" + method, method, email=f"{method}@example.com"))
    assert data["user"]["authProvider"] == provider


@pytest.mark.parametrize("language", ["en", "sw", "fr", "zh"])
async def test_preferred_language_is_kept(fh: Harness, minter: Minter, language: str) -> None:
    data = await authenticate(fh, minter.token(), preferredLanguage=language)
    assert data["user"]["preferredLanguage"] == language


async def test_usernames_derived_from_emails_are_unique(fh: Harness, minter: Minter) -> None:
    a = await authenticate(fh, minter.token("uid-a", email="jane@a.example"))
    b = await authenticate(fh, minter.token("uid-b", email="jane@b.example"))
    assert a["user"]["username"] == "jane"
    assert b["user"]["username"] != "jane" and b["user"]["username"].startswith("jane")
    assert a["user"]["id"] != b["user"]["id"]


async def test_a_verified_email_links_to_the_existing_account(fhdb: Harness, minter: Minter) -> None:
    r = await fhdb.client.post("/api/auth/v1/signup", json={
        "email": "linked@example.com", "name": "Linked", "username": "linked", "password": "S3cure-pass",
    })
    assert r.status_code == 201, r.text
    existing_id = r.json()["user"]["id"]
    form_session = {"x-qt-auth": r.headers["x-qt-auth"]}
    await set_user(fhdb, existing_id, email_verified=True)  # the account proved its email earlier
    google = await authenticate(fhdb, minter.token("uid-g", email="Linked@Example.com"))
    apple = await authenticate(fhdb, minter.token("uid-a", "apple.com", email="linked@example.com"))
    assert google["user"]["id"] == apple["user"]["id"] == existing_id  # one user...
    assert google["user"]["authProvider"] == "PASSWORD"  # the account's original provider
    assert google["user"]["isEmailVerified"] is True
    assert google["onboarding"] == {"isComplete": True, "currentStep": "COMPLETED"}
    async with fhdb.core.store.transaction(write=False) as tx:
        identities = await tx.identities.for_user(int(existing_id))
        linked = await tx.audit.list(user_id=int(existing_id), type="identity.linked")
        revoked = await tx.audit.list(user_id=int(existing_id), type="session.revoked")
    assert sorted(i.subject for i in identities) == ["uid-a", "uid-g"]  # ...two identities
    assert len(linked) == 2 and revoked == []
    # the email was verified, so the account's password and sessions were its owner's: they stay
    r = await fhdb.client.post("/api/auth/v1/login", json={"username": "linked", "password": "S3cure-pass"})
    assert r.status_code == 201
    assert (await fhdb.client.get("/api/auth/v1/users/me", headers=form_session)).status_code == 200


async def test_a_claim_unlinks_the_firebase_uid_that_signed_up_with_the_unproven_email(
    fhdb: Harness, minter: Minter
) -> None:
    """An attacker's Firebase password account with the victim's address (unverified) made the
    account; the victim's Google sign-in claims it. The attacker's uid must not sign back in."""
    attacker_token = minter.token("uid-attacker", "password", email="victim4@gmail.com", email_verified=False)
    attacker = await authenticate(fhdb, attacker_token)
    account_id = attacker["user"]["id"]
    victim = await authenticate(fhdb, minter.token("uid-victim4", email="victim4@gmail.com"))
    assert victim["user"]["id"] == account_id and victim["user"]["isEmailVerified"] is True
    r = await fhdb.client.post(AUTH, json={"firebaseToken": attacker_token})
    assert r.status_code == 409, r.text  # an unverified claim on a verified address: not a way in
    async with fhdb.core.store.transaction(write=False) as tx:
        links = await tx.identities.for_user(int(account_id))
    assert [i.subject for i in links] == ["uid-victim4"]
    me = await fhdb.client.get("/api/v1/auth/me", headers=bearer(victim))
    assert me.status_code == 200


async def test_the_same_uid_proving_the_email_later_claims_the_account(fhdb: Harness, minter: Minter) -> None:
    """Firebase keeps a password account's uid when Google later signs in to it: the uid is the same,
    the email newly proven. What was set up before the proof (sessions, a phone) must go."""
    first = await authenticate(fhdb, minter.token("uid-same", "password", email="victim5@gmail.com",
                                                   email_verified=False))
    assert first["user"]["isEmailVerified"] is False
    async with fhdb.core.store.transaction() as tx:  # the attacker proved a phone of their own
        planted = await tx.users.get(int(first["user"]["id"]), for_update=True)
        assert planted is not None
        planted.phone, planted.phone_verified = "+85261234599", True
        await tx.users.save(planted)
    owner = await authenticate(fhdb, minter.token("uid-same", email="victim5@gmail.com"))
    assert owner["user"]["id"] == first["user"]["id"] and owner["user"]["isEmailVerified"] is True
    assert (await fhdb.client.get("/api/v1/auth/me", headers=bearer(first))).status_code == 401
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": first["refreshToken"]})
    assert r.status_code == 401
    r = await fhdb.client.post("/app/auth/otp", json={"nature": 1, "loginID": "+85261234599", "sendType": 0})
    assert r.status_code == 404, r.text  # the planted phone is gone
    assert (await fhdb.client.get("/api/v1/auth/me", headers=bearer(owner))).status_code == 200


async def test_a_name_or_photo_claim_with_a_nul_is_left_out_not_a_500(fhdb: Harness, minter: Minter) -> None:
    data = await authenticate(fhdb, minter.token("uid-nul", email="nul@gmail.com", name="Jo\u0000hn",
                                                 picture="https://x.example/\ud800"))
    async with fhdb.core.store.transaction(write=False) as tx:
        stored = await tx.users.get(int(data["user"]["id"]))
    assert stored is not None and stored.full_name is None and stored.avatar_url is None


async def test_an_unverified_account_is_claimed_by_the_owner_of_the_email(fhdb: Harness, minter: Minter) -> None:
    """The takeover: an attacker signs up with the victim's address (never verified) and a password;
    the victim's first Google sign-in must not hand the attacker the victim's account."""
    r = await fhdb.client.post("/api/auth/v1/signup", json={
        "email": "victim@gmail.com", "name": "Mallory", "username": "mallory", "password": "Att4cker-pass",
        "metadata": {"phone-number": "+85261234567"},
    })
    assert r.status_code == 201, r.text
    account_id = r.json()["user"]["id"]
    async with fhdb.core.store.transaction() as tx:  # the attacker proved a phone of their own
        planted = await tx.users.get(int(account_id), for_update=True)
        assert planted is not None and planted.phone == "+85261234567"
        planted.phone_verified = True
        await tx.users.save(planted)
    assert r.json()["user"]["emailVerified"] is False
    form_session = {"x-qt-auth": r.headers["x-qt-auth"]}
    app_login = {"loginID": "mallory", "password": "Att4cker-pass", "deviceToken": "d-1"}
    r = await fhdb.client.post("/app/auth/login", json=app_login)
    app_access = {"Authorization": f"Bearer {r.json()['data']['accessToken']}"}
    assert (await fhdb.client.put("/app/auth/pin", json={"pin": "4821"}, headers=app_access)).status_code == 200

    victim = await authenticate(fhdb, minter.token("uid-victim", email="victim@gmail.com"))
    assert victim["user"]["id"] == account_id and victim["user"]["isEmailVerified"] is True

    # the attacker's password, PIN and sessions are gone
    r = await fhdb.client.post("/api/auth/v1/login", json={"username": "mallory", "password": "Att4cker-pass"})
    assert r.status_code == 401 and r.json() == {"message": "Invalid username/password"}
    assert (await fhdb.client.post("/app/auth/login", json=app_login)).status_code == 401
    assert (await fhdb.client.get("/api/auth/v1/users/me", headers=form_session)).status_code == 401
    assert (await fhdb.client.get("/app/auth/info", headers=app_access)).status_code == 401
    r = await fhdb.client.post("/app/auth/pin/verify", json={"pin": "4821"}, headers=app_access)
    assert r.status_code == 401
    # nor can they come back through their phone (a login or reset code)
    for nature in (1, 3):
        r = await fhdb.client.post("/app/auth/otp", json={"nature": nature, "loginID": "+85261234567", "sendType": 0})
        assert r.status_code == 404, r.text
    # the owner of the email is signed in, and stays so
    me = await fhdb.client.get("/api/v1/auth/me", headers=bearer(victim))
    assert envelope_of(me, 200, "OK", "User retrieved successfully")["id"] == account_id
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": victim["refreshToken"]})
    assert r.status_code == 200, r.text
    async with fhdb.core.store.transaction(write=False) as tx:
        stored = await tx.users.get(int(account_id))
        events = {
            kind: [e.detail for e in await tx.audit.list(user_id=int(account_id), type=kind)]
            for kind in ("email.verified", "password.reset", "session.revoked", "identity.linked")
        }
    assert stored is not None and stored.password_hash is None and stored.pin_hash is None and stored.email_verified
    assert stored.phone is None and stored.phone_verified is False
    assert events == {
        "email.verified": [{"method": "firebase", "provider": "GOOGLE", "credentials_removed": ["password", "pin", "phone"]}],
        "password.reset": [{"reason": "email_claimed", "removed": True}],
        "session.revoked": [{"count": 2, "reason": "email_claimed"}],
        "identity.linked": [{"provider": "firebase", "auth_provider": "GOOGLE", "claimed_unverified": True}],
    }


async def test_an_unverified_email_never_takes_over_an_account(fhdb: Harness, minter: Minter) -> None:
    owner = await authenticate(fhdb, minter.token("uid-owner", email="owner@example.com"))
    r = await fhdb.client.post(AUTH, json={"firebaseToken": minter.token(
        "uid-attacker", "password", email="owner@example.com", email_verified=False
    )})
    message = "An account with this email already exists; verify your email address to sign in with it"
    error_of(r, 409, "CONFLICT", message)
    async with fhdb.core.store.transaction(write=False) as tx:
        assert await tx.identities.get("firebase", "uid-attacker") is None
        identities = await tx.identities.for_user(int(owner["user"]["id"]))
        refused = await tx.audit.list(user_id=int(owner["user"]["id"]), type="login.failed")
    assert [i.subject for i in identities] == ["uid-owner"]
    assert refused and refused[0].detail == {"reason": "unverified_email", "method": "firebase"}


async def test_concurrent_first_sign_ins_make_one_user(fhdb: Harness, minter: Minter) -> None:
    token = minter.token("uid-race", email="race@example.com")
    responses = await asyncio.gather(*[fhdb.client.post(AUTH, json={"firebaseToken": token}) for _ in range(3)])
    ids = {envelope_of(r, 200, "OK", "Authentication successful")["user"]["id"] for r in responses}
    assert len(ids) == 1


async def test_a_deleted_account_does_not_sign_in_again(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-gone"))
    await set_user(fh, data["user"]["id"], deleted_at=datetime.now(UTC))
    r = await fh.client.post(AUTH, json={"firebaseToken": minter.token("uid-gone")})
    error_of(r, 401, "UNAUTHORIZED", "Account is inactive or locked")


async def test_an_unverified_email_of_nobody_creates_an_unverified_user(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-new", "password", email="new@example.com", email_verified=False))
    assert data["user"]["isEmailVerified"] is False and data["user"]["email"] == "new@example.com"


@pytest.mark.parametrize("fields", [{"is_active": False}, {"is_locked": True, "locked_at": None}])
async def test_inactive_or_locked_accounts_are_refused(fh: Harness, minter: Minter, fields: dict[str, Any]) -> None:
    data = await authenticate(fh, minter.token("uid-x"))
    await set_user(fh, data["user"]["id"], **fields)
    r = await fh.client.post(AUTH, json={"firebaseToken": minter.token("uid-x")})
    error_of(r, 401, "UNAUTHORIZED", "Account is inactive or locked")
    r = await fh.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    error_of(r, 401, "UNAUTHORIZED", "Account is inactive or locked")
    r = await fh.client.get("/api/v1/auth/me", headers=bearer(data))
    error_of(r, 401, "UNAUTHORIZED", "Account is inactive or locked")


@pytest.mark.parametrize("body", [{}, {"firebaseToken": ""}, {"firebaseToken": "   "}, {"firebaseToken": None}, None])
async def test_missing_or_blank_firebase_token_is_422(fh: Harness, body: Any) -> None:
    r = await fh.client.post(AUTH, json=body) if body is not None else await fh.client.post(AUTH)
    data = envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")
    assert data == {"firebaseToken": "Firebase token is required"}


async def test_device_info_over_255_is_422(fh: Harness, minter: Minter) -> None:
    r = await fh.client.post(AUTH, json={"firebaseToken": minter.token(), "deviceInfo": "x" * 256})
    data = envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")
    assert list(data) == ["deviceInfo"]
    await authenticate(fh, minter.token(), deviceInfo="x" * 255)


@pytest.mark.parametrize("language", ["de", "english", "zh-Hant", "EN-US"])
async def test_unknown_preferred_language_is_422(fh: Harness, minter: Minter, language: str) -> None:
    r = await fh.client.post(AUTH, json={"firebaseToken": minter.token(), "preferredLanguage": language})
    data = envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")
    assert data == {"preferredLanguage": "Preferred language must be one of en, sw, fr, zh"}


async def test_a_field_of_the_wrong_type_is_422_naming_it(fh: Harness) -> None:
    r = await fh.client.post(AUTH, json={"firebaseToken": 12345})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == ["firebaseToken"]


async def test_malformed_json_is_400_in_the_envelope(fh: Harness) -> None:
    r = await fh.client.post(AUTH, content=b"{not json", headers={"content-type": "application/json"})
    assert envelope_of(r, 400, "BAD_REQUEST", "Malformed JSON body") == "Malformed JSON body"


def _bad(m: Minter) -> dict[str, str]:
    import jwt

    now = int(time.time())
    return {
        "another key": m.token("u", key=Minter(key_index=1).key),
        "HS256": m.token("u", key="a-shared-secret-that-is-long-enough-32b", alg="HS256"),
        "none": jwt.encode(m.claims("u"), None, algorithm="none", headers={"kid": m.kid}),
        "another aud": m.token("u", aud="other-project"),
        "another iss": m.token("u", iss="https://securetoken.google.com/other-project"),
        "expired": m.token("u", exp=now - 120, iat=now - 3720, auth_time=now - 3800),
        "issued in the future": m.token("u", iat=now + 600, exp=now + 4200),
        "kid not served": m.token("u", kid="unknown-kid"),
        "phone sign-in": m.token("u", "phone"),
        "no auth_time": m.token("u", auth_time=DROP),
        "garbage": "garbage",
    }


@pytest.mark.parametrize("case", list(_bad(Minter())))
async def test_bad_firebase_tokens_are_401_with_the_seed_message(fh: Harness, minter: Minter, case: str) -> None:
    r = await fh.client.post(AUTH, json={"firebaseToken": _bad(minter)[case]})
    error_of(r, 401, "UNAUTHORIZED", INVALID_FIREBASE)
    async with fh.core.store.transaction(write=False) as tx:
        assert await tx.identities.get("firebase", "u") is None


async def test_bad_firebase_tokens_count_against_the_ip_budget(make_harness: Any, certs: HttpSink, minter: Minter) -> None:
    h = await make_harness(firebase_project_id=PROJECT, firebase_certs_url=certs.url, limit_failed_login="2/hour")
    for _ in range(2):
        error_of(await h.client.post(AUTH, json={"firebaseToken": "garbage"}), 401, "UNAUTHORIZED", INVALID_FIREBASE)
    r = await h.client.post(AUTH, json={"firebaseToken": minter.token()})
    assert r.status_code == 429 and r.json()["httpStatus"] == "TOO_MANY_REQUESTS"
    assert int(r.headers["Retry-After"]) > 0


async def test_a_down_certificate_server_is_503(make_harness: Any, minter: Minter) -> None:
    h = await make_harness(firebase_project_id=PROJECT, firebase_certs_url=closed_port_url())
    r = await h.client.post(AUTH, json={"firebaseToken": minter.token()})
    error_of(r, 503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable")


async def test_cached_certificates_keep_sign_in_working_when_the_server_goes_down(
    make_harness: Any, minter: Minter
) -> None:
    with HttpSink(reply=minter.certs, headers={"Cache-Control": "max-age=0"}) as sink:
        h = await make_harness(firebase_project_id=PROJECT, firebase_certs_url=sink.url)
        await authenticate(h, minter.token("uid-c"))
        sink.status = 500  # max-age=0: the next sign-in must ask again, and the server fails
        await authenticate(h, minter.token("uid-c"))
        assert len(sink.requests) == 2


async def test_firebase_not_configured_is_503(h: Harness, minter: Minter) -> None:
    r = await h.client.post(AUTH, json={"firebaseToken": minter.token()})
    error_of(r, 503, "SERVICE_UNAVAILABLE", "The service is temporarily unavailable")


async def test_unknown_paths_and_methods_use_the_envelope(fh: Harness) -> None:
    error_of(await fh.client.get("/api/v1/nope"), 404, "NOT_FOUND", "Not found")
    error_of(await fh.client.get(AUTH), 405, "METHOD_NOT_ALLOWED", "Method not allowed")


# --- refresh -------------------------------------------------------------------------------------
async def test_refresh_returns_a_new_access_token_and_the_same_refresh_token(fhdb: Harness, minter: Minter) -> None:
    data = await authenticate(fhdb, minter.token("uid-r"))
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    fresh = envelope_of(r, 200, "OK", "Token refreshed successfully")
    assert list(fresh) == ["accessToken", "refreshToken", "tokenType", "expiresIn", "user", "onboarding"]
    assert fresh["refreshToken"] == data["refreshToken"]
    assert fresh["user"] == data["user"] and fresh["onboarding"] == data["onboarding"]
    r = await fhdb.client.get("/api/v1/auth/me", headers=bearer(fresh))
    assert envelope_of(r, 200, "OK", "User retrieved successfully") == data["user"]


async def test_a_refresh_marks_its_session_used_and_a_refused_one_leaves_it(fhdb: Harness, minter: Minter) -> None:
    """The session is locked and marked used in one statement (UPDATE ... RETURNING); a refresh
    refused after that (here: an expired session) rolls the mark back with the rest."""
    data = await authenticate(fhdb, minter.token("uid-used"))
    user_id = int(data["user"]["id"])

    async def last_used() -> datetime:
        async with fhdb.core.store.transaction(write=False) as tx:
            (session,) = await tx.sessions.list_active(user_id, datetime.now(UTC) - timedelta(days=1))
        assert session.last_used_at is not None
        return session.last_used_at

    opened = await last_used()
    await asyncio.sleep(0.01)
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    envelope_of(r, 200, "OK", "Token refreshed successfully")
    used = await last_used()
    assert used > opened
    async with fhdb.core.store.transaction() as tx:
        (session,) = await tx.sessions.list_active(user_id, datetime.now(UTC))
        session.expires_at = datetime.now(UTC) + timedelta(milliseconds=50)
        await tx.sessions.save(session)
    await asyncio.sleep(0.1)
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    error_of(r, 401, "UNAUTHORIZED", "Refresh token expired")
    assert await last_used() == used


@pytest.mark.parametrize("body", [{}, {"refreshToken": ""}, {"refreshToken": "  "}])
async def test_refresh_without_a_token_is_422(fh: Harness, body: dict[str, Any]) -> None:
    r = await fh.client.post("/api/v1/auth/refresh", json=body)
    assert envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed") == {"refreshToken": "Refresh token is required"}


async def test_refresh_with_a_wrong_token_is_401(fh: Harness) -> None:
    r = await fh.client.post("/api/v1/auth/refresh", json={"refreshToken": "not-a-refresh-token"})
    error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")


async def test_refresh_with_an_expired_token_is_401_expired(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-exp"))
    async with fh.core.store.transaction() as tx:
        sessions = await tx.sessions.list_active(int(data["user"]["id"]), datetime.now(UTC))
        sessions[0].expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await tx.sessions.save(sessions[0])
    r = await fh.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    error_of(r, 401, "UNAUTHORIZED", "Refresh token expired")


async def test_rotation_returns_a_new_refresh_token_and_detects_reuse(
    make_harness: Any, certs: HttpSink, minter: Minter
) -> None:
    h = await make_harness(
        firebase_project_id=PROJECT, firebase_certs_url=certs.url, refresh_rotation=True, refresh_grace_seconds=0
    )
    data = await authenticate(h, minter.token("uid-rot"))
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    rotated = envelope_of(r, 200, "OK", "Token refreshed successfully")
    assert rotated["refreshToken"] != data["refreshToken"]
    await asyncio.sleep(0.01)
    # the old token again, after the (zero) grace window: a replay; the whole session dies
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": rotated["refreshToken"]})
    error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")
    r = await h.client.get("/api/v1/auth/me", headers=bearer(rotated))
    error_of(r, 401, "UNAUTHORIZED", "Token is missing or invalid")


async def test_rotation_grace_window_and_concurrent_refreshes_rotate_once(
    make_harness: Any, certs: HttpSink, minter: Minter, backend: str
) -> None:
    h = await make_harness(
        backend, firebase_project_id=PROJECT, firebase_certs_url=certs.url, refresh_rotation=True,
        refresh_grace_seconds=10,
    )
    data = await authenticate(h, minter.token("uid-conc"))
    responses = await asyncio.gather(*[
        h.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]}) for _ in range(2)
    ])
    pairs = [envelope_of(r, 200, "OK", "Token refreshed successfully") for r in responses]
    # one rotation: both callers hold the same new pair, and that pair is the live one
    assert pairs[0]["refreshToken"] == pairs[1]["refreshToken"] != data["refreshToken"]
    assert pairs[0]["accessToken"] == pairs[1]["accessToken"]
    # a retry with the old token within the grace window gets that same pair back, not a new one
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    retry = envelope_of(r, 200, "OK", "Token refreshed successfully")
    assert (retry["refreshToken"], retry["accessToken"]) == (pairs[0]["refreshToken"], pairs[0]["accessToken"])
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": pairs[0]["refreshToken"]})
    assert envelope_of(r, 200, "OK", "Token refreshed successfully")["refreshToken"] not in (
        data["refreshToken"], pairs[0]["refreshToken"]
    )


async def test_a_token_two_rotations_old_is_a_replay_too(
    make_harness: Any, certs: HttpSink, minter: Minter, backend: str
) -> None:
    """The session row keeps only the latest and the previous token: a thief who refreshed twice
    with a stolen R0 was not detected when the owner came back with it. Retired hashes are kept."""
    h = await make_harness(
        backend, firebase_project_id=PROJECT, firebase_certs_url=certs.url, refresh_rotation=True,
        refresh_grace_seconds=0,
    )
    r0 = (await authenticate(h, minter.token("uid-chain")))["refreshToken"]
    chain = [r0]
    for _ in range(3):
        r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": chain[-1]})
        chain.append(envelope_of(r, 200, "OK", "Token refreshed successfully")["refreshToken"])
    await asyncio.sleep(0.01)
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": chain[0]})
    error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")
    r = await h.client.post("/api/v1/auth/refresh", json={"refreshToken": chain[-1]})
    error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")  # the whole session is revoked
    async with h.core.store.transaction(write=False) as tx:
        events = await tx.audit.list(user_id=None, type="refresh.reused", since=None, until=None, limit=10,
                                     before_id=None)
    assert len(events) == 1


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- logout and me -------------------------------------------------------------------------------
async def test_logout_revokes_every_session_of_the_user(fhdb: Harness, minter: Minter) -> None:
    phone = await authenticate(fhdb, minter.token("uid-out"), deviceInfo="phone")
    tablet = await authenticate(fhdb, minter.token("uid-out"), deviceInfo="tablet")
    other = await authenticate(fhdb, minter.token("uid-other", email="other@example.com"))
    r = await fhdb.client.post("/api/v1/auth/logout", headers=bearer(phone))
    assert envelope_of(r, 200, "OK", "Logged out successfully") is None
    for data in (phone, tablet):
        r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
        error_of(r, 401, "UNAUTHORIZED", "Invalid refresh token")
        r = await fhdb.client.get("/api/v1/auth/me", headers=bearer(data))
        error_of(r, 401, "UNAUTHORIZED", "Token is missing or invalid")
    # another user's sessions are untouched
    r = await fhdb.client.get("/api/v1/auth/me", headers=bearer(other))
    assert r.status_code == 200


async def test_protected_endpoints_need_a_valid_access_token(fh: Harness) -> None:
    for method, path in [("POST", "/api/v1/auth/logout"), ("GET", "/api/v1/auth/me"),
                         ("POST", "/api/v1/auth/phone/send-otp"), ("PUT", "/api/v1/users/me/profile")]:
        r = await fh.client.request(method, path)
        error_of(r, 401, "UNAUTHORIZED", "Token is missing or invalid")
        r = await fh.client.request(method, path, headers={"Authorization": "Bearer nope"})
        error_of(r, 401, "UNAUTHORIZED", "Token is missing or invalid")


async def test_an_expired_access_token_is_token_has_expired(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-old"))
    claims = await fh.core.tokens.verify(data["accessToken"], TokenType.ACCESS)
    expired, _ = await fh.core.tokens.sign(
        TokenType.ACCESS, claims.sub, -120, sid=claims.sid, username="x", roles=["ROLE_USER"]
    )
    r = await fh.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {expired}"})
    error_of(r, 401, "UNAUTHORIZED", "Token has expired")
    r = await fh.client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {expired}"})
    error_of(r, 401, "UNAUTHORIZED", "Token has expired")


async def test_a_refresh_token_is_not_an_access_token(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-mix"))
    r = await fh.client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {data['refreshToken']}"})
    error_of(r, 401, "UNAUTHORIZED", "Token is missing or invalid")


# --- onboarding ----------------------------------------------------------------------------------
async def test_onboarding_moves_through_its_steps(fhdb: Harness, minter: Minter) -> None:
    data = await authenticate(fhdb, minter.token("uid-onb"))
    auth = bearer(data)
    r = await fhdb.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    assert envelope_of(r, 200, "OK", "OTP sent successfully") == {"phoneNumber": PHONE, "expiresIn": 300}
    assert fhdb.sms_outbox[-1][0] == PHONE
    code = sms_code(fhdb)
    wrong = "0000" if code != "0000" else "1111"
    r = await fhdb.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": wrong})
    error_of(r, 401, "UNAUTHORIZED", "The verification code is wrong or has expired")
    r = await fhdb.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": code})
    out = envelope_of(r, 200, "OK", "Phone number verified successfully")
    assert out["user"]["phoneNumber"] == PHONE and out["user"]["isPhoneVerified"] is True
    assert out["onboarding"] == {"isComplete": False, "currentStep": "PENDING_PREFERENCES"}
    # the code is single use
    r = await fhdb.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": code})
    assert r.status_code == 401

    r = await fhdb.client.put("/api/v1/users/me/preferences", headers=auth,
                              json={"preferredLanguage": "sw", "interests": ["jobs", "music", "jobs"]})
    out = envelope_of(r, 200, "OK", "Preferences updated successfully")
    assert out["user"]["preferredLanguage"] == "sw"
    assert out["onboarding"] == {"isComplete": False, "currentStep": "PENDING_PROFILE_COMPLETION"}

    r = await fhdb.client.put("/api/v1/users/me/profile", headers=auth, json={
        "fullName": "John Q. Doe", "profilePhotoUrl": "https://cdn.example.com/me.png",
        "birthday": "1990-05-17", "gender": "male",
    })
    out = envelope_of(r, 200, "OK", "Profile updated successfully")
    assert out["onboarding"] == {"isComplete": True, "currentStep": "COMPLETED"}
    assert out["user"]["fullName"] == "John Q. Doe"
    assert out["user"]["profilePhotoUrl"] == "https://cdn.example.com/me.png"
    async with fhdb.core.store.transaction(write=False) as tx:
        stored = await tx.users.get(int(data["user"]["id"]))
    assert stored is not None
    assert (stored.interests, stored.birthday, stored.gender, stored.locale) == (
        ["jobs", "music"], "1990-05-17", "MALE", "sw"
    )
    # the token responses carry the new state
    r = await fhdb.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    fresh = envelope_of(r, 200, "OK", "Token refreshed successfully")
    assert fresh["onboarding"] == {"isComplete": True, "currentStep": "COMPLETED"}
    assert fresh["user"]["phoneNumber"] == PHONE
    again = await authenticate(fhdb, minter.token("uid-onb"))
    assert again["onboarding"]["currentStep"] == "COMPLETED"
    # a later step may be redone; it never moves the user back
    r = await fhdb.client.put("/api/v1/users/me/preferences", headers=auth, json={"preferredLanguage": "fr"})
    out = envelope_of(r, 200, "OK", "Preferences updated successfully")
    assert out["onboarding"]["currentStep"] == "COMPLETED" and out["user"]["preferredLanguage"] == "fr"


async def test_a_step_out_of_order_is_409(fh: Harness, minter: Minter) -> None:
    auth = bearer(await authenticate(fh, minter.token("uid-ooo")))
    message = "This onboarding step is not the current one"
    r = await fh.client.put("/api/v1/users/me/preferences", headers=auth, json={"preferredLanguage": "en"})
    error_of(r, 409, "CONFLICT", message)
    r = await fh.client.put("/api/v1/users/me/profile", headers=auth, json={"fullName": "X"})
    error_of(r, 409, "CONFLICT", message)
    await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    r = await fh.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": sms_code(fh)})
    assert r.status_code == 200
    r = await fh.client.put("/api/v1/users/me/profile", headers=auth, json={"fullName": "X"})
    error_of(r, 409, "CONFLICT", message)


async def test_a_phone_of_another_user_is_409(fh: Harness, minter: Minter) -> None:
    a = await authenticate(fh, minter.token("uid-pa", email="a@example.com"))
    b = await authenticate(fh, minter.token("uid-pb", email="b@example.com"))
    await set_user(fh, a["user"]["id"], phone=PHONE, phone_verified=True)
    r = await fh.client.post("/api/v1/auth/phone/send-otp", headers=bearer(b), json={"phoneNumber": PHONE})
    error_of(r, 409, "CONFLICT", "This phone number is already in use by another account")
    assert fh.sms_outbox == []


async def test_a_phone_taken_between_send_and_verify_is_409(fhdb: Harness, minter: Minter) -> None:
    a = await authenticate(fhdb, minter.token("uid-ra", email="ra@example.com"))
    b = await authenticate(fhdb, minter.token("uid-rb", email="rb@example.com"))
    r = await fhdb.client.post("/api/v1/auth/phone/send-otp", headers=bearer(b), json={"phoneNumber": PHONE})
    assert r.status_code == 200
    await set_user(fhdb, a["user"]["id"], phone=PHONE, phone_verified=True)
    r = await fhdb.client.post("/api/v1/auth/phone/verify", headers=bearer(b),
                               json={"phoneNumber": PHONE, "otp": sms_code(fhdb)})
    error_of(r, 409, "CONFLICT", "This phone number is already in use by another account")


async def test_a_phone_another_user_sent_to_and_verified_since_is_409(make_harness: Any, certs: Any, minter: Minter) -> None:
    """The audit's path: B's code is replaced by A's send to the same phone, A verifies it; B's
    verify must say the phone is taken (it said the code was wrong, so the 409 was unreachable)."""
    h = await make_harness(firebase_project_id=PROJECT, firebase_certs_url=certs.url, limit_otp_send_purpose="10/minute")
    a = await authenticate(h, minter.token("uid-sa", email="sa@example.com"))
    b = await authenticate(h, minter.token("uid-sb", email="sb@example.com"))
    await h.client.post("/api/v1/auth/phone/send-otp", headers=bearer(b), json={"phoneNumber": PHONE})
    b_code = sms_code(h)
    r = await h.client.post("/api/v1/auth/phone/send-otp", headers=bearer(a), json={"phoneNumber": PHONE})
    assert r.status_code == 200, r.text
    r = await h.client.post("/api/v1/auth/phone/verify", headers=bearer(a), json={"phoneNumber": PHONE, "otp": sms_code(h)})
    assert r.status_code == 200, r.text
    r = await h.client.post("/api/v1/auth/phone/verify", headers=bearer(b), json={"phoneNumber": PHONE, "otp": b_code})
    error_of(r, 409, "CONFLICT", "This phone number is already in use by another account")


async def test_a_code_sent_for_one_user_does_not_verify_another(fh: Harness, minter: Minter) -> None:
    a = await authenticate(fh, minter.token("uid-ca", email="ca@example.com"))
    b = await authenticate(fh, minter.token("uid-cb", email="cb@example.com"))
    await fh.client.post("/api/v1/auth/phone/send-otp", headers=bearer(a), json={"phoneNumber": PHONE})
    r = await fh.client.post("/api/v1/auth/phone/verify", headers=bearer(b),
                             json={"phoneNumber": PHONE, "otp": sms_code(fh)})
    assert r.status_code == 401
    r = await fh.client.get("/api/v1/auth/me", headers=bearer(b))
    assert envelope_of(r, 200, "OK", "User retrieved successfully")["phoneNumber"] is None


async def test_a_second_otp_within_a_minute_is_429(fh: Harness, minter: Minter) -> None:
    auth = bearer(await authenticate(fh, minter.token("uid-429")))
    r = await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    assert r.status_code == 200
    r = await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    body = r.json()
    assert r.status_code == 429 and body["httpStatus"] == "TOO_MANY_REQUESTS" and body["success"] is False
    assert body["data"] == body["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 60
    assert len(fh.sms_outbox) == 1


@pytest.mark.parametrize(
    ("path", "method", "body", "field", "message"),
    [
        ("/api/v1/auth/phone/send-otp", "POST", {}, "phoneNumber", "Phone number is required"),
        ("/api/v1/auth/phone/send-otp", "POST", {"phoneNumber": "12"}, "phoneNumber", "Not a phone number"),
        ("/api/v1/auth/phone/verify", "POST", {"phoneNumber": PHONE}, "otp", "OTP is required"),
        ("/api/v1/auth/phone/verify", "POST", {"phoneNumber": PHONE, "otp": "12ab"}, "otp", "OTP must be 4 to 8 digits"),
        ("/api/v1/users/me/preferences", "PUT", {}, "preferredLanguage", "Preferred language is required"),
        ("/api/v1/users/me/preferences", "PUT", {"preferredLanguage": "de"}, "preferredLanguage",
         "Preferred language must be one of en, sw, fr, zh"),
        ("/api/v1/users/me/preferences", "PUT", {"preferredLanguage": "en", "interests": [""]}, "interests",
         "Each interest must be 1 to 64 characters"),
        ("/api/v1/users/me/profile", "PUT", {"fullName": " "}, "fullName", "Full name is required"),
    ],
)
async def test_onboarding_input_is_validated(
    fh: Harness, minter: Minter, path: str, method: str, body: dict[str, Any], field: str, message: str
) -> None:
    auth = bearer(await authenticate(fh, minter.token()))
    r = await fh.client.request(method, path, headers=auth, json=body)
    assert envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed") == {field: message}


@pytest.mark.parametrize(
    ("change", "field"),
    [({"birthday": "17/05/1990"}, "birthday"), ({"birthday": "2999-01-01"}, "birthday"),
     ({"gender": "robot"}, "gender"), ({"profilePhotoUrl": "javascript:alert(1)"}, "profilePhotoUrl"),
     # the audit's: an ISO week date, markup in a URL, credentials in a URL
     ({"birthday": "1990-W01-1"}, "birthday"), ({"profilePhotoUrl": 'https://"><script>/x'}, "profilePhotoUrl"),
     ({"profilePhotoUrl": "https://user:pw@evil.com/x"}, "profilePhotoUrl"),
     ({"profilePhotoUrl": "https://cdn.example.com/a b.png"}, "profilePhotoUrl")],
)
async def test_profile_fields_are_validated(fh: Harness, minter: Minter, change: dict[str, str], field: str) -> None:
    data = await authenticate(fh, minter.token())
    await set_user(fh, data["user"]["id"], onboarding="PENDING_PROFILE_COMPLETION")
    r = await fh.client.put("/api/v1/users/me/profile", headers=bearer(data), json={"fullName": "X", **change})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == [field]
