"""A dependency outage gives 503 quickly, never a stack trace or half-written state, and the
service recovers by itself when the dependency returns (CONTRACT §1, Bad input)."""

from __future__ import annotations

import asyncio
import time

from tests.conftest import REDIS_URL, need, postgres_url
from tests.faults import CuttableProxy

SIGNUP = {"email": "out@example.com", "name": "O", "username": "outage.user",
          "metadata": {"phone-number": ""}, "password": "S3cure-pass", "dont-login": False}


async def test_database_outage_is_503_and_recovers(make_harness) -> None:
    url = await postgres_url()
    with CuttableProxy.for_url(url) as proxy:
        h = await make_harness(database_url=proxy.url_via(url), database_timeout=1.0)
        r = await h.client.post("/api/auth/v1/signup", json=SIGNUP)
        assert r.status_code == 201
        token = r.headers["x-qt-auth"]
        proxy.cut()
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        r = await h.client.post("/api/auth/v1/signup", json={**SIGNUP, "email": "two@example.com", "username": "two.user"})
        assert r.status_code == 503, r.text
        assert "Traceback" not in r.text and "message" in r.json()
        assert (await h.client.get("/readyz")).status_code == 503
        r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
        assert r.status_code == 503
        assert time.monotonic() - t0 < 15
        proxy.restore()
        for _ in range(50):
            if (await h.client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        assert (await h.client.get("/readyz")).status_code == 200
        me = await h.client.get("/api/auth/v1/users/me", headers={"x-qt-auth": token})
        assert me.status_code == 200
        r = await h.client.post("/api/auth/v1/signup", json={**SIGNUP, "email": "two@example.com", "username": "two.user"})
        assert r.status_code == 201  # the failed attempt left nothing half-written behind


async def test_redis_outage_is_503_and_recovers(make_harness) -> None:
    redis_url = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    with CuttableProxy.for_url(redis_url) as proxy:
        h = await make_harness(redis_url=proxy.url_via(redis_url), redis_timeout=0.5)
        r = await h.client.post("/api/auth/v1/signup", json=SIGNUP)
        assert r.status_code == 201
        proxy.cut()
        await asyncio.sleep(0.1)
        r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
        assert r.status_code == 503, r.text
        assert (await h.client.get("/readyz")).status_code == 503
        proxy.restore()
        for _ in range(50):
            if (await h.client.get("/readyz")).status_code == 200:
                break
            await asyncio.sleep(0.2)
        r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
        assert r.status_code == 201


async def test_hung_smtp_server_gives_a_clear_error_quickly(make_harness) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)  # accepts connections, never speaks: a hung SMTP server
    port = listener.getsockname()[1]
    try:
        h = await make_harness(email_provider="smtp", smtp_url=f"smtp://127.0.0.1:{port}", smtp_timeout=0.5,
                               provider_retries=2)
        await h.client.post("/api/auth/v1/signup", json={**SIGNUP, "dont-login": True})
        t0 = time.monotonic()
        r = await h.client.post("/api/auth/v1/users/send-otp", json={"email": SIGNUP["email"]})
        assert r.status_code == 500 and r.json()["message"].startswith("Something went wrong")
        assert time.monotonic() - t0 < 10
    finally:
        listener.close()


async def test_a_send_that_failed_can_be_retried_at_once(make_harness) -> None:
    """Every provider try failed: the code is burnt and the one-a-minute wait lifted, so the retry
    after the provider is back is sent, not 429 for a message that never left."""
    from tests.api.test_app import BASE, EMAIL, make_user

    h = await make_harness(provider_retries=1)
    await make_user(h)
    mailer = h.core.messenger.mailer
    real = mailer.send
    down = True

    async def flaky(to: str, subject: str, text: str) -> None:
        if down:
            raise ConnectionError("the provider is down")
        await real(to, subject, text)

    mailer.send = flaky  # type: ignore[method-assign]
    body = {"nature": 1, "loginID": EMAIL, "sendType": 0}
    r = await h.client.post(f"{BASE}/otp", json=body)
    assert r.status_code >= 500, r.text
    down = False
    r = await h.client.post(f"{BASE}/otp", json=body)
    assert r.status_code == 200, r.text
    assert len(h.outbox) == 1
    r = await h.client.post(f"{BASE}/otp", json=body)
    assert r.status_code == 429  # a send that did leave keeps its minute
