"""Seed 004 end to end: a real server process, a real certificate server and a real SMS webhook.

authenticate → phone OTP (received by the webhook) → preferences → profile → refresh → logout →
refresh refused.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.support import HttpSink, ServerProcess
from tests.unit.test_firebase_verify import PROJECT, Minter

PHONE = "+255712345678"


def data_of(r: httpx.Response, message: str) -> object:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True and body["httpStatus"] == "OK" and body["message"] == message
    return body["data"]


def test_the_seed_story(tmp_path: Path) -> None:
    minter = Minter()
    firebase_token = minter.token("uid-e2e", email="e2e.john@gmail.com")
    with HttpSink(reply=minter.certs, headers={"Cache-Control": "public, max-age=3600"}) as certs, \
            HttpSink() as sms, \
            ServerProcess(tmp_path, {
                "AUTHGATE_FIREBASE_PROJECT_ID": PROJECT,
                "AUTHGATE_FIREBASE_CERTS_URL": certs.url,
                "AUTHGATE_SMS_WEBHOOK_URL": f"{sms.url}/sms",
            }) as server:
        base = f"{server.url}/api/v1"
        with httpx.Client(timeout=10) as c:
            r = c.post(f"{base}/auth/firebase/authenticate", json={
                "firebaseToken": firebase_token, "preferredLanguage": "en", "deviceInfo": "iPhone 14 Pro, iOS 17.2",
            })
            auth = data_of(r, "Authentication successful")
            assert isinstance(auth, dict)
            assert auth["onboarding"] == {"isComplete": False, "currentStep": "PENDING_PHONE_VERIFICATION"}
            assert auth["user"]["username"] == "e2ejohn" and auth["user"]["authProvider"] == "GOOGLE"
            headers = {"Authorization": f"Bearer {auth['accessToken']}"}

            data_of(c.post(f"{base}/auth/phone/send-otp", headers=headers, json={"phoneNumber": PHONE}),
                    "OTP sent successfully")
            [message] = sms.json_bodies()
            assert message["to"] == PHONE
            code = re.search(r"\b(\d{4,8})\b", message["body"]).group(1)  # type: ignore[union-attr]
            step = data_of(c.post(f"{base}/auth/phone/verify", headers=headers,
                                  json={"phoneNumber": PHONE, "otp": code}), "Phone number verified successfully")
            assert step["onboarding"]["currentStep"] == "PENDING_PREFERENCES"  # type: ignore[index]
            step = data_of(c.put(f"{base}/users/me/preferences", headers=headers,
                                 json={"preferredLanguage": "sw", "interests": ["jobs"]}),
                           "Preferences updated successfully")
            assert step["onboarding"]["currentStep"] == "PENDING_PROFILE_COMPLETION"  # type: ignore[index]
            step = data_of(c.put(f"{base}/users/me/profile", headers=headers, json={"fullName": "John Doe"}),
                           "Profile updated successfully")
            assert step["onboarding"] == {"isComplete": True, "currentStep": "COMPLETED"}  # type: ignore[index]

            me = data_of(c.get(f"{base}/auth/me", headers=headers), "User retrieved successfully")
            assert me["phoneNumber"] == PHONE and me["isPhoneVerified"] is True  # type: ignore[index]
            assert me["preferredLanguage"] == "sw"  # type: ignore[index]

            fresh = data_of(c.post(f"{base}/auth/refresh", json={"refreshToken": auth["refreshToken"]}),
                            "Token refreshed successfully")
            assert fresh["refreshToken"] == auth["refreshToken"]  # type: ignore[index]
            assert fresh["onboarding"]["currentStep"] == "COMPLETED"  # type: ignore[index]

            # the same Firebase account signing in again is the same user
            again = data_of(c.post(f"{base}/auth/firebase/authenticate", json={"firebaseToken": firebase_token}),
                            "Authentication successful")
            assert again["user"]["id"] == auth["user"]["id"]  # type: ignore[index]

            out = c.post(f"{base}/auth/logout", headers={"Authorization": f"Bearer {fresh['accessToken']}"})  # type: ignore[index]
            assert data_of(out, "Logged out successfully") is None
            for token in (auth["refreshToken"], again["refreshToken"]):  # type: ignore[index]
                r = c.post(f"{base}/auth/refresh", json={"refreshToken": token})
                assert r.status_code == 401 and r.json()["message"] == "Invalid refresh token"
            r = c.get(f"{base}/auth/me", headers=headers)
            assert r.status_code == 401 and r.json()["data"] == "Token is missing or invalid"
        assert len(certs.requests) == 1  # cached for its max-age
    log = server.log()
    assert firebase_token not in log and auth["refreshToken"] not in log
    assert f'"{code}"' not in log
