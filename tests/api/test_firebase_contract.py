"""Firebase surface (seed 004) against the seed's samples and CONTRACT §1/§7: cases found in an audit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.api.test_firebase import (
    AUTH,
    PHONE,
    authenticate,
    bearer,
    envelope_of,
    set_user,
    sms_code,
)
from tests.conftest import Harness
from tests.unit.test_firebase_verify import Minter


async def test_the_username_is_the_seeds_johndoe(fh: Harness, minter: Minter) -> None:
    # seed 004's sample: john.doe@gmail.com signs in for the first time → "username": "johndoe"
    data = await authenticate(fh, minter.token("uid-seed", email="john.doe@gmail.com"))
    assert data["user"]["username"] == "johndoe"
    other = await authenticate(fh, minter.token("uid-seed-2", email="john_doe@example.com"))
    assert other["user"]["username"] != "johndoe" and other["user"]["username"].startswith("johndoe")


async def test_a_username_without_letters_in_the_email_falls_back_to_the_name(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-dots", email="_-_@example.com", name="Ada Lovelace"))
    assert data["user"]["username"].startswith("AdaLovelace")


async def test_refresh_works_again_once_a_lockout_is_over(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token("uid-lock"))
    minutes = fh.core.settings.lockout_minutes
    # locked by failed passwords on another surface, long enough ago that the lockout is over
    await set_user(fh, data["user"]["id"], is_locked=True, locked_at=datetime.now(UTC) - timedelta(minutes=minutes + 1))
    r = await fh.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert envelope_of(r, 200, "OK", "Token refreshed successfully")["user"]["id"] == data["user"]["id"]
    async with fh.core.store.transaction(write=False) as tx:
        user = await tx.users.get(int(data["user"]["id"]))
        unlocked = await tx.audit.list(user_id=int(data["user"]["id"]), type="account.unlocked")
    assert user is not None and user.is_locked is False and user.locked_at is None
    assert len(unlocked) == 1
    # a lockout still running is still refused
    await set_user(fh, data["user"]["id"], is_locked=True, locked_at=datetime.now(UTC))
    r = await fh.client.post("/api/v1/auth/refresh", json={"refreshToken": data["refreshToken"]})
    assert envelope_of(r, 401, "UNAUTHORIZED", "Account is inactive or locked") == "Account is inactive or locked"


@pytest.mark.parametrize("otp", [12.5, True, ["1234"], {"code": "1234"}])
async def test_an_otp_of_the_wrong_type_is_422_naming_otp(fh: Harness, minter: Minter, otp: Any) -> None:
    auth = bearer(await authenticate(fh, minter.token()))
    r = await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    assert r.status_code == 200
    r = await fh.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": otp})
    assert envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed") == {"otp": "OTP must be 4 to 8 digits"}


async def test_an_otp_sent_as_a_number_still_verifies(fh: Harness, minter: Minter) -> None:
    auth = bearer(await authenticate(fh, minter.token()))
    await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    r = await fh.client.post("/api/v1/auth/phone/verify", headers=auth,
                             json={"phoneNumber": PHONE, "otp": int(sms_code(fh))})
    assert envelope_of(r, 200, "OK", "Phone number verified successfully")["user"]["isPhoneVerified"] is True


async def test_a_bad_list_item_names_the_field_itself(fh: Harness, minter: Minter) -> None:
    data = await authenticate(fh, minter.token())
    await set_user(fh, data["user"]["id"], onboarding="PENDING_PREFERENCES")
    r = await fh.client.put("/api/v1/users/me/preferences", headers=bearer(data),
                            json={"preferredLanguage": "en", "interests": ["music", 5]})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == ["interests"]


async def test_validation_names_the_top_level_field_on_authenticate(fh: Harness) -> None:
    r = await fh.client.post(AUTH, json={"firebaseToken": {"nested": 1}})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == ["firebaseToken"]


async def test_a_wrong_phone_otp_is_audited_against_the_user(fh: Harness, minter: Minter) -> None:
    """CONTRACT §1: every OTP failure is in the audit log with its user."""
    data = await authenticate(fh, minter.token("uid-otp-audit"))
    auth = bearer(data)
    r = await fh.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": PHONE})
    assert r.status_code == 200
    wrong = "0000" if sms_code(fh) != "0000" else "1111"
    r = await fh.client.post("/api/v1/auth/phone/verify", headers=auth, json={"phoneNumber": PHONE, "otp": wrong})
    assert r.status_code == 401
    async with fh.core.store.transaction(write=False) as tx:
        failed = await tx.audit.list(type="otp.failed")
    assert [(e.user_id, e.detail) for e in failed] == [(int(data["user"]["id"]), {"purpose": "onboarding_phone"})]


@pytest.mark.parametrize(("field", "body"), [
    ("fullName", {"fullName": "Jo\u0000hn"}),
    ("profilePhotoUrl", {"fullName": "John", "profilePhotoUrl": "https://x.example/a\u0000b"}),
])
async def test_control_characters_in_the_profile_are_422_not_a_database_error(
    fhdb: Harness, minter: Minter, field: str, body: dict[str, Any]
) -> None:
    auth = bearer(await authenticate(fhdb, minter.token("uid-nul")))
    r = await fhdb.client.put("/api/v1/users/me/profile", headers=auth, json=body)
    data = envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")
    assert list(data) == [field]


async def test_control_characters_in_interests_are_422(fhdb: Harness, minter: Minter) -> None:
    auth = bearer(await authenticate(fhdb, minter.token("uid-nul-interests")))
    r = await fhdb.client.put("/api/v1/users/me/preferences", headers=auth,
                              json={"preferredLanguage": "en", "interests": ["ok", "a\u0000b"]})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == ["interests"]


async def test_control_characters_in_device_info_are_422(fhdb: Harness, minter: Minter) -> None:
    r = await fhdb.client.post(AUTH, json={"firebaseToken": minter.token("uid-nul-device"), "deviceInfo": "a\u0000b"})
    assert list(envelope_of(r, 422, "UNPROCESSABLE_ENTITY", "Validation failed")) == ["deviceInfo"]


@pytest.mark.parametrize(("locale", "message", "field_message"), [
    ("fr", "Échec de la validation", "Valeur invalide pour firebaseToken"),
    ("zh-Hant", "驗證失敗", "firebaseToken 的值無效"),
    ("en", "Validation failed", "Firebase token is required"),
])
async def test_a_422_follows_the_locale_header(fh: Harness, locale: str, message: str, field_message: str) -> None:
    """CONTRACT §1: error messages follow `locale`; the seed's English words stay for English."""
    r = await fh.client.post("/api/v1/auth/firebase/authenticate", json={}, headers={"locale": locale})
    assert r.status_code == 422
    assert r.json()["message"] == message and r.json()["data"] == {"firebaseToken": field_message}
