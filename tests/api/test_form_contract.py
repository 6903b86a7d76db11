"""Form surface (seed 003, CONTRACT §3) and ops surface (§2): details found in a contract audit."""

from __future__ import annotations

import pytest

from tests.api.test_form import SIGNUP
from tests.conftest import Harness


async def session_of(h: Harness) -> str:
    r = await h.client.post("/api/auth/v1/signup", json=SIGNUP)
    assert r.status_code == 201, r.text
    return r.headers["x-qt-auth"]


@pytest.mark.parametrize("otp", ["abc", "12", 1.5, -1, True, None, "١٢٣٤"])
async def test_a_malformed_otp_is_422_naming_otp(h: Harness, otp: object) -> None:
    token = await session_of(h)
    r = await h.client.post(
        "/api/auth/v1/users/update-with-otp",
        json={"otp": otp, "user": {"verification-status": "email"}},
        headers={"x-qt-auth": token},
    )
    assert r.status_code == 422, r.text
    assert r.json()["field"] == "otp"
    assert r.json()["message"] == "Invalid value for otp: must be 4-8 digits"


async def test_a_422_in_another_language_is_not_followed_by_the_english_reason(h: Harness) -> None:
    token = await session_of(h)
    body = {"otp": "abc", "user": {"verification-status": "email"}}
    r = await h.client.post("/api/auth/v1/users/update-with-otp", json=body,
                            headers={"x-qt-auth": token, "locale": "fr"})
    assert r.status_code == 422 and r.json()["field"] == "otp"
    assert "must be" not in r.json()["message"] and r.json()["message"].endswith("otp"), r.json()


async def test_the_seed_sample_otp_shape_is_a_wrong_code_not_a_bad_request(h: Harness) -> None:
    """Seed 003 sends ``{"otp":"62537", ...}``: a five-digit string is a (wrong) code, 401."""
    token = await session_of(h)
    await h.client.post("/api/auth/v1/users/send-otp", json={"email": SIGNUP["email"]})
    for otp in ("62537", 62537):
        r = await h.client.post(
            "/api/auth/v1/users/update-with-otp",
            json={"otp": otp, "user": {"verification-status": "email"}},
            headers={"x-qt-auth": token},
        )
        assert r.status_code == 401, r.text


async def test_repeated_signup_conflicts_from_one_ip_are_rate_limited(make_harness) -> None:
    """A 409 reveals that an account exists, so conflicts are limited per IP (CONTRACT §1)."""
    h = await make_harness(limit_account_check="3/minute")
    body = {**SIGNUP, "dont-login": True}
    assert (await h.client.post("/api/auth/v1/signup", json=body)).status_code == 201
    for _ in range(3):
        r = await h.client.post("/api/auth/v1/signup", json=body)
        assert (r.status_code, r.json()) == (409, {"message": "User Already exists"})
    r = await h.client.post("/api/auth/v1/signup", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert set(r.json()) == {"message"}


async def test_successful_signups_do_not_use_the_conflict_budget(make_harness) -> None:
    h = await make_harness(limit_account_check="2/minute")
    for i in range(4):
        r = await h.client.post(
            "/api/auth/v1/signup", json={**SIGNUP, "email": f"u{i}@example.com", "username": f"user{i}"}
        )
        assert r.status_code == 201, r.text


async def test_rate_limits_off_leaves_signup_conflicts_unlimited(make_harness) -> None:
    h = await make_harness(limit_account_check="1/minute", rate_limits="off")
    body = {**SIGNUP, "dont-login": True}
    await h.client.post("/api/auth/v1/signup", json=body)
    for _ in range(3):
        assert (await h.client.post("/api/auth/v1/signup", json=body)).status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "kw", "status"),
    [
        ("post", "/api/auth/v1/signup", {"json": {**SIGNUP, "name": "a\x00b"}}, 422),
        ("post", "/api/auth/v1/signup", {"json": {**SIGNUP, "name": "line\nbreak"}}, 422),
        ("post", "/api/auth/v1/login", {"json": {"username": "a\x00b", "password": "S3cure-pass"}}, 422),
        ("post", "/api/auth/v1/login", {"json": {"email": "a\x00b@x.com", "password": "S3cure-pass"}}, 422),
        ("get", "/api/auth/v1/users/verify", {"params": {"token": "a\x00b.c"}}, 400),
        ("get", "/api/auth/v1/users/verify", {"params": {"token": "ab.c d"}}, 400),
    ],
)
async def test_nul_and_control_characters_are_bad_input_not_a_server_error(
    hdb: Harness, method: str, path: str, kw: dict, status: int
) -> None:
    """PostgreSQL cannot store or even compare a NUL: such input must be refused before it gets there."""
    r = await getattr(hdb.client, method)(path, **kw)
    assert r.status_code == status, r.text
    assert set(r.json()) <= {"message", "field"}
    if status == 422:
        assert r.json()["field"] in ("name", "username", "email")


async def test_names_with_ordinary_unicode_are_kept(h: Harness) -> None:
    r = await h.client.post("/api/auth/v1/signup", json={**SIGNUP, "name": "Zoë 陳 O'Brien-Smith"})
    assert r.status_code == 201 and r.json()["user"]["name"] == "Zoë 陳 O'Brien-Smith"


def test_unset_urls_follow_the_listener_not_a_request() -> None:
    """AUTHGATE_PORT=18101 alone: links, discovery and the issuer say :18101, not the default :8000."""
    from authgate.config import Settings

    s = Settings(_env_file=None, port=18101)  # type: ignore[call-arg]
    assert s.issuer == s.public_url == "http://127.0.0.1:18101"
    s = Settings(_env_file=None, host="0.0.0.0", port=9000, public_url="https://id.example.com")  # type: ignore[call-arg]
    assert (s.issuer, s.public_url) == ("http://127.0.0.1:9000", "https://id.example.com")


async def test_discovery_ignores_the_host_header(h: Harness) -> None:
    body = (await h.client.get("http://evil.example/.well-known/openid-configuration")).json()
    assert body["jwks_uri"] == f"{h.settings.public_url}/.well-known/jwks.json"
    assert body["issuer"] == h.settings.issuer


async def test_discovery_uses_the_configured_public_url(make_harness) -> None:
    h = await make_harness(public_url="https://auth.example.com/")
    body = (await h.client.get("/.well-known/openid-configuration")).json()
    assert body["jwks_uri"] == "https://auth.example.com/.well-known/jwks.json"
    assert body["token_endpoint"] == "https://auth.example.com/api/auth/login"
