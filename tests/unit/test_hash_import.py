"""Imported password hashes (CONTRACT §1, §5): bcrypt, argon2 (i/d/id), Django pbkdf2_sha256 and
Firebase scrypt are kept as given by PUT /api/users, log in, and are re-hashed to argon2id at the
first successful login."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from typing import Any

import bcrypt
import pytest
from argon2 import PasswordHasher as RawArgon2
from argon2 import Type

from authgate.core.passwords import FirebaseScrypt, PasswordHasher, is_accepted_prehash
from tests.api.test_sync import SYSTEM_CTX, seed_client
from tests.conftest import Harness

PASSWORD = "C3rs3i#L4nnist3r"
SEED_HASH = "$2b$06$k2WcyM0iw0Jy3aYfFBi2MuNwunZtO0S9uTV1QEyqKtmM3t/4JwYcC"  # seed 002's sample

# github.com/firebase/scrypt README: the sample project's hash parameters and exported account.
FB_SIGNER_KEY = "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA=="
FB_SEPARATOR = "Bw=="
FB_SALT = "42xEC+ixf3L2lw=="
FB_HASH = "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ=="
FB_PASSWORD = "user1password"
FB_SETTINGS = {
    "firebase_scrypt_signer_key": FB_SIGNER_KEY,
    "firebase_scrypt_salt_separator": FB_SEPARATOR,
    "firebase_scrypt_rounds": 8,
    "firebase_scrypt_memory_cost": 14,
}


def django_pbkdf2(password: str, salt: str = "seasalt", iterations: int = 1000) -> str:
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode()}"


def test_firebase_scrypt_matches_the_reference_vector() -> None:
    fb = FirebaseScrypt.from_base64(FB_SIGNER_KEY, FB_SEPARATOR, 8, 14)
    stored = f"firebase_scrypt${FB_SALT}${FB_HASH}"
    assert base64.b64encode(fb.digest(FB_PASSWORD, base64.b64decode(FB_SALT))).decode() == FB_HASH
    assert is_accepted_prehash(stored)
    assert fb.check(stored, FB_PASSWORD) is True
    assert fb.check(stored, "user1passwore") is False
    # another project's parameters do not verify this project's hashes
    assert FirebaseScrypt.from_base64(FB_SIGNER_KEY, "Cw==", 8, 14).check(stored, FB_PASSWORD) is False
    for bad in ("firebase_scrypt$", "firebase_scrypt$$", f"firebase_scrypt${FB_SALT}", "firebase_scrypt$!!$??"):
        assert not is_accepted_prehash(bad) and not fb.check(bad, FB_PASSWORD)


async def test_hasher_needs_the_project_parameters_for_firebase_hashes() -> None:
    stored = f"firebase_scrypt${FB_SALT}${FB_HASH}"
    without = PasswordHasher(memory_kib=1024, time_cost=1)
    with_params = PasswordHasher(memory_kib=1024, time_cost=1, firebase=FirebaseScrypt.from_base64(FB_SIGNER_KEY, FB_SEPARATOR, 8, 14))
    try:
        assert await without.verify(stored, FB_PASSWORD) == (False, False)
        assert await with_params.verify(stored, FB_PASSWORD) == (True, True)
        assert (await with_params.verify(stored, "nope"))[0] is False
    finally:
        without.close()
        with_params.close()


def test_seed_hash_is_the_seed_password() -> None:
    assert bcrypt.checkpw(PASSWORD.encode(), SEED_HASH.encode())


def _argon(kind: Type) -> str:
    return RawArgon2(time_cost=1, memory_cost=1024, parallelism=1, type=kind).hash(PASSWORD)


CASES = {
    "seed bcrypt $2b$": (SEED_HASH, PASSWORD),
    "bcrypt $2a$": (bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(), PASSWORD),
    "bcrypt $2y$": (bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode().replace("$2b$", "$2y$", 1), PASSWORD),
    "argon2id": (_argon(Type.ID), PASSWORD),
    "argon2i": (_argon(Type.I), PASSWORD),
    "argon2d": (_argon(Type.D), PASSWORD),
    "django pbkdf2_sha256": (django_pbkdf2(PASSWORD), PASSWORD),
    "firebase scrypt": (f"firebase_scrypt${FB_SALT}${FB_HASH}", FB_PASSWORD),
}


async def stored_hash(h: Harness, username: str) -> str | None:
    async with h.core.store.transaction(write=False) as tx:
        user = await tx.users.get_by_username(username)
    assert user is not None
    return user.password_hash


async def firebase_harness(make_harness: Any) -> Harness:
    h: Harness = await make_harness(internal=True, **FB_SETTINGS)
    assert h.core.hasher.firebase is not None  # container.py passes settings.firebase_scrypt
    return h


@pytest.mark.parametrize("case", list(CASES))
async def test_imported_hash_logs_in_and_is_rehashed_to_argon2id(make_harness: Any, case: str) -> None:
    given, password = CASES[case]
    h = await firebase_harness(make_harness)
    client = await seed_client(h)
    r = await h.client.put(
        "/api/users/",
        json={"username": "imported", "email": "imported@example.com", "password": given, "emailVerified": True},
        headers={"x-user-ctx": SYSTEM_CTX},
    )
    assert r.status_code == 200, r.text
    assert "password" not in r.json() and given not in r.text
    assert await stored_hash(h, "imported") == given  # kept as given until the first login
    login = {"type": "password", **client, "withPassword": {"emailOrUsername": "imported@example.com", "password": "wrong-Pa55"}}
    r = await h.client.post("/api/auth/login", json=login)
    assert r.json()["message"] == "Invalid credentials"
    assert await stored_hash(h, "imported") == given  # a failed login does not touch it
    login["withPassword"]["password"] = password
    r = await h.client.post("/api/auth/login", json=login)
    assert r.status_code == 200, r.text
    rehashed = await stored_hash(h, "imported")
    assert rehashed is not None and rehashed.startswith("$argon2id$") and rehashed != given
    assert "m=19456,t=2,p=1" in rehashed  # the service's own parameters
    assert (await h.client.post("/api/auth/login", json=login)).status_code == 200
    assert await stored_hash(h, "imported") == rehashed  # current parameters: no further rehash


async def test_firebase_hash_is_refused_without_project_parameters(make_harness: Any) -> None:
    h: Harness = await make_harness(internal=True)
    r = await h.client.put(
        "/api/users",
        json={"username": "imported", "password": f"firebase_scrypt${FB_SALT}${FB_HASH}"},
        headers={"x-user-ctx": SYSTEM_CTX},
    )
    assert r.status_code == 422 and r.json()["field"] == "password"
    assert "FIREBASE_SCRYPT" in r.json()["message"]


async def test_a_hash_too_costly_to_check_is_refused(make_harness: Any) -> None:
    h: Harness = await make_harness(internal=True)
    heavy = "$argon2id$v=19$m=4194304,t=3,p=1$" + base64.b64encode(os.urandom(16)).decode().rstrip("=") + "$" + "A" * 43
    for given in (heavy, "pbkdf2_sha256$99999999$seasalt$" + "A" * 44):
        r = await h.client.put("/api/users", json={"username": "heavy", "password": given}, headers={"x-user-ctx": SYSTEM_CTX})
        assert r.status_code == 422 and r.json()["field"] == "password", json.dumps(r.json())
