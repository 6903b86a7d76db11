"""Sessions (refresh, rotation, reuse detection, revocation) and one-time secrets."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.users import new_user
from authgate.core.model import RequestContext, TokenType, User
from tests.conftest import Harness

CTX = RequestContext(ip="198.51.100.1", user_agent="pytest", surface="test")


async def make_user(h: Harness, name: str = "sessuser") -> object:
    user = new_user(h.core, name, email=f"{name}@example.com")
    async with h.core.store.transaction() as tx:
        await tx.users.create(user)
    return user


async def start(h: Harness, user) -> object:
    async with h.core.store.transaction() as tx:
        return await h.core.sessions.start(tx, user, CTX, device_token="dev-1")


async def test_refresh_returns_the_same_refresh_token_by_default(hdb: Harness) -> None:
    user = await make_user(hdb)
    issued = await start(hdb, user)
    _, again = await hdb.core.sessions.refresh(issued.refresh_token)
    assert again.refresh_token == issued.refresh_token
    assert (await hdb.core.sessions.authenticate(again.access_token)).user_id == user.id


async def test_refresh_tokens_are_stored_hashed(h: Harness) -> None:
    user = await make_user(h)
    issued = await start(h, user)
    async with h.core.store.transaction(write=False) as tx:
        row = await tx.sessions.get(issued.session.id)
    assert row.refresh_hash != issued.refresh_token and len(row.refresh_hash) == 64
    assert len(issued.refresh_token) >= 43  # 256 bits, base64url


async def test_rotation_grace_window_and_reuse_detection(make_harness) -> None:
    h = await make_harness(refresh_rotation=True, refresh_grace_seconds=10)
    user = await make_user(h)
    issued = await start(h, user)
    _, first = await h.core.sessions.refresh(issued.refresh_token)
    assert first.refresh_token != issued.refresh_token
    # a retry with the old token inside the grace window gets the same new pair
    _, retry = await h.core.sessions.refresh(issued.refresh_token)
    assert retry.refresh_token == first.refresh_token
    # after the window, the old token is a replay: the whole session dies
    async with h.core.store.transaction() as tx:
        row = await tx.sessions.get(issued.session.id)
        row.rotated_at = datetime.now(UTC) - timedelta(seconds=11)
        await tx.sessions.save(row)
    with pytest.raises(AuthError):
        await h.core.sessions.refresh(issued.refresh_token)
    with pytest.raises(AuthError):
        await h.core.sessions.refresh(first.refresh_token)
    with pytest.raises(AuthError):
        await h.core.sessions.authenticate(first.access_token)


async def test_concurrent_refreshes_rotate_once(make_harness) -> None:
    h = await make_harness("postgres", refresh_rotation=True)
    user = await make_user(h)
    issued = await start(h, user)
    results = await asyncio.gather(*(h.core.sessions.refresh(issued.refresh_token) for _ in range(5)))
    assert len({r[1].refresh_token for r in results}) == 1


async def test_revocation_is_seen_by_another_node_within_a_second(make_harness) -> None:
    from authgate.container import build

    a = await make_harness("postgres")
    b = await build(a.settings)
    try:
        user = await make_user(a)
        issued = await start(a, user)
        assert await b.core.sessions.authenticate(issued.access_token)
        async with a.core.store.transaction() as tx:
            await a.core.sessions.revoke(tx, issued.session.id, "test")
        with pytest.raises(AuthError):
            await a.core.sessions.authenticate(issued.access_token)  # at once on the revoking node
        await asyncio.sleep(1.0)
        with pytest.raises(AuthError):
            await b.core.sessions.authenticate(issued.access_token)  # within a second elsewhere
    finally:
        await b.close()


async def test_expired_refresh_token(h: Harness) -> None:
    user = await make_user(h)
    issued = await start(h, user)
    async with h.core.store.transaction() as tx:
        row = await tx.sessions.get(issued.session.id)
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        await tx.sessions.save(row)
    with pytest.raises(AuthError) as err:
        await h.core.sessions.refresh(issued.refresh_token)
    assert err.value.code is ErrorCode.REFRESH_EXPIRED


async def set_lock(h: Harness, user_id: int, locked_at: datetime | None) -> None:
    async with h.core.store.transaction() as tx:
        row = await tx.users.get(user_id, for_update=True)
        row.is_locked, row.locked_at, row.failed_logins = True, locked_at, 10
        await tx.users.save(row)


async def test_refresh_honours_the_lockout_and_lifts_it_once_it_has_run_out(hdb: Harness) -> None:
    """CONTRACT §1: locked for 15 minutes, not until the next password login."""
    user = await make_user(hdb)
    issued = await start(hdb, user)
    minutes = hdb.core.settings.lockout_minutes
    # a lockout that is still running, or one set by hand without a time, refuses the refresh
    for locked_at in (datetime.now(UTC) - timedelta(minutes=minutes - 1), None):
        await set_lock(hdb, user.id, locked_at)
        with pytest.raises(AuthError) as err:
            await hdb.core.sessions.refresh(issued.refresh_token)
        assert err.value.code is ErrorCode.ACCOUNT_INACTIVE
    # once it has run out the refresh works and lifts the lock, as a password login would
    await set_lock(hdb, user.id, datetime.now(UTC) - timedelta(minutes=minutes, seconds=1))
    refreshed, again = await hdb.core.sessions.refresh(issued.refresh_token, CTX)
    assert refreshed.is_locked is False
    assert (await hdb.core.sessions.authenticate(again.access_token)).user_id == user.id
    async with hdb.core.store.transaction(write=False) as tx:
        row = await tx.users.get(user.id)
        unlocked = await tx.audit.list(user_id=user.id, type="account.unlocked")
    assert row.is_locked is False and row.locked_at is None and row.failed_logins == 0
    assert [(e.detail, e.ip) for e in unlocked] == [({"reason": "expired"}, CTX.ip)]


def test_one_lockout_rule_for_logins_and_refreshes() -> None:
    from authgate.core import sessions
    from authgate.core.flows import login

    assert login.lock_active is sessions.lock_active
    at = datetime(2026, 1, 1, tzinfo=UTC)
    user = User(id=1, guid="", username="u", is_locked=True, locked_at=at)
    assert sessions.lock_in_force(user, at + timedelta(minutes=15) - timedelta(microseconds=1), 15)
    assert not sessions.lock_in_force(user, at + timedelta(minutes=15), 15)
    assert sessions.lock_in_force(user, at + timedelta(minutes=59), 60)


async def test_otp_single_use_tries_and_burn(hdb: Harness) -> None:
    otp = hdb.core.otp
    async with hdb.core.store.transaction() as tx:
        row, code = await otp.issue(tx, "login", "x@example.com")
    assert len(code) == 4 and code.isdigit()
    async with hdb.core.store.transaction(write=False) as tx:
        stored = await tx.secrets.get(row.id)
    assert code not in stored.secret_hash
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(4):
        with pytest.raises(AuthError):
            await otp.consume(row.id, wrong, purpose="login")
    assert (await otp.consume(row.id, code, purpose="login")).used_at is not None
    with pytest.raises(AuthError):
        await otp.consume(row.id, code, purpose="login")  # single use


async def test_sixth_try_cannot_succeed(h: Harness) -> None:
    async with h.core.store.transaction() as tx:
        row, code = await h.core.otp.issue(tx, "login", "y@example.com")
    wrong = "0000" if code != "0000" else "1111"
    for _ in range(5):
        with pytest.raises(AuthError):
            await h.core.otp.consume(row.id, wrong, purpose="login")
    with pytest.raises(AuthError):
        await h.core.otp.consume(row.id, code, purpose="login")


async def test_otp_purpose_and_expiry(h: Harness) -> None:
    async with h.core.store.transaction() as tx:
        row, code = await h.core.otp.issue(tx, "login", "z@example.com", ttl=-1)
    with pytest.raises(AuthError):
        await h.core.otp.consume(row.id, code, purpose="login")
    async with h.core.store.transaction() as tx:
        row, code = await h.core.otp.issue(tx, "signup", "z@example.com")
    with pytest.raises(AuthError):
        await h.core.otp.consume(row.id, code, purpose="login")


async def test_new_send_replaces_the_old_code_but_not_the_daily_failures(make_harness) -> None:
    h = await make_harness(otp_daily_failures=3)
    async with h.core.store.transaction() as tx:
        first, code1 = await h.core.otp.issue(tx, "login", "d@example.com")
        second, code2 = await h.core.otp.issue(tx, "login", "d@example.com")
    with pytest.raises(AuthError):
        await h.core.otp.consume(first.id, code1, purpose="login", identifier="d@example.com")
    wrong = "0000" if code2 != "0000" else "1111"
    for _ in range(2):
        with pytest.raises(AuthError):
            await h.core.otp.consume(second.id, wrong, purpose="login", identifier="d@example.com")
    async with h.core.store.transaction() as tx:
        third, code3 = await h.core.otp.issue(tx, "login", "d@example.com")
    # the fourth failure of the day is refused as rate limited, even with the right code
    with pytest.raises(AuthError) as err:
        await h.core.otp.consume(third.id, code3, purpose="login", identifier="d@example.com")
    assert err.value.status == 429


async def test_the_daily_cap_is_the_accounts_across_its_addresses_and_codes(make_harness) -> None:
    """Codes sent for one account to its email and to its phone share one daily cap of wrong tries
    (it was per address: the phone's codes got a fresh allowance); and so do codes that carry no
    address to count by (the hosted pages' login codes were capped per code)."""
    h = await make_harness(otp_daily_failures=3)
    async with h.core.store.transaction() as tx:
        by_mail, mail_code = await h.core.otp.issue(tx, "login", "e@example.com", user_id=77)
        by_phone, phone_code = await h.core.otp.issue(tx, "login", "+85251234567", user_id=77)
    wrong = "0000" if "0000" not in (mail_code, phone_code) else "1111"
    for _ in range(3):
        with pytest.raises(AuthError):
            await h.core.otp.consume(by_mail.id, wrong, purpose="login", identifier="e@example.com")
    with pytest.raises(AuthError) as err:  # the right phone code: the account's cap is used up
        await h.core.otp.consume(by_phone.id, phone_code, purpose="login", identifier="+85251234567")
    assert err.value.status == 429


async def test_csrf_tokens(h: Harness) -> None:
    token = h.core.keyed.csrf_token("sid-1", 60)
    assert h.core.keyed.csrf_valid(token, "sid-1")
    assert not h.core.keyed.csrf_valid(token, "sid-2")
    assert not h.core.keyed.csrf_valid(h.core.keyed.csrf_token("sid-1", -1), "sid-1")
    exp, sig = token.split(".")
    assert not h.core.keyed.csrf_valid(f"{int(exp) + 100}.{sig}", "sid-1")
    assert not h.core.keyed.csrf_valid(None, "sid-1")


async def test_authenticate_refuses_tokens_of_other_kinds(h: Harness) -> None:
    user = await make_user(h)
    token, _ = await h.core.tokens.sign(TokenType.RESET, str(user.id), 60, sid="whatever")
    with pytest.raises(AuthError):
        await h.core.sessions.authenticate(token)
