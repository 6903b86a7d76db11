"""The client SDK against a real ``authgate serve`` process: seed 000's whole flow (login, CSRF,
signature, username check), refresh on 401 (a tampered token and a really expired one), a new CSRF
token when the old one is refused, tokens cleared when refreshing fails, typed errors, and debug
logs without secrets."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import httpx
import pytest

from authgate.client import (
    AsyncAuthgate,
    Authgate,
    MemoryTokenStore,
    Tokens,
    Unauthorized,
    UpgradeRequired,
)
from tests.e2e.support import ServerProcess

USERNAME = "bmp_kfayy_6526"
PHONE = "+923185456266"
PASSWORD = "Corr3ct-Horse-42"
ACCESS_TTL = 3


def test_sdk_username_check_with_refresh_and_csrf(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"AUTHGATE_ACCESS_TTL": str(ACCESS_TTL), "AUTHGATE_JWT_LEEWAY": "0"}
    with ServerProcess(tmp_path, env) as server:
        app = server.cli("clients", "create", "--name", "E2E app", "--platform", "ios", "--platform", "android",
                         "--min-version", "ios=2.0.0")
        server.cli("users", "create", "--username", USERNAME, "--password", PASSWORD, "--phone", PHONE)
        r = httpx.post(f"{server.url}/api/auth/v1/signup", json={
            "email": "someone@example.com", "name": "Someone", "username": "someone.else",
            "metadata": {"phone-number": ""}, "password": PASSWORD, "dont-login": True})
        assert r.status_code == 201, r.text
        options = dict(client_id=app["clientId"], client_secret=app["clientSecret"], platform="ios",
                       app_version="2.3.0")
        caplog.set_level(logging.DEBUG, logger="authgate.client")

        with Authgate(server.url, **options) as ag:
            ag.login(USERNAME, PASSWORD)
            check = ag.check_username(USERNAME)
            assert (check.exists, check.has_customer, check.pin_set, check.phone, check.email) == (
                True, False, False, PHONE, "")
            assert ag.check_username("nobody_at_all").exists is False

            # CSRF: a token the server refuses is replaced once, and the call goes through
            ag.engine._csrf = ("1.forged", time.time() + 3600)
            assert ag.check_username(USERNAME).exists
            assert ag.engine._csrf[0] != "1.forged"

            # an app under the platform's minimum version gets a typed 426
            with Authgate(server.url, **{**options, "app_version": "1.9.0"}, token_store=_store(ag.tokens)) as old:
                with pytest.raises(UpgradeRequired) as info:
                    old.check_username(USERNAME)
                assert info.value.status == 426 and info.value.code == "app_version_too_old"

            # refresh on 401: a token the server refuses ...
            good = ag.tokens
            assert good is not None and good.refresh_token
            ag.engine.store.save(Tokens(access_token=good.access_token[:-4] + "AAAA",
                                        refresh_token=good.refresh_token))
            assert ag.check_username(USERNAME).exists
            assert ag.tokens.access_token != good.access_token[:-4] + "AAAA"
            # ... and one that really expired
            before = ag.tokens.access_token
            time.sleep(ACCESS_TTL + 1.2)
            assert ag.check_username(USERNAME).exists
            assert ag.tokens.access_token != before

            # a refresh that fails (the session was revoked) clears the tokens and raises
            stale = ag.tokens
            with Authgate(server.url, **options, token_store=_store(stale)) as other:
                other.logout()  # revokes the session on the server
            ag.engine.store.save(Tokens(access_token="x.y.z", refresh_token=stale.refresh_token))
            with pytest.raises(Unauthorized):
                ag.check_username(USERNAME)
            assert ag.tokens is None

        # the async client, logged in as the app itself (client credentials), sees details in clear
        async def as_app() -> None:
            async with AsyncAuthgate(server.url, **options) as ag:
                await ag.login_client()
                assert ag.tokens is not None and ag.tokens.grant == "clientCredentials"
                check = await ag.check_username(USERNAME)
                assert check.phone == PHONE
                # another user, logged in, sees it blurred
                await ag.login("someone.else", PASSWORD)
                assert (await ag.check_username(USERNAME)).phone == "********66"

        asyncio.run(as_app())

    messages = [r.getMessage() for r in caplog.records if r.name == "authgate.client"]
    assert any("/api/customers/check-username/" in m and "-> 200" in m for m in messages)
    assert any("401" in m for m in messages) and any("CSRF" in m for m in messages)
    text = "\n".join(messages)
    for secret in (PASSWORD, app["clientSecret"], good.refresh_token, good.access_token):
        assert secret not in text


def _store(tokens: Tokens | None) -> MemoryTokenStore:
    store = MemoryTokenStore()
    if tokens is not None:
        store.save(tokens)
    return store
