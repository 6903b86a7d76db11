"""Seed 003 end to end: a real server process, a real SMTP server, cookie and header sessions."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.e2e.support import ServerProcess, SmtpSink

EMAIL = "e2e.user@example.com"


def test_signup_otp_link_login_logout(tmp_path: Path) -> None:
    with SmtpSink() as smtp, ServerProcess(tmp_path, {"AUTHGATE_SMTP_URL": smtp.url}) as server:
        base = f"{server.url}/api/auth/v1"
        with httpx.Client(timeout=10) as c:
            r = c.post(f"{base}/signup", json={
                "email": EMAIL, "name": "E2E", "username": EMAIL,
                "metadata": {"phone-number": ""}, "password": "Corr3ct-Horse", "dont-login": False,
            })
            assert r.status_code == 201, r.text
            header_token = r.headers["x-qt-auth"]
            assert r.cookies.get("qt-auth") == header_token

            # OTP by email → verify the email channel
            assert c.post(f"{base}/users/send-otp", json={"email": EMAIL}).status_code == 200
            code = smtp.code_in(smtp.wait_for(EMAIL))
            r = c.post(f"{base}/users/update-with-otp", headers={"x-qt-auth": header_token},
                       json={"otp": code, "user": {"verification-status": "email"}})
            assert r.status_code == 200, r.text

            # verification link by email, followed with a redirect
            seen = len(smtp.messages)
            r = c.post(f"{base}/users/send-verification-link",
                       json={"email": EMAIL, "redirect-url": "https://app.example.com/done"})
            assert r.status_code == 200
            body = smtp.wait_for(EMAIL, after=seen)
            link = re.search(r"(http://127\.0\.0\.1:\d+\S+)", body).group(1)
            r = c.get(link)
            assert r.status_code == 302 and r.headers["location"] == "https://app.example.com/done#email-verified"

        # log in with the cookie (a browser) and with the header (a mobile app)
        with httpx.Client(timeout=10) as browser:
            r = browser.post(f"{base}/login", json={"username": EMAIL, "email": EMAIL, "password": "Corr3ct-Horse"})
            assert r.status_code == 201
            me = browser.get(f"{base}/users/me")
            assert me.status_code == 200 and me.json()["user"]["emailVerified"] is True
            csrf = browser.get(f"{server.url}/api/auth/csrf-token").json()["csrfToken"]
            assert browser.post(f"{base}/logout").status_code == 403  # cookie without CSRF
            assert browser.post(f"{base}/logout", headers={"x-csrf-token": csrf}).status_code == 200
            cookie_token = r.headers["x-qt-auth"]
        with httpx.Client(timeout=10) as app:
            assert app.get(f"{base}/users/me", headers={"x-qt-auth": cookie_token}).status_code == 401
            r = app.post(f"{base}/login", json={"username": EMAIL, "password": "Corr3ct-Horse"})
            token = r.headers["x-qt-auth"]
            assert app.get(f"{base}/users/me", headers={"x-qt-auth": token}).status_code == 200
            assert app.post(f"{base}/logout", headers={"x-qt-auth": token}).status_code == 200
            # the session of the logged-out token is refused
            assert app.get(f"{base}/users/me", headers={"x-qt-auth": token}).status_code == 401
    # no secret reached the log
    log = server.log()
    assert "Corr3ct-Horse" not in log and header_token not in log
    assert f'"{code}"' not in log and f"code is {code}" not in log
