"""Passwords (CONTRACT §1): argon2id parameters, policy, legacy hashes, equal-time unknown users."""

from __future__ import annotations

import base64
import hashlib
import os
import sys

import bcrypt
import pytest
from argon2 import PasswordHasher as RawArgon2
from argon2 import Type, extract_parameters

from authgate.core.errors import AuthError
from authgate.core.passwords import PasswordHasher, PasswordPolicy, is_accepted_prehash


@pytest.fixture(scope="module")
def hasher() -> PasswordHasher:
    return PasswordHasher(workers=2)


async def test_argon2id_owasp_parameters(hasher: PasswordHasher) -> None:
    stored = await hasher.hash("S3cure-pass")
    params = extract_parameters(stored)
    assert stored.startswith("$argon2id$")
    assert params.type is Type.ID and params.memory_cost >= 19456 and params.time_cost >= 2
    assert (await hasher.verify(stored, "S3cure-pass")) == (True, False)
    assert (await hasher.verify(stored, "wrong"))[0] is False


async def test_bcrypt_import_verifies_and_asks_for_rehash(hasher: PasswordHasher) -> None:
    for prefix in ("$2a$", "$2b$", "$2y$"):
        stored = bcrypt.hashpw(b"C3rs3i#L4nnist3r", bcrypt.gensalt(6)).decode().replace("$2b$", prefix, 1)
        assert is_accepted_prehash(stored)
        assert await hasher.verify(stored, "C3rs3i#L4nnist3r") == (True, True)
        assert (await hasher.verify(stored, "nope"))[0] is False


async def test_bcrypt_over_72_bytes_is_a_failed_login_not_an_error(hasher: PasswordHasher) -> None:
    stored = bcrypt.hashpw(b"a" * 72, bcrypt.gensalt(4)).decode()
    assert await hasher.verify(stored, "a" * 73) == (False, False)


async def test_weaker_argon2_is_rehashed(hasher: PasswordHasher) -> None:
    weak = RawArgon2(time_cost=1, memory_cost=8192, parallelism=1, type=Type.ID).hash("pw-123456")
    assert await hasher.verify(weak, "pw-123456") == (True, True)


async def test_django_pbkdf2(hasher: PasswordHasher) -> None:
    digest = base64.b64encode(hashlib.pbkdf2_hmac("sha256", b"secret-pw", b"salt", 1000)).decode()
    stored = f"pbkdf2_sha256$1000$salt${digest}"
    assert is_accepted_prehash(stored)
    assert await hasher.verify(stored, "secret-pw") == (True, True)
    assert (await hasher.verify(stored, "other"))[0] is False


async def test_unknown_user_runs_a_real_verification(hasher: PasswordHasher) -> None:
    import time

    stored = await hasher.hash("S3cure-pass")
    t0 = time.perf_counter()
    for _ in range(3):
        await hasher.verify(stored, "wrong")
    known = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(3):
        assert await hasher.verify(None, "wrong") == (False, False)
    unknown = time.perf_counter() - t0
    # Not a timing assertion on speed: only that the dummy path does comparable work (> 1/4).
    assert unknown > known / 4


def test_policy_defaults_follow_seed_001() -> None:
    policy = PasswordPolicy()
    policy.check("gdfhdjo33")
    policy.check("PasghWgf")
    policy.check("C3rs3i#L4nnist3r")
    for bad in ("12345", "x" * 41, "has space1", "pässwörd1", "password", "123456789", "qwerty123"):
        with pytest.raises(AuthError) as err:
            policy.check(bad)
        assert err.value.field == "password"


def test_hardened_policy() -> None:
    policy = PasswordPolicy(min_length=8, max_length=64, any_printable=True)
    policy.check("correct horse battery ✓")
    with pytest.raises(AuthError):
        policy.check("short1!")
    with pytest.raises(AuthError):
        policy.check("tab\tinside-password")


async def test_queue_limit_sheds_with_503() -> None:
    import asyncio

    small = PasswordHasher(workers=1, queue_limit=2)
    results = await asyncio.gather(*(small.hash("S3cure-pass") for _ in range(6)), return_exceptions=True)
    errors = [r for r in results if isinstance(r, AuthError)]
    assert errors and all(e.status == 503 for e in errors)
    assert any(isinstance(r, str) for r in results)
    small.close()


async def test_a_login_that_waits_too_long_for_a_hashing_slot_gets_503() -> None:
    """Past the hashing threads' two slots each, logins wait in FIFO order for at most max_wait
    seconds, then get 503 (instead of waiting until the client gives up); the rest are served."""
    import asyncio

    hasher = PasswordHasher(memory_kib=8192, time_cost=2, workers=1, queue_limit=1000, max_wait=0.3)
    stored = await hasher.hash("S3cure-pass")
    results = await asyncio.gather(*(hasher.verify(stored, "S3cure-pass") for _ in range(300)),
                                   return_exceptions=True)
    shed = [r for r in results if isinstance(r, AuthError)]
    served = [r for r in results if not isinstance(r, BaseException)]
    assert shed and all(e.status == 503 for e in shed)
    assert served and all(ok for ok, _ in served)
    assert results[0] == (True, False)  # first come, first served
    assert len(served) + len(shed) == len(results)
    # without a deadline every one of them waits its turn
    patient = PasswordHasher(memory_kib=8192, time_cost=1, workers=1, queue_limit=1000, max_wait=0)
    assert all(not isinstance(r, BaseException) for r in await asyncio.gather(
        *(patient.hash("x-S3cure") for _ in range(40)), return_exceptions=True))
    hasher.close()
    patient.close()


async def test_no_hash_for_a_client_that_has_gone() -> None:
    """A login whose client closed the connection while it queued gets no hash (503, unread): under
    overload the queue is mostly such logins, and hashing them delays the ones still waiting."""
    import asyncio
    import time

    hasher = PasswordHasher(memory_kib=8192, time_cost=2, workers=1, queue_limit=1000, max_wait=0)
    stored = await hasher.hash("S3cure-pass")
    calls: list[str] = []
    real = hasher._verify_sync

    def counted(stored_: str | None, secret: str) -> tuple[bool, bool]:
        calls.append(secret)
        return real(stored_, secret)

    hasher._verify_sync = counted  # type: ignore[method-assign]

    async def left() -> bool:
        return True

    async def here() -> bool:
        return False

    started = time.perf_counter()
    results = await asyncio.gather(
        *(hasher.verify(stored, f"gone-{i}", gone=left) for i in range(40)),
        hasher.verify(stored, "S3cure-pass", gone=here),
        return_exceptions=True,
    )
    assert all(isinstance(r, AuthError) and r.status == 503 and r.detail == "client_gone" for r in results[:40])
    assert results[40] == (True, False)
    assert calls == ["S3cure-pass"]  # forty hashes skipped: the one still waited for ran at once
    assert time.perf_counter() - started < 2.0
    hasher.close()


@pytest.mark.skipif(sys.platform != "linux", reason="kernel thread names are Linux's")
async def test_hashing_threads_carry_their_name_and_a_lower_priority() -> None:
    """``top -H`` and the benchmark tell the hashing threads' CPU from the event loop's by name."""
    hasher = PasswordHasher(memory_kib=8192, time_cost=1, workers=1)
    await hasher.hash("x-S3cure-pass")
    names = {}
    for tid in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{tid}/comm") as f:
            names[f.read().strip()] = int(tid)
    assert "argon2_0" in names, names
    assert os.getpriority(os.PRIO_PROCESS, names["argon2_0"]) >= 10
    hasher.close()
