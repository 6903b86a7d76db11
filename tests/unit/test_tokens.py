"""Tokens (CONTRACT §1, RFC 8725): algorithm pinning, claims, kinds, rotation, forgeries."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.model import TokenType
from tests.conftest import Harness


async def test_access_token_claims(h: Harness) -> None:
    token, exp = await h.core.tokens.sign(TokenType.ACCESS, "42", 3600, sid="s1", username="u", roles=["ROLE_USER"])
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA" and header["kid"] and header["typ"] == "access"
    claims = jwt.decode(token, options={"verify_signature": False})
    for name in ("iss", "aud", "sub", "sid", "jti", "iat", "exp", "username", "roles", "typ"):
        assert name in claims
    assert claims["exp"] - claims["iat"] == 3600 and exp == claims["exp"]
    verified = await h.core.tokens.verify(token, TokenType.ACCESS)
    assert verified.sub == "42" and verified.sid == "s1"


async def test_token_of_another_kind_is_refused(h: Harness) -> None:
    for kind in (TokenType.OTP, TokenType.RESET, TokenType.VERIFICATION, TokenType.APP):
        token, _ = await h.core.tokens.sign(kind, "42", 60)
        with pytest.raises(AuthError):
            await h.core.tokens.verify(token, TokenType.ACCESS)


async def test_expired_token_beyond_leeway_is_refused(h: Harness) -> None:
    token, _ = await h.core.tokens.sign(TokenType.ACCESS, "42", -31)
    with pytest.raises(AuthError) as err:
        await h.core.tokens.verify(token, TokenType.ACCESS)
    assert err.value.code is ErrorCode.TOKEN_EXPIRED
    within, _ = await h.core.tokens.sign(TokenType.ACCESS, "42", -10)  # inside the 30 s leeway
    assert (await h.core.tokens.verify(within, TokenType.ACCESS)).sub == "42"


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_alg_none_hs256_rs256_and_foreign_keys_are_refused(h: Harness) -> None:
    good, _ = await h.core.tokens.sign(TokenType.ACCESS, "42", 600, sid="s")
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    forged = [
        f"{_b64({'alg': 'none', 'kid': header['kid'], 'typ': 'access'})}.{_b64(claims)}.",
        # HS256 keyed with the public key bytes (the classic confusion attack)
        jwt.encode(claims, "x" * 64, algorithm="HS256", headers={"kid": header["kid"], "typ": "access"}),
        jwt.encode(claims, generate_private_key(65537, 2048), algorithm="RS256",
                   headers={"kid": header["kid"], "typ": "access"}),
        jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                   headers={"kid": header["kid"], "typ": "access"}),
        jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                   headers={"kid": "unknown-kid", "typ": "access"}),
        good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB"),
        "not.a.jwt",
        "",
    ]
    for token in forged:
        with pytest.raises(AuthError):
            await h.core.tokens.verify(token, TokenType.ACCESS)


async def test_wrong_issuer_or_audience_is_refused(h: Harness) -> None:
    key = await h.core.keys.signing_key()
    now = int(time.time())
    base = {"sub": "1", "typ": "access", "iat": now, "exp": now + 60, "iss": h.settings.issuer, "aud": h.settings.audience}
    for change in ({"iss": "https://evil"}, {"aud": "other"}, {"typ": "reset"}):
        token = jwt.encode({**base, **change}, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "access"})
        with pytest.raises(AuthError):
            await h.core.tokens.verify(token, TokenType.ACCESS)
    ok = jwt.encode(base, key.private, algorithm="EdDSA", headers={"kid": key.kid, "typ": "access"})
    assert (await h.core.tokens.verify(ok, TokenType.ACCESS)).sub == "1"


async def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(h: Harness) -> None:
    old, _ = await h.core.tokens.sign(TokenType.ACCESS, "7", 600)
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = await h.core.keys.rotate()
    assert new_kid != old_kid
    new, _ = await h.core.tokens.sign(TokenType.ACCESS, "7", 600)
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    assert (await h.core.tokens.verify(old, TokenType.ACCESS)).sub == "7"
    jwks = (await h.client.get("/.well-known/jwks.json")).json()
    kids = {k["kid"] for k in jwks["keys"]}
    assert {old_kid, new_kid} <= kids
    # a JWKS key verifies the token (clients can check signatures themselves)
    jwk = next(k for k in jwks["keys"] if k["kid"] == new_kid)
    public = jwt.PyJWK(jwk).key
    jwt.decode(new, public, algorithms=["EdDSA"], audience=h.settings.audience)


async def test_rotation_on_one_node_reaches_another(make_harness) -> None:
    a = await make_harness("postgres")
    from authgate.container import build

    b = await build(a.settings)  # a second node on the same database
    try:
        await b.core.keys.rotate()
        token, _ = await b.core.tokens.sign(TokenType.ACCESS, "9", 600)
        # node A has never seen the new kid: it reloads on the unknown kid
        assert (await a.core.tokens.verify(token, TokenType.ACCESS)).sub == "9"
    finally:
        await b.close()


async def test_private_keys_are_sealed_at_rest(h: Harness) -> None:
    async with h.core.store.transaction(write=False) as tx:
        keys = await tx.keys.all()
    assert keys and all(k.private_pem.startswith(b"v1:") for k in keys)
    assert all(b"PRIVATE KEY" not in k.private_pem for k in keys)


async def test_discovery(h: Harness) -> None:
    doc = (await h.client.get("/.well-known/openid-configuration")).json()
    assert doc["issuer"] == h.settings.issuer and doc["jwks_uri"].endswith("/.well-known/jwks.json")


async def test_a_cached_verification_still_honours_expiry_and_kind(h: Harness, monkeypatch) -> None:
    import authgate.core.tokens as tokens_module

    token, exp = await h.core.tokens.sign(TokenType.ACCESS, "5", 60)
    assert (await h.core.tokens.verify(token, TokenType.ACCESS)).sub == "5"  # now cached
    with pytest.raises(AuthError):
        await h.core.tokens.verify(token, TokenType.RESET)
    real = time.time
    monkeypatch.setattr(tokens_module.time, "time", lambda: real() + 60 + 31)
    with pytest.raises(AuthError) as err:
        await h.core.tokens.verify(token, TokenType.ACCESS)
    assert err.value.code is ErrorCode.TOKEN_EXPIRED
