"""Per-IP send budget (CONTRACT §1: rate limits per IP on every endpoint that sends a message).

``AUTHGATE_LIMIT_OTP_SEND_IP`` counts every code or verification link one client IP asks for, on
every surface, whatever the address: the per-address limits alone let one IP message address after
address. Counted in core/flows/codes.py (``count_send``), so the surfaces share one budget.
"""

from __future__ import annotations

from typing import Any

from tests.api.test_app import BASE, EMAIL, make_user, send_otp
from tests.api.test_firebase import authenticate, bearer
from tests.api.test_pages import csrf_of
from tests.api.test_pages import signup as ui_signup
from tests.conftest import HarnessFactory
from tests.unit.test_firebase_verify import PROJECT, Minter

FORM = "/api/auth/v1"


def _refused(r: Any) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1


async def test_app_otp_sends_are_limited_per_ip_across_addresses(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_otp_send_ip="3/hour")
    await make_user(h)
    await send_otp(h, 1, EMAIL)
    await send_otp(h, 2, "new1@example.com")
    await send_otp(h, 2, "+85251234567")
    r = await h.client.post(f"{BASE}/otp", json={"nature": 2, "loginID": "new2@example.com", "sendType": 0})
    _refused(r)
    assert (r.json()["success"], r.json()["data"]) == (False, None)
    assert len(h.outbox) == 2 and len(h.sms_outbox) == 1  # nothing sent for the refused one
    # the budget is the IP's: another client (behind a trusted proxy) still gets its code
    h2 = await make_harness(limit_otp_send_ip="1/hour", trusted_proxies="203.0.113.0/24")
    for ip in ("198.51.100.1", "198.51.100.2"):
        r = await h2.client.post(f"{BASE}/otp", json={"nature": 2, "loginID": f"{ip}@example.com", "sendType": 0},
                                 headers={"x-forwarded-for": ip})
        assert r.status_code == 200, r.text


async def test_default_ip_budget_is_thirty_an_hour(make_harness: HarnessFactory) -> None:
    h = await make_harness()
    assert h.settings.limit_otp_send_ip == "30/hour"
    for i in range(30):
        await send_otp(h, 2, f"user{i}@example.com")
    r = await h.client.post(f"{BASE}/otp", json={"nature": 2, "loginID": "user30@example.com", "sendType": 0})
    _refused(r)


async def test_form_sends_share_the_ip_budget_known_or_unknown_email(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_otp_send_ip="3/hour")
    body = {"email": "known@example.com", "name": "K", "username": "known", "password": "S3cure-pass",
            "metadata": {"phone-number": ""}, "dont-login": True}
    assert (await h.client.post(f"{FORM}/signup", json=body)).status_code == 201
    r = await h.client.post(f"{FORM}/users/send-otp", json={"email": "known@example.com"})
    assert r.status_code == 200, r.text
    # an unknown email costs the same (nothing is sent), so the budget does not reveal accounts
    r = await h.client.post(f"{FORM}/users/send-otp", json={"email": "nobody@example.com"})
    assert r.status_code == 200
    r = await h.client.post(f"{FORM}/users/send-verification-link", json={"email": "known@example.com"})
    assert r.status_code == 200, r.text
    assert len(h.outbox) == 2
    for path in ("send-otp", "send-verification-link"):
        for email in ("known@example.com", "other@example.com"):
            r = await h.client.post(f"{FORM}/users/{path}", json={"email": email})
            _refused(r)
            assert set(r.json()) == {"message"}
    assert len(h.outbox) == 2


async def test_unknown_emails_on_the_form_cost_the_hourly_budget_too(make_harness: HarnessFactory) -> None:
    """A pretended send counts like a real one: otherwise the 11th send an hour would tell a known
    address (429) from an unknown one (200)."""
    h = await make_harness(limit_otp_send_purpose="10/minute", limit_otp_send_hourly="2/hour")
    for path in ("send-otp", "send-verification-link"):
        for _ in range(2):
            assert (await h.client.post(f"{FORM}/users/{path}", json={"email": f"{path}@example.com"})).status_code == 200
        _refused(await h.client.post(f"{FORM}/users/{path}", json={"email": f"{path}@example.com"}))


