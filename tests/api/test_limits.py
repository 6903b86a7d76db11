"""Rate limits and lockout (CONTRACT §1), in memory and across nodes through Redis; client IPs."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.conftest import REDIS_URL, Harness, need

SIGNUP = {"email": "rl@example.com", "name": "R", "username": "rl.user",
          "metadata": {"phone-number": ""}, "password": "S3cure-pass", "dont-login": True}


async def flush_redis() -> str:
    url = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    client = aioredis.from_url(url)
    await client.flushdb()
    await client.aclose()
    return url


async def test_failed_logins_per_ip_are_limited_with_retry_after(make_harness) -> None:
    h = await make_harness(limit_failed_login="3/hour")
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for _ in range(3):
        r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"})
        assert r.status_code == 401
    r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0 and set(r.json()) == {"message"}


async def test_rate_limits_off_for_benchmarks(make_harness) -> None:
    h = await make_harness(limit_failed_login="1/hour", rate_limits="off", lockout_threshold=0)
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for _ in range(3):
        r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"})
        assert r.status_code == 401


async def test_limits_are_shared_across_nodes_through_redis(make_harness) -> None:
    url = await flush_redis()
    a = await make_harness("postgres", redis_url=url, limit_failed_login="4/hour")
    b = await make_harness(database_url=a.settings.database_url, redis_url=url, limit_failed_login="4/hour")
    await a.client.post("/api/auth/v1/signup", json=SIGNUP)
    for node in (a, b, a, b):
        r = await node.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"})
        assert r.status_code == 401
    for node in (a, b):
        r = await node.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
        assert r.status_code == 429


async def test_lockout_counts_every_spelling_across_nodes(make_harness) -> None:
    a = await make_harness("postgres", lockout_threshold=4)
    b = await make_harness(database_url=a.settings.database_url, lockout_threshold=4)
    await a.client.post("/api/auth/v1/signup", json={**SIGNUP, "metadata": {"phone-number": "+85268098227"}})
    spellings = [SIGNUP["email"].upper(), "RL.USER", "+85268098227", "68098227"]
    for node, spelling in zip((a, b, a, b), spellings):
        r = await node.client.post("/api/auth/v1/login", json={"username": spelling, "password": "wrong-pass"})
        assert r.status_code == 401
    r = await b.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
    assert (r.status_code, r.json()) == (401, {"message": "User login failed"})
    async with a.core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_email(SIGNUP["email"])
        events = await tx.audit.list(user_id=user.id, type="account.locked")
    assert user.is_locked and user.locked_at is not None and events


async def test_lock_expires_after_the_lockout_period(make_harness) -> None:
    from datetime import UTC, datetime, timedelta

    h = await make_harness(lockout_threshold=2)
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for _ in range(2):
        await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"})
    async with h.core.store.transaction() as tx:
        user = await tx.users.get_by_email(SIGNUP["email"])
        assert user.is_locked
        user.locked_at = datetime.now(UTC) - timedelta(minutes=16)
        await tx.users.save(user)
    r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
    assert r.status_code == 201


async def test_spoofed_forwarded_for_is_ignored_without_a_trusted_proxy(make_harness) -> None:
    h = await make_harness(limit_failed_login="2/hour")
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for i in range(2):
        await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"},
                            headers={"x-forwarded-for": f"10.0.0.{i}"})
    r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"},
                            headers={"x-forwarded-for": "10.9.9.9"})
    assert r.status_code == 429  # the header did not buy a fresh budget


async def test_forwarded_for_is_honoured_from_a_trusted_proxy(make_harness) -> None:
    h = await make_harness(limit_failed_login="2/hour", trusted_proxies="203.0.113.0/24")
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for _ in range(2):
        await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"},
                            headers={"x-forwarded-for": "198.51.100.1"})
    r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"},
                            headers={"x-forwarded-for": "198.51.100.2"})
    assert r.status_code == 201  # another client behind the same proxy
    async with h.core.store.transaction(write=False) as tx:
        events = await tx.audit.list(type="login.failed")
    assert {e.ip for e in events} == {"198.51.100.1"}


async def test_audit_records_ip_and_user_agent(h: Harness) -> None:
    await h.client.post("/api/auth/v1/signup", json=SIGNUP, headers={"user-agent": "agent/1.0"})
    async with h.core.store.transaction(write=False) as tx:
        events = await tx.audit.list(type="user.created")
    assert events[0].ip == "203.0.113.7" and events[0].user_agent == "agent/1.0"


async def test_rate_limits_off_turns_lockout_off_too(make_harness) -> None:
    h = await make_harness(rate_limits="off", lockout_threshold=2)
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    for _ in range(4):
        await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "wrong-pass"})
    r = await h.client.post("/api/auth/v1/login", json={"email": SIGNUP["email"], "password": "S3cure-pass"})
    assert r.status_code == 201


async def test_one_address_gets_the_hourly_sends_once_whichever_surface_sends(make_harness) -> None:
    """The hourly limit is the address's, not each surface's or flow's: a code from the app
    surface, a code from the form surface and a link share it, and so do the hosted pages (they
    counted per account, the app per address, so one mailbox got the limit once per surface)."""
    from tests.api.test_pages import csrf_of

    h = await make_harness(limit_otp_send_purpose="10/minute", limit_otp_send_hourly="3/hour")
    await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    sent = len(h.outbox)
    r = await h.client.post("/app/auth/otp", json={"nature": 1, "loginID": SIGNUP["email"], "sendType": 0})
    assert r.status_code == 200, r.text
    r = await h.client.post("/api/auth/v1/users/send-otp", json={"email": SIGNUP["email"]})
    assert r.status_code == 200, r.text
    page = (await h.client.get("/ui/login/code")).text
    r = await h.client.post("/ui/login/code", data={"csrf": csrf_of(page), "login": "rl.user"})  # by username
    assert r.status_code == 200, r.text
    assert len(h.outbox) == sent + 3
    for path in ("/api/auth/v1/users/send-verification-link", "/api/auth/v1/users/send-otp"):
        r = await h.client.post(path, json={"email": SIGNUP["email"]})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0, (path, r.text)
    r = await h.client.post("/app/auth/otp", json={"nature": 3, "loginID": SIGNUP["email"], "sendType": 0})
    assert r.status_code == 429, r.text
    assert len(h.outbox) == sent + 3
