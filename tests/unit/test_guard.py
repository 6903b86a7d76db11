"""Guard.budget: a failure budget checked before an attempt and counted only on a failure."""

from __future__ import annotations

import pytest

from authgate.adapters.ratelimit import LimitsRateLimiter
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows.login import check_password
from authgate.core.flows.users import new_user
from authgate.core.guard import Guard
from authgate.core.model import RequestContext
from tests.conftest import HarnessFactory

RULE, LIMIT = "test_failures", "2/hour"


def guard(enabled: bool = True) -> Guard:
    return Guard(LimitsRateLimiter.memory(), enabled=enabled)


async def attempt(g: Guard, key: str, outcome: AuthError | None) -> None:
    """The shape of a flow: check first, count only what this flow calls a failure."""
    budget = g.budget(RULE, key, LIMIT)
    await budget.check()
    if outcome is None:
        return
    if outcome.code is ErrorCode.INVALID_CREDENTIALS:
        await budget.fail()
    raise outcome


async def refused(g: Guard, key: str) -> AuthError:
    with pytest.raises(AuthError) as caught:
        await g.budget(RULE, key, LIMIT).check()
    assert caught.value.code is ErrorCode.RATE_LIMITED
    return caught.value


async def test_check_counts_nothing_and_fail_counts_without_refusing() -> None:
    g = guard()
    budget = g.budget(RULE, "198.51.100.1", LIMIT)
    for _ in range(5):
        await budget.check()  # checks alone never use the budget up
    await budget.fail()
    await budget.check()
    await budget.fail()  # the failure that uses the budget up is not refused itself
    await budget.fail()  # nor is one past it
    error = await refused(g, "198.51.100.1")
    assert error.retry_after is not None and error.retry_after >= 1
    await g.budget(RULE, "198.51.100.2", LIMIT).check()  # another key has its own budget


async def test_successes_and_errors_that_are_not_failures_do_not_count() -> None:
    g = guard()
    for _ in range(3):
        await attempt(g, "198.51.100.1", None)
        with pytest.raises(AuthError):
            await attempt(g, "198.51.100.1", AuthError(ErrorCode.INVALID_FIELD, field="loginID"))
    with pytest.raises(AuthError):
        await attempt(g, "198.51.100.1", AuthError(ErrorCode.INVALID_CREDENTIALS))
    await attempt(g, "198.51.100.1", None)  # one failure of two: still allowed
    with pytest.raises(AuthError):
        await attempt(g, "198.51.100.1", AuthError(ErrorCode.INVALID_CREDENTIALS))
    with pytest.raises(AuthError) as caught:
        await attempt(g, "198.51.100.1", None)  # refused before the attempt, whatever its outcome
    assert caught.value.code is ErrorCode.RATE_LIMITED


async def test_keys_are_lower_cased_and_an_empty_key_is_never_limited() -> None:
    g = guard()
    await g.budget(RULE, "Ann@Example.com", LIMIT).fail()
    await g.budget(RULE, "ann@example.com", LIMIT).fail()
    await refused(g, "ANN@EXAMPLE.COM")
    empty = g.budget(RULE, "", LIMIT)
    for _ in range(3):
        await empty.fail()
    await empty.check()


async def test_a_disabled_guard_neither_counts_nor_refuses() -> None:
    g = guard(enabled=False)
    budget = g.budget(RULE, "198.51.100.1", LIMIT)
    for _ in range(3):
        await budget.fail()
    await budget.check()


async def test_password_login_counts_wrong_passwords_only(make_harness: HarnessFactory) -> None:
    """check_password's failed_login_ip budget: a malformed login ID (422) and a right password do
    not count; wrong passwords and unknown accounts do; past the budget, 429 before the password."""
    h = await make_harness(limit_failed_login="2/hour", lockout_threshold=0)
    ctx = RequestContext(ip="198.51.100.9", user_agent="pytest", surface="test")
    user = new_user(h.core, "budgetuser", email="budget@example.com")
    user.password_hash = await h.core.hasher.hash("Right-Password-1")
    async with h.core.store.transaction() as tx:
        await tx.users.create(user)
    for _ in range(3):
        with pytest.raises(AuthError) as caught:
            await check_password(h.core, ctx, "", "Right-Password-1")
        assert caught.value.code is not ErrorCode.RATE_LIMITED
        assert (await check_password(h.core, ctx, "budget@example.com", "Right-Password-1")).id == user.id
    with pytest.raises(AuthError) as caught:
        await check_password(h.core, ctx, "budget@example.com", "wrong")
    assert caught.value.code is ErrorCode.INVALID_CREDENTIALS
    with pytest.raises(AuthError) as caught:
        await check_password(h.core, ctx, "nobody@example.com", "wrong")
    assert caught.value.code is ErrorCode.USER_NOT_FOUND
    with pytest.raises(AuthError) as caught:
        await check_password(h.core, ctx, "budget@example.com", "Right-Password-1")
    assert caught.value.code is ErrorCode.RATE_LIMITED and (caught.value.retry_after or 0) >= 1
