"""Seed 001 end to end: a real server process, a real SMTP server and a local SMS webhook receiver.

signup by OTP → set password → add a phone → logout → login by password → forgot password by OTP
(SMS) → reset → the old sessions are refused and only the new password works.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.support import HttpSink, ServerProcess, SmtpSink

EMAIL = "e2e.app@example.com"
PHONE = "68098227"
FIRST, SECOND = "Gdfhdjo33!", "N3w-Secret-9"


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def sms_code(sink: HttpSink, to: str) -> str:
    bodies = [b for b in sink.json_bodies() if b.get("to") == to]
    assert bodies, sink.json_bodies()
    match = re.search(r"\b(\d{4,8})\b", bodies[-1]["body"])
    assert match
    return match.group(1)


def test_signup_password_logout_login_forgot_reset(tmp_path: Path) -> None:
    with SmtpSink() as smtp, HttpSink() as sms, ServerProcess(
        tmp_path, {"AUTHGATE_SMTP_URL": smtp.url, "AUTHGATE_SMS_WEBHOOK_URL": sms.url}
    ) as server:
        base = f"{server.url}/app/auth"
        with httpx.Client(timeout=10) as c:
            # sign up by OTP to the email
            r = c.post(f"{base}/otp", json={"nature": 2, "loginID": EMAIL, "sendType": 0})
            assert r.status_code == 200, r.text
            otp = int(smtp.code_in(smtp.wait_for(EMAIL)))
            r = c.post(f"{base}/signup/verify", json={"otp": otp, "otpToken": r.json()["data"]["otpToken"]})
            assert r.status_code == 200, r.text
            first = r.json()["data"]["accessToken"]
            assert c.post(f"{base}/account/check", json={"loginID": EMAIL}).json()["data"] == {
                "accountType": 2, "exists": True, "setPassword": False,
            }

            # set the first password; link a phone by SMS
            r = c.post(f"{base}/password", json={"password": FIRST}, headers=bearer(first))
            assert r.json() == {"success": True, "message": "", "data": None}
            r = c.post(f"{base}/otp", json={"nature": 5, "loginID": PHONE, "sendType": 0}, headers=bearer(first))
            assert r.status_code == 200, r.text
            code = sms_code(sms, "+85268098227")
            r = c.post(f"{base}/phone/verify", json={"otp": code, "otpToken": r.json()["data"]["otpToken"]},
                       headers=bearer(first))
            assert r.status_code == 200, r.text
            assert c.get(f"{base}/info", headers=bearer(first)).json()["data"] == {"email": EMAIL, "phone": PHONE}

            # logout: that token is refused
            assert c.delete(f"{base}/logout", headers=bearer(first)).status_code == 200
            assert c.get(f"{base}/info", headers=bearer(first)).status_code == 401

            # log in by password twice (two devices)
            sessions = []
            for login_id, device in ((EMAIL, "ios-device"), (PHONE, "android-device")):
                r = c.post(f"{base}/login", json={"loginID": login_id, "password": FIRST, "deviceToken": device})
                assert r.status_code == 200, r.text
                sessions.append(r.json()["data"]["accessToken"])
            assert all(c.get(f"{base}/info", headers=bearer(t)).status_code == 200 for t in sessions)

            # forgot password by OTP over SMS, then reset with the reset-limited token
            seen = len(sms.requests)
            r = c.post(f"{base}/otp", json={"nature": 3, "loginID": PHONE, "sendType": 0})
            assert r.status_code == 200, r.text
            assert len(sms.requests) == seen + 1
            code = sms_code(sms, "+85268098227")
            r = c.post(f"{base}/forgot-password/verify",
                       json={"otp": int(code), "otpToken": r.json()["data"]["otpToken"]})
            assert r.status_code == 200, r.text
            reset = r.json()["data"]["accessToken"]
            assert c.get(f"{base}/info", headers=bearer(reset)).status_code == 401  # reset-only token
            r = c.put(f"{base}/password", json={"password": SECOND}, headers=bearer(reset))
            assert r.json() == {"success": True, "message": "", "data": None}

            # every older session is refused; the old password fails; the new one works
            for token in (*sessions, reset):
                assert c.get(f"{base}/info", headers=bearer(token)).status_code == 401
            r = c.post(f"{base}/login", json={"loginID": EMAIL, "password": FIRST, "deviceToken": "d"})
            assert r.status_code == 401
            r = c.post(f"{base}/login", json={"loginID": EMAIL, "password": SECOND, "deviceToken": "d"})
            assert r.status_code == 200
            assert c.get(f"{base}/info", headers=bearer(r.json()["data"]["accessToken"])).status_code == 200
    # no secret reached the log
    log = server.log()
    assert FIRST not in log and SECOND not in log and reset not in log and f"code is {code}" not in log
