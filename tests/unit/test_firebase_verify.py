"""Firebase ID-token verification (adapters/idp/firebase.py), against real RS256 tokens and a real
certificate server on loopback. ``Minter`` and ``cert_server`` are shared with the API tests."""

from __future__ import annotations

import datetime as dt
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from authgate.adapters.idp.firebase import FirebaseVerifier, max_age_of, parse_certificates
from authgate.core.errors import AuthError, ErrorCode
from tests.e2e.support import HttpSink

PROJECT = "fursa-test"
DROP = object()  # a claim value meaning "leave this claim out"


def self_signed(key: Any, name: str = "securetoken.system.gserviceaccount.com") -> str:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=14))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(index: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: a few per test run, reused."""
    while len(_KEYS) <= index:
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[index]


class Minter:
    """Signs Firebase-shaped ID tokens with its own key pair; ``certs`` is what Google would serve."""

    def __init__(self, project: str = PROJECT, key_index: int = 0) -> None:
        self.project = project
        self.key = rsa_key(key_index)
        self.kid = secrets.token_hex(20)
        self.pem = self_signed(self.key)

    @property
    def certs(self) -> dict[str, str]:
        return {self.kid: self.pem}

    def claims(self, uid: str | None = None, provider: str = "google.com", **changes: Any) -> dict[str, Any]:
        now = int(time.time())
        uid = uid or secrets.token_urlsafe(21)[:28]
        email = changes.pop("email", "john.doe@gmail.com")
        claims: dict[str, Any] = {
            "name": "John Doe",
            "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
            "iss": f"https://securetoken.google.com/{self.project}",
            "aud": self.project,
            "auth_time": now - 120,
            "user_id": uid,
            "sub": uid,
            "iat": now - 60,
            "exp": now + 3540,
            "email": email,
            "email_verified": True,
            "firebase": {"identities": {provider: [uid], "email": [email]}, "sign_in_provider": provider},
        }
        for name, value in changes.items():
            if value is DROP:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def token(
        self,
        uid: str | None = None,
        provider: str = "google.com",
        *,
        kid: Any = None,
        key: Any = None,
        alg: str = "RS256",
        **changes: Any,
    ) -> str:
        payload = self.claims(uid, provider, **changes)
        headers = {"kid": self.kid if kid is None else kid}
        if kid is DROP:
            headers = {}
        signing_key = self.key if key is None else key
        return jwt.encode(payload, signing_key, algorithm=alg, headers=headers)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/certs"


@pytest.fixture(scope="module")
def minter() -> Minter:
    return Minter()


CACHE_CONTROL = {"Cache-Control": "public, max-age=100, must-revalidate"}


@pytest.fixture(scope="module")
def shared_server(minter: Minter) -> Iterator[HttpSink]:
    with HttpSink(reply=dict(minter.certs), headers=dict(CACHE_CONTROL)) as sink:
        yield sink


@pytest.fixture
def server(shared_server: HttpSink, minter: Minter) -> HttpSink:
    """The module's certificate server, reset to serving ``minter``'s certificate (a sink takes
    half a second to shut down, so one serves the whole module)."""
    shared_server.requests.clear()
    shared_server.status, shared_server.reply = 200, dict(minter.certs)
    shared_server.headers = dict(CACHE_CONTROL)
    return shared_server


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def verifier(url: str, clock: Clock | None = None, **kw: Any) -> FirebaseVerifier:
    return FirebaseVerifier(PROJECT, url, timeout=2.0, leeway=30, clock=clock or Clock(), **kw)


async def refused(v: FirebaseVerifier, token: str) -> AuthError:
    with pytest.raises(AuthError) as info:
        await v.verify(token)
    return info.value


# --- the token rules -----------------------------------------------------------------------------
async def test_a_valid_token_gives_the_identity(server: HttpSink, minter: Minter) -> None:
    v = verifier(server.url)
    out = await v.verify(minter.token("uid-1"))
    assert out == {
        "provider": "GOOGLE",
        "subject": "uid-1",
        "sign_in_provider": "google.com",
        "email": "john.doe@gmail.com",
        "email_verified": True,
        "name": "John Doe",
        "picture": "https://lh3.googleusercontent.com/a/photo.jpg",
    }


@pytest.mark.parametrize(("method", "provider"), [("google.com", "GOOGLE"), ("apple.com", "APPLE"), ("password", "EMAIL")])
async def test_sign_in_providers_map(server: HttpSink, minter: Minter, method: str, provider: str) -> None:
    out = await verifier(server.url).verify(minter.token("u", method))
    assert out["provider"] == provider


@pytest.mark.parametrize("method", ["phone", "anonymous", "custom", "github.com", "facebook.com", ""])
async def test_other_sign_in_providers_are_refused(server: HttpSink, minter: Minter, method: str) -> None:
    err = await refused(verifier(server.url), minter.token("u", method))
    assert err.code is ErrorCode.FEDERATED_TOKEN_INVALID and err.status == 401


async def test_a_token_without_the_firebase_claim_is_refused(server: HttpSink, minter: Minter) -> None:
    err = await refused(verifier(server.url), minter.token("u", firebase=DROP))
    assert err.code is ErrorCode.FEDERATED_TOKEN_INVALID


def _bad_tokens(m: Minter) -> dict[str, str]:
    now = int(time.time())
    other = Minter(key_index=1)
    return {
        "signed by another key": m.token("u", key=other.key),
        "alg HS256": m.token("u", key="a-shared-secret-that-is-long-enough-32b", alg="HS256"),
        "alg none": jwt.encode(m.claims("u"), None, algorithm="none", headers={"kid": m.kid}),
        "alg RS512": m.token("u", alg="RS512"),
        "kid not served": m.token("u", kid="not-a-served-kid"),
        "no kid": m.token("u", kid=DROP),
        "another project's aud": m.token("u", aud="other-project"),
        "aud as a list": m.token("u", aud=[PROJECT, "other-project"]),
        "another project's iss": m.token("u", iss="https://securetoken.google.com/other-project"),
        "iss of another issuer": m.token("u", iss="https://accounts.google.com"),
        "expired": m.token("u", exp=now - 120, iat=now - 3720, auth_time=now - 3800),
        "issued in the future": m.token("u", iat=now + 600, exp=now + 4200),
        "authenticated in the future": m.token("u", auth_time=now + 600),
        "no auth_time": m.token("u", auth_time=DROP),
        "no exp": m.token("u", exp=DROP),
        "no iat": m.token("u", iat=DROP),
        "exp as a string": m.token("u", exp=str(now + 3540)),
        "exp as true": m.token("u", exp=True),
        "iat as a string": m.token("u", iat=str(now - 60)),
        "empty sub": m.token("u", sub=""),
        "blank sub": m.token("u", sub="   "),
        "sub over 128": m.token("u", sub="x" * 129),
        "sub not a string": m.token("u", sub=12345),
        "sub with a NUL": m.token("u", sub="a\u0000b"),
        "garbage": "not.a.jwt",
        "empty": "",
        "oversized": m.token("u", padding="x" * 9000),
    }


BAD_NAMES = [
    "signed by another key", "alg HS256", "alg none", "alg RS512", "kid not served", "no kid",
    "another project's aud", "aud as a list", "another project's iss", "iss of another issuer",
    "expired", "issued in the future", "authenticated in the future", "no auth_time", "no exp",
    "no iat", "exp as a string", "exp as true", "iat as a string", "empty sub", "blank sub", "sub over 128", "sub not a string", "sub with a NUL", "garbage", "empty", "oversized",
]


@pytest.mark.parametrize("case", BAD_NAMES)
async def test_bad_tokens_are_the_same_401_with_no_detail(server: HttpSink, minter: Minter, case: str) -> None:
    token = _bad_tokens(minter)[case]
    err = await refused(verifier(server.url), token)
    assert err.code is ErrorCode.FEDERATED_TOKEN_INVALID
    assert err.status == 401 and err.detail is None and err.field is None


async def test_a_sub_of_128_chars_and_small_clock_skew_are_accepted(server: HttpSink, minter: Minter) -> None:
    now = int(time.time())
    v = verifier(server.url)
    assert (await v.verify(minter.token("u", sub="x" * 128)))["subject"] == "x" * 128
    # within the leeway: iat a few seconds ahead (client clock skew), exp a few seconds ago
    assert await v.verify(minter.token("u", iat=now + 5, auth_time=now + 5))
    assert await v.verify(minter.token("u", exp=now - 5))


# --- certificates: cache, refetch, outage --------------------------------------------------------
async def test_certificates_are_cached_for_their_max_age(server: HttpSink, minter: Minter) -> None:
    clock = Clock()
    v = verifier(server.url, clock)
    token = minter.token("u")
    await v.verify(token)
    await v.verify(token)
    clock.t += 99
    await v.verify(token)
    assert len(server.requests) == 1  # max-age=100
    clock.t += 2
    await v.verify(token)
    assert len(server.requests) == 2


async def test_an_unknown_kid_refetches_at_most_once_a_minute(server: HttpSink, minter: Minter) -> None:
    clock = Clock()
    v = verifier(server.url, clock)
    await v.verify(minter.token("u"))
    assert len(server.requests) == 1
    # Google rotates: a new key appears; a token signed with it triggers one refetch and passes.
    rotated = Minter(key_index=1)
    server.reply = {**minter.certs, **rotated.certs}
    assert (await v.verify(rotated.token("u")))["subject"] == "u"
    assert len(server.requests) == 2
    # garbage kids: refused, and within the minute they do not reach the certificate server
    for _ in range(5):
        await refused(v, minter.token("u", kid="forged-kid"))
    clock.t += 30
    await refused(v, minter.token("u", kid="forged-kid-2"))
    assert len(server.requests) == 2
    clock.t += 31  # a minute after the last unknown-kid refetch (and still within max-age)
    server.headers["Cache-Control"] = "max-age=1000"
    await refused(v, minter.token("u", kid="forged-kid-3"))
    assert len(server.requests) == 3


async def test_a_down_certificate_server_with_nothing_cached_is_503(minter: Minter) -> None:
    v = verifier(closed_port_url())
    err = await refused(v, minter.token("u"))
    assert err.code is ErrorCode.SERVICE_UNAVAILABLE and err.status == 503


async def test_a_failing_certificate_server_is_503_then_recovers(server: HttpSink, minter: Minter) -> None:
    clock = Clock()
    server.status, server.reply = 500, {"error": "down"}
    v = verifier(server.url, clock, retry_seconds=5)
    assert (await refused(v, minter.token("u"))).code is ErrorCode.SERVICE_UNAVAILABLE
    # retried at most every retry_seconds: the next token within them does not wait on the server
    assert (await refused(v, minter.token("u"))).code is ErrorCode.SERVICE_UNAVAILABLE
    assert len(server.requests) == 1
    server.status, server.reply = 200, minter.certs
    clock.t += 6
    assert (await v.verify(minter.token("u")))["subject"] == "u"
    assert len(server.requests) == 2


async def test_cached_certificates_keep_working_while_the_server_is_down(server: HttpSink, minter: Minter) -> None:
    clock = Clock()
    v = verifier(server.url, clock, retry_seconds=5)
    await v.verify(minter.token("u"))
    server.status, server.reply = 503, {"error": "down"}
    clock.t += 500  # well past max-age
    assert (await v.verify(minter.token("u")))["subject"] == "u"
    assert len(server.requests) == 2  # it tried, failed, and served the stale certificates
    await v.verify(minter.token("u"))
    assert len(server.requests) == 2  # not again within retry_seconds
    clock.t += 6
    await v.verify(minter.token("u"))
    assert len(server.requests) == 3
    server.status, server.reply = 200, minter.certs
    clock.t += 6
    await v.verify(minter.token("u"))
    clock.t += 50
    await v.verify(minter.token("u"))
    assert len(server.requests) == 4  # fresh again: cached for max-age


async def test_bad_certificate_documents_are_an_outage_not_a_bypass(server: HttpSink, minter: Minter) -> None:
    for reply in ([minter.pem], {minter.kid: "not a pem"}, {}, "text"):
        server.reply = reply
        assert (await refused(verifier(server.url), minter.token("u"))).code is ErrorCode.SERVICE_UNAVAILABLE


def test_parse_certificates_keeps_only_rsa_certificates(minter: Minter) -> None:
    ec_pem = self_signed(ec.generate_private_key(ec.SECP256R1()))
    keys = parse_certificates({"rsa": minter.pem, "ec": ec_pem, "junk": "-----BEGIN CERTIFICATE-----\nxx", "n": 1})
    assert list(keys) == ["rsa"]
    with pytest.raises(ValueError):
        parse_certificates({"ec": ec_pem})


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("public, max-age=19204, must-revalidate, no-transform", 19204),
        ("max-age=0", 0),
        ("MAX-AGE=30", 30),
        ("public, s-maxage=99", 60),
        (None, 60),
        ("max-age=99999999", 86400),
    ],
)
def test_max_age_of(header: str | None, seconds: int) -> None:
    assert max_age_of(header) == seconds
