"""The client SDK in process (ASGI) and against scripted responses: login styles, 429 with
Retry-After, error mapping, and clearing tokens when a refresh fails. The real-server run is
tests/e2e/test_sdk_e2e.py."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from authgate.client import (
    AsyncAuthgate,
    Authgate,
    BadRequest,
    ConnectionFailed,
    Forbidden,
    RateLimited,
    ServerError,
    Tokens,
    Unauthorized,
)
from tests.api.test_customer import SEED_PHONE, SEED_USERNAME, make_user, new_client
from tests.conftest import Harness

PASSWORD = "Corr3ct-Horse-42"


async def sdk_for(h: Harness, **options: Any) -> AsyncAuthgate:
    client = await new_client(h)
    await make_user(h, SEED_USERNAME, phone=SEED_PHONE, password_hash=await h.core.hasher.hash(PASSWORD))
    return AsyncAuthgate("http://testserver", client_id=client["clientId"], client_secret=client["clientSecret"],
                         platform="ios", app_version="2.0.0", http=h.client, **options)


async def test_app_style_login_and_refresh_through_the_other_surfaces(h: Harness) -> None:
    ag = await sdk_for(h, login_style="app", device_token="apns-token-1")  # POST /app/auth/login, refresh at /api/v1/auth/refresh
    tokens = await ag.login(SEED_USERNAME, PASSWORD)
    assert tokens.refresh_token
    assert (await ag.check_username(SEED_USERNAME)).phone == SEED_PHONE
    ag.engine.store.save(Tokens(access_token="bad.token.here", refresh_token=tokens.refresh_token))
    assert (await ag.check_username(SEED_USERNAME)).exists
    assert ag.tokens is not None and ag.tokens.access_token != "bad.token.here"


async def test_non_ascii_username_is_quoted_signed_and_sent_as_utf8(h: Harness) -> None:
    ag = await sdk_for(h)
    await make_user(h, "josé.núñez", email="jose@example.com")
    await ag.login(SEED_USERNAME, PASSWORD)
    check = await ag.check_username("josé.núñez")  # path percent-encoded, x-username in UTF-8
    assert check.exists is True and check.email == "jo*****@*****.com"
    assert (await ag.check_username("no such user")).exists is False


async def test_rate_limited_carries_retry_after(make_harness) -> None:
    h = await make_harness(limit_customer_check="1/minute")
    ag = await sdk_for(h)
    await ag.login(SEED_USERNAME, PASSWORD)
    await ag.check_username(SEED_USERNAME)
    with pytest.raises(RateLimited) as info:
        await ag.check_username(SEED_USERNAME)
    assert info.value.status == 429 and info.value.retry_after and info.value.retry_after >= 1


async def test_signature_refusal_is_forbidden(h: Harness) -> None:
    ag = await sdk_for(h)
    await ag.login(SEED_USERNAME, PASSWORD)
    ag.engine.config.client_secret = "not-the-secret"
    with pytest.raises(Forbidden) as info:
        await ag.check_username(SEED_USERNAME)
    assert info.value.code == "signature_invalid"


# --- scripted responses ---------------------------------------------------------------------------


def scripted(*replies: tuple[int, Any, dict[str, str]]) -> tuple[Authgate, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(replies)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        status, body, headers = queue.pop(0)
        return httpx.Response(status, json=body, headers=headers)

    http = httpx.Client(transport=httpx.MockTransport(handler))
    ag = Authgate("https://auth.example.com", client_id="cl_x", client_secret="s", http=http)
    ag.engine.store.save(Tokens(access_token="a1", refresh_token="r1"))
    return ag, seen


def test_failed_refresh_clears_tokens_and_raises_unauthorized() -> None:
    ag, seen = scripted(
        (401, {"error": {"code": "token_expired", "message": "Token has expired"}}, {}),
        (401, {"statusCode": 401, "error": "Unauthorized", "message": "Invalid refresh token"}, {}),
    )
    with pytest.raises(Unauthorized) as info:
        ag.request("GET", "/api/anything")
    assert info.value.message == "Invalid refresh token"
    assert ag.tokens is None
    refresh = json.loads(seen[1].content)
    assert refresh == {"type": "refreshToken", "refreshToken": "r1", "clientId": "cl_x", "clientSecret": "s"}


def test_refresh_happens_once_then_the_401_is_raised() -> None:
    ag, seen = scripted(
        (401, {"error": {"code": "token_invalid", "message": "no"}}, {}),
        (200, {"accessToken": "a2", "tokenType": "Bearer", "expiresIn": 3600}, {}),
        (401, {"error": {"code": "token_invalid", "message": "still no"}}, {}),
    )
    with pytest.raises(Unauthorized):
        ag.request("GET", "/api/anything")
    assert [r.headers.get("authorization") for r in seen] == ["Bearer a1", None, "Bearer a2"]
    assert ag.tokens is None


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (500, {"message": "Internal server error"}, ServerError),
        (503, {"success": False, "message": "The service is temporarily unavailable", "data": None}, ServerError),
        (400, {"error": {"code": "missing_header", "message": "Missing header", "field": "x-platform"}}, BadRequest),
    ],
)
def test_errors_are_typed(status: int, body: Any, kind: type) -> None:
    ag, _ = scripted((status, body, {}))
    with pytest.raises(kind) as info:
        ag.request("GET", "/api/anything")
    assert info.value.status == status and info.value.message
    if kind is BadRequest:
        assert info.value.field == "x-platform"


def test_unreachable_server_is_connection_failed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    ag = Authgate("https://auth.example.com", http=httpx.Client(transport=httpx.MockTransport(handler)))
    with pytest.raises(ConnectionFailed) as info:
        ag.request("GET", "/healthz", auth=False)
    assert info.value.status == 0
