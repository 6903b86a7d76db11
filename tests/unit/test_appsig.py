"""core.appsig with in-memory fakes: the SDK's signer and the server's check agree, and each rule holds."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from authgate.adapters.ratelimit import MemoryCache
from authgate.client.signing import app_signature_headers
from authgate.core import appsig
from authgate.core.crypto import Keyed
from authgate.core.errors import AuthError, ErrorCode
from authgate.core.model import ClientApp

SECRET = "s3cret-of-the-app"
NOW = 1_800_000_000
PATH = "/api/customers/check-username/bob?x=1"


class FakeClients:
    def __init__(self, clients: dict[str, ClientApp]) -> None:
        self.clients = clients

    async def get(self, client_id: str) -> ClientApp | None:
        return self.clients.get(client_id)


def fake_core(enabled: bool = True, platforms: tuple[str, ...] = ("ios", "android")) -> Any:
    keyed = Keyed(b"k" * 32)
    client = ClientApp(
        id=1, client_id="cl_app", name="app", secret_hash="", secret_enc=keyed.seal(SECRET),
        platforms=list(platforms), min_versions={"ios": "2.0.0"}, enabled=enabled,
    )
    tx = SimpleNamespace(clients=FakeClients({"cl_app": client}))

    @asynccontextmanager
    async def transaction(write: bool = True) -> AsyncIterator[Any]:
        yield tx

    return SimpleNamespace(store=SimpleNamespace(transaction=transaction), keyed=keyed, cache=MemoryCache())


def headers(**overrides: Any) -> dict[str, str]:
    options: dict[str, Any] = {"platform": "ios", "app_version": "2.0.0", "ts": NOW}
    options.update(overrides)
    client_id = options.pop("client_id", "cl_app")
    secret = options.pop("secret", SECRET)
    method = options.pop("method", "GET")
    path = options.pop("path", PATH)
    body = options.pop("body", b"")
    return app_signature_headers(client_id, secret, method, path, body, **options)


async def verify(core: Any, hdrs: dict[str, str], *, method: str = "GET", path: str = PATH, body: bytes = b"",
                 now: float = NOW) -> appsig.SignedApp:
    return await appsig.verify(core, method=method, path=path, body=body, headers=hdrs, now=now)


async def refused(core: Any, hdrs: dict[str, str], code: ErrorCode = ErrorCode.SIGNATURE_INVALID, **kw: Any) -> AuthError:
    with pytest.raises(AuthError) as info:
        await verify(core, hdrs, **kw)
    assert info.value.code is code
    return info.value


async def test_the_sdk_signature_is_accepted() -> None:
    signed = await verify(fake_core(), headers())
    assert signed.client.client_id == "cl_app" and signed.platform == "ios" and signed.app_version == "2.0.0"


async def test_payload_is_base64url_without_padding_of_the_contract_fields() -> None:
    raw = headers()["x-app-payload"]
    assert "=" not in raw and "+" not in raw and "/" not in raw
    decoded = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    assert set(decoded) == {"clientId", "ts", "nonce", "method", "path", "bodySha256"}
    assert decoded["bodySha256"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"  # sha256("")


async def test_window_boundary_is_300_seconds() -> None:
    core = fake_core()
    await verify(core, headers(), now=NOW + 300)
    await verify(core, headers(), now=NOW - 300)
    await refused(core, headers(), now=NOW + 301)
    await refused(core, headers(), now=NOW - 301)


async def test_nonce_is_single_use_and_remembered_per_client() -> None:
    core = fake_core()
    hdrs = headers(nonce="n" * 16)
    await verify(core, hdrs)
    await refused(core, hdrs)
    await refused(core, headers(nonce="n" * 16))  # same nonce, fresh signature: still a replay


@pytest.mark.parametrize(
    "payload",
    [
        {"clientId": "cl_app", "ts": "1800000000"},  # ts as a string
        {"clientId": "cl_app", "ts": True},
        {"clientId": "cl_app", "ts": NOW, "nonce": "short"},
        {"clientId": "cl_app", "ts": NOW, "nonce": "n" * 20, "method": "GET", "path": "relative",
         "bodySha256": "0" * 64},
        {"clientId": "cl_app", "ts": NOW, "nonce": "n" * 20, "method": "GET", "path": PATH,
         "bodySha256": "not-hex"},
        ["not", "an", "object"],
    ],
)
async def test_malformed_payloads_are_refused_even_when_signed(payload: Any) -> None:
    raw = appsig.b64url(json.dumps(payload).encode())
    hdrs = {**headers(), "x-app-payload": raw, "x-app-signature": appsig.sign(SECRET, raw)}
    await refused(fake_core(), hdrs)


async def test_method_compare_ignores_case_but_not_the_verb() -> None:
    core = fake_core()
    await verify(core, headers(method="get"), method="GET")
    await refused(core, headers(method="DELETE"), method="GET")


async def test_versions_compare_numerically() -> None:
    core = fake_core()
    await verify(core, headers(app_version="2.0"))
    await verify(core, headers(app_version="2.10.0"))
    await refused(core, headers(app_version="1.99.99"), ErrorCode.APP_VERSION_TOO_OLD)
    await verify(core, headers(platform="android", app_version="0.0.1"))  # no android minimum
    err = await refused(core, headers(app_version="2.0-beta"), ErrorCode.MISSING_HEADER)
    assert err.field == "x-app-version"


async def test_426_does_not_consume_the_nonce_of_a_fixed_client() -> None:
    core = fake_core()
    await refused(core, headers(app_version="1.0.0", nonce="m" * 16), ErrorCode.APP_VERSION_TOO_OLD)
    await verify(core, headers(app_version="2.0.0", nonce="m" * 16))


async def test_client_and_platform_rules() -> None:
    await refused(fake_core(enabled=False), headers())
    await refused(fake_core(), headers(client_id="cl_other"))
    await refused(fake_core(), headers(secret="wrong"))
    await refused(fake_core(platforms=("android",)), headers())
    await refused(fake_core(), headers(platform="symbian"))


@pytest.mark.parametrize("missing", ["x-app-payload", "x-app-signature", "x-platform", "x-app-version"])
async def test_missing_signature_headers_are_named(missing: str) -> None:
    hdrs = {k: v for k, v in headers().items() if k != missing}
    err = await refused(fake_core(), hdrs, ErrorCode.MISSING_HEADER)
    assert err.field == missing
