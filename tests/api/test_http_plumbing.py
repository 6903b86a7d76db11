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
