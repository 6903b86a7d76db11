"""Guard.budget: a failure budget checked before an attempt and counted only on a failure."""

from __future__ import annotations

import asyncio

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


# --- attempts charged up front (Budget.attempt) -------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> LimitsRateLimiter:
    """Both backends: the refund is written against each one's storage."""
    from authgate.adapters.redis import redis_limiter

    return LimitsRateLimiter.memory() if request.param == "memory" else redis_limiter(await _flushed())


async def test_an_attempt_is_counted_while_it_runs_and_given_back_unless_it_failed(limiter: LimitsRateLimiter) -> None:
    g = Guard(limiter)
    budget = g.budget(RULE, "198.51.100.3", LIMIT)
    for _ in range(3):
        async with budget.attempt():
            pass  # a success: given back
    async with budget.attempt():
        await budget.check()  # one of two used, by the running attempt
        await budget.fail()  # another flow's failure: with the running attempt, two of two
        await refused(g, "198.51.100.3")
    await budget.check()  # the attempt was given back on leaving: one failure of two counted
    async with budget.attempt() as attempt:
        attempt.fail()
    error = await refused(g, "198.51.100.3")
    assert error.retry_after is not None and error.retry_after >= 1
    with pytest.raises(AuthError) as caught:
        async with budget.attempt():
            raise AssertionError("a refused attempt never runs")
    assert caught.value.code is ErrorCode.RATE_LIMITED


async def test_an_attempt_that_raises_something_else_is_given_back(limiter: LimitsRateLimiter) -> None:
    """A 503 (the database down) or a malformed request is not a failure of the budget's kind."""
    g = Guard(limiter)
    budget = g.budget(RULE, "198.51.100.4", LIMIT)
    for _ in range(4):
        with pytest.raises(AuthError):
            async with budget.attempt():
                raise AuthError(ErrorCode.SERVICE_UNAVAILABLE)
    await budget.check()


async def test_parallel_attempts_cannot_overshoot_the_budget(limiter: LimitsRateLimiter) -> None:
    """Five attempts at once on a budget of 2: with check-then-count all five passed the check
    (none had failed yet); charged up front, two run and three are refused."""
    g = Guard(limiter)
    release = asyncio.Event()

    async def guess() -> str:
        try:
            async with g.budget(RULE, "198.51.100.5", LIMIT).attempt() as attempt:
                await release.wait()  # the hash
                attempt.fail()
                return "failed"
        except AuthError as exc:
            return exc.code.name

    tasks = [asyncio.create_task(guess()) for _ in range(5)]
    await asyncio.sleep(0.05)
    release.set()
    outcomes = sorted(await asyncio.gather(*tasks))
    assert outcomes == ["RATE_LIMITED"] * 3 + ["failed"] * 2, outcomes


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_parallel_wrong_passwords_cannot_overshoot_the_ip_budget(make_harness: HarnessFactory, backend: str) -> None:
    """Eight wrong passwords fired at once from one IP, with a budget of 3: before, every one
    passed the budget's check (none had finished hashing), so an attacker got as many guesses as
    he could send in parallel; now three are hashed and five refused with 429."""
    redis_url = await _flushed() if backend == "redis" else None
    h = await make_harness(limit_failed_login="3/hour", lockout_threshold=0, redis_url=redis_url)
    ctx = RequestContext(ip="198.51.100.10", user_agent="pytest", surface="test")
    user = new_user(h.core, "racer", email="racer@example.com")
    user.password_hash = await h.core.hasher.hash("Right-Password-1")
    async with h.core.store.transaction() as tx:
        await tx.users.create(user)

    async def guess(i: int) -> str:
        try:
            await check_password(h.core, ctx, "racer@example.com", f"wrong-{i}")
        except AuthError as exc:
            return exc.code.name
        return "logged in"

    outcomes = sorted(await asyncio.gather(*(guess(i) for i in range(8))))
    assert outcomes == ["INVALID_CREDENTIALS"] * 3 + ["RATE_LIMITED"] * 5, outcomes
    async with h.core.store.transaction() as tx:
        stored = await tx.users.get(user.id)
    assert stored is not None and stored.failed_logins == 3  # only three were hashed
    with pytest.raises(AuthError) as caught:
        await check_password(h.core, ctx, "racer@example.com", "Right-Password-1")
    assert caught.value.code is ErrorCode.RATE_LIMITED


async def _flushed() -> str:
    from tests.api.test_limits import flush_redis

    return await flush_redis()