async def test_firebase_phone_sends_are_limited_per_ip(make_harness: HarnessFactory, certs: Any, minter: Minter) -> None:
    h = await make_harness(firebase_project_id=PROJECT, firebase_certs_url=certs.url, limit_otp_send_ip="2/hour")
    phones = ("+255712345678", "+255712345679", "+255712345670")
    users = [bearer(await authenticate(h, minter.token(f"uid-ip{i}", email=f"ip{i}@example.com"))) for i in range(3)]
    for auth, phone in zip(users[:2], phones[:2], strict=True):
        r = await h.client.post("/api/v1/auth/phone/send-otp", headers=auth, json={"phoneNumber": phone})
        assert r.status_code == 200, r.text
    r = await h.client.post("/api/v1/auth/phone/send-otp", headers=users[2], json={"phoneNumber": phones[2]})
    _refused(r)
    body = r.json()
    assert body["httpStatus"] == "TOO_MANY_REQUESTS" and body["success"] is False and body["data"] == body["message"]
    assert len(h.sms_outbox) == 2


async def test_hosted_pages_sends_are_limited_per_ip(make_harness: HarnessFactory) -> None:
    h = await make_harness(limit_otp_send_ip="3/hour")
    assert (await ui_signup(h)).status_code == 303  # sign-up sends the first email code: 1
    page = (await h.client.get("/ui/channel/email")).text
    r = await h.client.post("/ui/channel/email/link", data={"csrf": csrf_of(page)})  # 2
    assert r.status_code == 303
    h.client.cookies.clear()
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ann@example.com"})  # 3
    assert r.status_code == 200
    sent = len(h.outbox)
    page = (await h.client.get("/ui/forgot")).text
    r = await h.client.post("/ui/forgot", data={"csrf": csrf_of(page), "login": "ann@example.com"})
    _refused(r)
    assert f"try again in {r.headers['retry-after']} seconds" in r.text
    assert len(h.outbox) == sent


async def test_hosted_pages_unknown_accounts_cost_the_ip_budget_too(make_harness: HarnessFactory) -> None:
    """Once the IP budget is used up, a known and an unknown account must both get 429; otherwise
    /ui/login/code tells which addresses have accounts."""
    h = await make_harness(limit_otp_send_ip="1/hour")
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ghost1@example.com"})
    assert r.status_code == 200
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "ghost2@example.com"})
    assert r.status_code == 429


async def test_wrong_codes_on_the_form_count_against_the_ip_too(make_harness: HarnessFactory) -> None:
    """The wrong-code budget lives in core/flows/codes.check_code, so update-with-otp has it as the
    app's verify endpoints do: past it, 429 even with the right code."""
    from tests.api.test_form import SIGNUP
    from tests.api.test_form import signup as form_signup

    h = await make_harness(limit_failed_login="2/hour")
    session = {"x-qt-auth": (await form_signup(h))["token"]}
    await h.client.post(f"{FORM}/users/send-otp", json={"email": SIGNUP["email"]})
    code = h.last_code()
    wrong = f"{(int(code) + 1) % 10000:04d}"
    for _ in range(2):
        r = await h.client.post(f"{FORM}/users/update-with-otp", headers=session,
                                json={"otp": wrong, "user": {"verification-status": "email"}})
        assert r.status_code == 401, r.text
    r = await h.client.post(f"{FORM}/users/update-with-otp", headers=session,
                            json={"otp": code, "user": {"verification-status": "email"}})
    _refused(r)
    assert set(r.json()) == {"message"}


async def test_ipv6_clients_are_counted_by_their_64_prefix(make_harness: HarnessFactory) -> None:
    """Each address of one /64 had a budget of its own: anyone with a /64 (every IPv6 subscriber)
    had 2^64 of them. Now the /64 shares one; another /64 has its own."""
    h = await make_harness(limit_account_check="2/minute", trusted_proxies="203.0.113.0/24")

    async def check(ip: str) -> int:
        r = await h.client.post(f"{BASE}/account/check", json={"loginID": "someone@example.com"},
                                headers={"x-forwarded-for": ip})
        return r.status_code == 429  # else 404: the account does not exist

    limited = [await check(f"2001:db8::{i}") for i in range(1, 5)]
    assert limited == [False, False, True, True], limited
    assert not await check("2001:db8:0:1::1")  # the next /64
    assert not await check("::ffff:198.51.100.7")
    assert not await check("198.51.100.7")  # the same IPv4 client as the mapped address above
    assert await check("198.51.100.7")
