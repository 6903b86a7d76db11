"""Password and PIN hashing, the password policy, and legacy-hash import.

Argon2id with at least OWASP's parameters (m=19 MiB, t=2, p=1). Hashing runs in a bounded thread
pool (argon2-cffi releases the GIL), never on the event loop; when the queue in front of the pool
is full the call is shed with 503 rather than left to time out (docs/performance.md).
"""

from __future__ import annotations

import base64
import ctypes
import hashlib
import hmac
import os
import re
import string
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import bcrypt
from argon2 import PasswordHasher as Argon2Hasher
from argon2 import Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from authgate.core.errors import AuthError, ErrorCode, invalid
from authgate.core.hashpool import Gone, HashQueue, HashThreads, Shed

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")
PBKDF2_PREFIX = "pbkdf2_sha256$"
# $2a$/$2b$/$2y$, a cost of 04-31, then 22 characters of salt and 31 of hash in bcrypt's alphabet:
# a string of the right length and prefix is not yet a hash that can ever match.
_BCRYPT = re.compile(r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}")
FIREBASE_PREFIX = "firebase_scrypt$"  # firebase_scrypt$<salt, base64>$<password hash, base64>
_PRINTABLE_SPECIALS = set(string.punctuation)
# Results a hashing thread may hand back in one wake-up of the event loop when hashes queue
# (core/hashpool.py): the loop's work per login fell from ~3.4 ms to ~2.4 ms with 2 and ~1.9 ms
# with 4 on one shared core; 8 measured no better (docs/performance.md, item 33).
HASH_BATCH = 4


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    text = resources.files("authgate.core").joinpath("data/common_passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


class PasswordPolicy:
    """Seed 001: 6–40 characters of letters, digits and printable ASCII specials; not a common one.

    ``any_printable`` is the hardened profile (NIST SP 800-63B §5.1.1.2: any printable character,
    including spaces and Unicode).
    """

    def __init__(
        self, min_length: int = 6, max_length: int = 40, any_printable: bool = False, check_common: bool = True
    ) -> None:
        self.min_length = min_length
        self.max_length = max_length
        self.any_printable = any_printable
        self.check_common = check_common

    def check(self, password: str, field: str = "password") -> None:
        if not (self.min_length <= len(password) <= self.max_length):
            raise invalid(field, f"must be {self.min_length}-{self.max_length} characters")
        if self.any_printable:
            if not password.isprintable():
                raise invalid(field, "contains characters that are not printable")
        elif not all(ch.isascii() and (ch.isalnum() or ch in _PRINTABLE_SPECIALS) for ch in password):
            raise invalid(field, "only letters, digits and special characters are allowed")
        if self.check_common and password.lower() in common_passwords():
            raise invalid(field, "is too common")


class PasswordHasher:
    def __init__(
        self,
        memory_kib: int = 19456,
        time_cost: int = 2,
        parallelism: int = 1,
        workers: int = 0,
        queue_limit: int = 64,
        max_wait: float = 5.0,
        pepper: bytes = b"",
        firebase: FirebaseScrypt | None = None,
    ) -> None:
        self.firebase = firebase  # the Firebase project's hash parameters, for imported accounts
        self._argon = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        count = workers or os.cpu_count() or 1
        self._pool = HashThreads(count, name="argon2", batch=HASH_BATCH, initializer=_lower_priority)
        # HASH_BATCH hashes per thread are handed to the pool (one running, the others ready, so
        # a thread can hand results back together); the rest wait for a slot in FIFO order, each
        # for at most ``max_wait`` seconds, then get 503: a login is answered before its client
        # gives up, however slowly hashes finish (slower when the core also serves reads: a hash
        # at nice 10 gets what the event loop leaves), and a shed client does not come straight
        # back to compete with the reads. Past 64 pending per thread a login is shed at once,
        # unless some of those waiting are of clients that have gone (hashpool.HashQueue).
        self._queue = HashQueue(count * HASH_BATCH, queue_limit or count * 64, max_wait)
        # Verified against when the account does not exist, so unknown users cost the same time.
        # Computed on a hashing thread, so start-up does not wait for it.
        self._dummy = self._pool.submit(self._argon.hash, os.urandom(16).hex())

    async def _run(self, fn, *args, gone: Gone = None):  # type: ignore[no-untyped-def]
        try:
            # A client that gave up while its login queued (a timeout, a retry) gets no hash:
            # under overload the queue is mostly such requests, and hashing for them only
            # delays the ones still waiting. Nobody reads this answer.
            await self._queue.acquire(gone)
        except Shed as shed:
            raise AuthError(ErrorCode.OVERLOADED, detail="client_gone" if shed.reason == "gone" else None) from None
        try:
            return await self._pool.run(fn, *args)
        finally:
            self._queue.release()

    async def hash(self, secret: str, *, gone: Gone = None) -> str:
        """``gone`` (RequestContext.gone): skip the hash, with 503, if the client has left."""
        return await self._run(self._argon.hash, secret, gone=gone)  # type: ignore[no-any-return]

    async def verify(self, stored: str | None, secret: str, *, gone: Gone = None) -> tuple[bool, bool]:
        """(matches, needs_rehash). ``stored`` None runs a dummy verification of equal cost."""
        return await self._run(self._verify_sync, stored, secret, gone=gone)  # type: ignore[no-any-return]

    def _verify_sync(self, stored: str | None, secret: str) -> tuple[bool, bool]:
        if stored is None:
            try:
                self._argon.verify(self._dummy.result(), secret)
            except VerificationError:
                pass
            return False, False
        if stored.startswith(ARGON2_PREFIXES):
            try:
                self._argon.verify(stored, secret)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False, False
            return True, self._argon.check_needs_rehash(stored)
        if stored.startswith(BCRYPT_PREFIXES):
            raw = secret.encode()
            if len(raw) > 72:  # bcrypt cannot check past 72 bytes: a failed login, never an error
                return False, False
            try:
                ok = bcrypt.checkpw(raw, stored.replace("$2y$", "$2b$", 1).encode())
            except ValueError:
                return False, False
            return ok, ok
        if stored.startswith(PBKDF2_PREFIX):
            ok = _check_pbkdf2(stored, secret)
            return ok, ok
        if stored.startswith(FIREBASE_PREFIX):
            ok = self.firebase is not None and self.firebase.check(stored, secret)
            return ok, ok
        return False, False

    def close(self) -> None:
        self._pool.close()


def _lower_priority() -> None:
    """Hashing threads run at nice 10, so the event loop keeps serving cheap requests (token
    checks, reads) promptly while logins queue: CPU goes to hashing only when the loop is idle.
    They also carry their name (``argon2_0``...) in the kernel, so ``top -H``, ``ps -L`` and the
    benchmark (bench/server.py) can tell their CPU from the event loop's."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    if sys.platform == "linux":
        try:
            ctypes.CDLL(None).prctl(15, threading.current_thread().name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
        except (AttributeError, OSError):
            pass


def is_accepted_prehash(value: str) -> bool:
    """Hashes accepted on import and re-hashed to argon2id at the next successful login."""
    if value.startswith(BCRYPT_PREFIXES):
        return _BCRYPT.fullmatch(value) is not None
    if value.startswith(ARGON2_PREFIXES):
        return value.count("$") >= 4
    if value.startswith(PBKDF2_PREFIX):
        return value.count("$") == 3
    if value.startswith(FIREBASE_PREFIX):
        return FirebaseScrypt.parse(value) is not None
    return False


def _check_pbkdf2(stored: str, secret: str) -> bool:
    """Django's ``pbkdf2_sha256$<iterations>$<salt>$<b64 digest>``."""
    try:
        _, iterations, salt, expected = stored.split("$", 3)
        digest = hashlib.pbkdf2_hmac("sha256", secret.encode(), salt.encode(), int(iterations))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(base64.b64encode(digest).decode(), expected)


@dataclass(frozen=True)
class FirebaseScrypt:
    """Firebase Authentication's modified scrypt (github.com/firebase/scrypt), for exported accounts.

    The stored hash is AES-256-CTR (zero IV) of the project's signer key under the first 32 bytes
    of scrypt(password, salt + salt separator, N=2^mem_cost, r=rounds, p=1). Parameters come from
    the project's "Password Hash Parameters" (AUTHGATE_FIREBASE_SCRYPT_*).
    """

    signer_key: bytes
    salt_separator: bytes
    rounds: int
    memory_cost: int

    @classmethod
    def from_base64(cls, signer_key: str, salt_separator: str, rounds: int, memory_cost: int) -> FirebaseScrypt:
        return cls(base64.b64decode(signer_key), base64.b64decode(salt_separator), rounds, memory_cost)

    @staticmethod
    def parse(stored: str) -> tuple[bytes, bytes] | None:
        """(salt, hash) of ``firebase_scrypt$<salt_b64>$<hash_b64>``, or None when malformed."""
        parts = stored.split("$")
        if len(parts) != 3 or parts[0] + "$" != FIREBASE_PREFIX:
            return None
        try:
            salt = base64.b64decode(parts[1], validate=True)
            digest = base64.b64decode(parts[2], validate=True)
        except ValueError:
            return None
        return (salt, digest) if salt and digest else None

    def digest(self, password: str, salt: bytes) -> bytes:
        n = 1 << self.memory_cost
        derived = hashlib.scrypt(
            password.encode(),
            salt=salt + self.salt_separator,
            n=n,
            r=self.rounds,
            p=1,
            dklen=32,
            maxmem=256 * self.rounds * n + (1 << 20),
        )
        encryptor = Cipher(algorithms.AES(derived), modes.CTR(b"\x00" * 16)).encryptor()
        return encryptor.update(self.signer_key) + encryptor.finalize()

    def check(self, stored: str, password: str) -> bool:
        parsed = self.parse(stored)
        if parsed is None:
            return False
        salt, expected = parsed
        return hmac.compare_digest(self.digest(password, salt), expected)
