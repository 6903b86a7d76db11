"""HTTP edges every surface shares (surfaces/common.py, app.py): bodies streamed past the limit
without a Content-Length, and trailing slashes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import Harness

# (path, status field check) for one POST endpoint of each surface
ENDPOINTS = [
    ("/api/auth/v1/login", lambda body: body == {"message": "Request body too large"}),
    ("/app/auth/login", lambda body: body["success"] is False and body["data"] is None),
    ("/api/auth/login", lambda body: body["statusCode"] == 413),
    ("/api/v1/auth/refresh", lambda body: body["httpStatus"] == "PAYLOAD_TOO_LARGE" or body["success"] is False),
]


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    yield b'{"loginID": "'
    sent = 0
    while sent < total:
        yield b"a" * size
        sent += size
    yield b'"}'


@pytest.mark.parametrize(("path", "envelope"), ENDPOINTS)
async def test_a_chunked_body_past_64_kib_is_413_in_the_surface_envelope(h: Harness, path: str, envelope) -> None:
    r = await h.client.post(path, content=_chunks(70_000), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers  # streamed: only counting can catch it
    assert r.status_code == 413, r.text
    assert envelope(r.json()), r.json()


async def test_a_chunked_body_under_the_limit_is_read(h: Harness) -> None:
    r = await h.client.post("/app/auth/login", content=_chunks(100, size=50),
                            headers={"content-type": "application/json"})
    assert r.status_code == 422 and "password" in r.json()["message"]


@pytest.mark.parametrize("path", ["/app/auth/login/", "/api/auth/v1/login/", "/api/v1/auth/refresh/"])
async def test_a_trailing_slash_is_an_unknown_path_not_a_redirect(h: Harness, path: str) -> None:
    r = await h.client.post(path, json={})
    assert r.status_code == 404, (r.status_code, r.headers.get("location"))


# A NUL or a lone surrogate, sent as a JSON escape, in one field of one endpoint per surface (the
# audit's 500s: sync login and client credentials, refresh tokens, a Firebase token, a profile).
UNUSABLE = [
    ("/api/auth/login", {"type": "password", "clientId": "c", "clientSecret": "s",
                         "withPassword": {"emailOrUsername": "known.user", "password": "\\ud800"}},
     "withPassword.password"),
    ("/api/auth/login", {"type": "password", "clientId": "a\\u0000", "clientSecret": "s",
                         "withPassword": {"emailOrUsername": "u", "password": "p"}}, "clientId"),
    ("/api/auth/login", {"type": "refreshToken", "clientId": "c", "clientSecret": "s", "refreshToken": "\\udfff"},
     "refreshToken"),
    ("/api/v1/auth/refresh", {"refreshToken": "\\ud800"}, "refreshToken"),
    ("/api/v1/auth/firebase/authenticate", {"firebaseToken": "eyJ\\ud800.eyJ.x"}, "firebaseToken"),
    ("/app/auth/username/info", {"username": "ab\\u0000c"}, "username"),
    ("/api/auth/v1/login", {"email": "a@example.com", "password": "x\\u0000y"}, "password"),
]


@pytest.mark.parametrize(("path", "fields", "field"), UNUSABLE)
async def test_a_nul_or_a_lone_surrogate_in_a_json_string_is_422_naming_the_field(
    hdb: Harness, path: str, fields: dict, field: str
) -> None:
    """Valid JSON escapes that no name, password or token has: 422 on every surface and backend,
    never a 500 from an encoder or from PostgreSQL (surfaces/common.unusable_text)."""
    import json

    raw = json.dumps(fields).replace("\\\\u", "\\u").encode()  # the escape as sent, not doubled
    r = await hdb.client.post(path, content=raw, headers={"content-type": "application/json"})
    assert r.status_code == 422, (path, r.status_code, r.text)
    assert field in r.text, r.text


async def test_a_valid_surrogate_pair_passes(h: Harness) -> None:
    raw = b'{"email": "emoji@example.com", "password": "S3cure-pass", "username": "emoji", "name": "E\\ud83d\\ude00"}'
    r = await h.client.post("/api/auth/v1/signup", content=raw)
    assert r.status_code == 201, r.text
    assert r.json()["user"]["name"] == "E\U0001F600"


async def test_a_nul_in_a_path_is_404(hdb: Harness) -> None:
    r = await hdb.client.put("/api/customers/a%00b", json={"stripeCustomerId": "cus_1"})
    assert r.status_code == 404, r.text
    r = await hdb.client.get("/api/users/1%002")
    assert r.status_code == 404, r.text


@pytest.mark.parametrize("path", [path for path, _ in ENDPOINTS])
async def test_a_number_past_pythons_int_limit_is_a_malformed_body_in_the_surface_envelope(
    h: Harness, path: str
) -> None:
    """json.loads refuses integers over 4,300 digits with a plain ValueError (not a decode error):
    400 in the surface's envelope, as for any malformed body, never a 500."""
    body = b'{"email": ' + b"7" * 5000 + b', "password": [' + b"9" * 5000 + b"]}"
    r = await h.client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert "Malformed JSON body" in r.text


async def test_token_answers_and_errors_are_never_cached_but_the_jwks_may_be(h: Harness) -> None:
    """RFC 6749 §5.1: a response holding a token says ``Cache-Control: no-store``; every surface's
    JSON does (tokens, sessions, personal data), errors too. The public keys stay cacheable."""
    r = await h.client.post("/api/auth/v1/signup", json={
        "email": "nostore@example.com", "name": "N", "username": "nostore", "password": "S3cure-pass"})
    assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
    r = await h.client.post("/app/auth/login", json={"loginID": "nostore", "password": "S3cure-pass", "deviceToken": "d"})
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    for path in ("/app/auth/login", "/api/v1/auth/refresh", "/api/auth/login", "/api/auth/v1/login"):
        r = await h.client.post(path, json={})
        assert r.status_code in (400, 401, 422) and r.headers.get("cache-control") == "no-store", (path, r.headers)
    r = await h.client.get("/.well-known/jwks.json")
    assert r.headers["cache-control"] == "public, max-age=300"


async def test_head_is_the_get_without_its_body(h: Harness) -> None:
    """RFC 9110: a resource that answers GET answers HEAD (it was 405); a POST-only path still
    refuses it, naming what it allows."""
    get = await h.client.get("/healthz")
    r = await h.client.head("/healthz")
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == get.headers["content-length"]
    assert r.headers["content-type"] == get.headers["content-type"]
    r = await h.client.head("/api/auth/v1/users/me")
    assert r.status_code == 401 and r.content == b""
    r = await h.client.head("/api/auth/v1/login")
    assert r.status_code == 405 and r.content == b"" and "POST" in r.headers["allow"]
