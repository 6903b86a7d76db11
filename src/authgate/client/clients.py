"""``AsyncAuthgate`` and ``Authgate``: the same calls, over httpx's async and sync clients."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from authgate.client._drive import run_async, run_sync
from authgate.client._engine import Config, CustomerCheck, Engine, LoginStyle, Tokens, TokenStore


def _config(base_url: str, options: dict[str, Any]) -> Config:
    return Config(base_url=base_url, **options)


class AsyncAuthgate:
    """An async client for app developers.

    >>> async with AsyncAuthgate("https://auth.example.com", client_id=..., client_secret=...,
    ...                          platform="ios", app_version="2.3.0") as ag:
    ...     await ag.login("bmp_kfayy_6526", "password")
    ...     info = await ag.check_username("bmp_kfayy_6526")
    """

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        platform: str = "ios",
        app_version: str = "1.0.0",
        locale: str = "en",
        login_style: LoginStyle = "sync",
        login_path: str | None = None,
        refresh_path: str | None = None,
        csrf_path: str = "/api/auth/csrf-token",
        logout_path: str | None = "/app/auth/logout",
        timeout: float = 10.0,
        device_token: str | None = None,
        token_store: TokenStore | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        options = dict(client_id=client_id, client_secret=client_secret, platform=platform,
                       app_version=app_version, locale=locale, login_style=login_style, login_path=login_path,
                       refresh_path=refresh_path, csrf_path=csrf_path, logout_path=logout_path, timeout=timeout,
                       device_token=device_token)
        self.engine = Engine(_config(base_url, options), token_store)
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(timeout=timeout)

    @property
    def tokens(self) -> Tokens | None:
        return self.engine.tokens

    async def login(self, username: str, password: str, device_token: str | None = None) -> Tokens:
        """Log a user in with a password; stores the tokens."""
        return await run_async(self.http, self.engine.login_flow(username, password, device_token))

    async def login_client(self) -> Tokens:
        """Log the app itself in (clientCredentials): an app token, no user."""
        return await run_async(self.http, self.engine.client_credentials_flow())

    async def refresh(self) -> Tokens:
        return await run_async(self.http, self.engine.refresh_flow())

    async def csrf_token(self, force: bool = False) -> str:
        return await run_async(self.http, self.engine.csrf_flow(force))

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """Any API call, authenticated; ``csrf=True`` attaches the CSRF token and ``sign=True`` signs it."""
        return await run_async(self.http, self.engine.call_flow(method, path, **options))

    async def check_username(self, username: str) -> CustomerCheck:
        """Seed 000's username check with every header it needs."""
        return await run_async(self.http, self.engine.check_username_flow(username))

    async def logout(self) -> None:
        await run_async(self.http, self.engine.logout_flow())

    async def aclose(self) -> None:
        if self._own_http:
            await self.http.aclose()

    async def __aenter__(self) -> AsyncAuthgate:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


class Authgate:
    """The blocking twin of ``AsyncAuthgate`` (same options, same methods without ``await``)."""

    def __init__(
        self,
        base_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        platform: str = "ios",
        app_version: str = "1.0.0",
        locale: str = "en",
        login_style: LoginStyle = "sync",
        login_path: str | None = None,
        refresh_path: str | None = None,
        csrf_path: str = "/api/auth/csrf-token",
        logout_path: str | None = "/app/auth/logout",
        timeout: float = 10.0,
        device_token: str | None = None,
        token_store: TokenStore | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        options = dict(client_id=client_id, client_secret=client_secret, platform=platform,
                       app_version=app_version, locale=locale, login_style=login_style, login_path=login_path,
                       refresh_path=refresh_path, csrf_path=csrf_path, logout_path=logout_path, timeout=timeout,
                       device_token=device_token)
        self.engine = Engine(_config(base_url, options), token_store)
        self._own_http = http is None
        self.http = http or httpx.Client(timeout=timeout)

    @property
    def tokens(self) -> Tokens | None:
        return self.engine.tokens

    def login(self, username: str, password: str, device_token: str | None = None) -> Tokens:
        return run_sync(self.http, self.engine.login_flow(username, password, device_token))

    def login_client(self) -> Tokens:
        return run_sync(self.http, self.engine.client_credentials_flow())

    def refresh(self) -> Tokens:
        return run_sync(self.http, self.engine.refresh_flow())

    def csrf_token(self, force: bool = False) -> str:
        return run_sync(self.http, self.engine.csrf_flow(force))

    def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        return run_sync(self.http, self.engine.call_flow(method, path, **options))

    def check_username(self, username: str) -> CustomerCheck:
        return run_sync(self.http, self.engine.check_username_flow(username))

    def logout(self) -> None:
        run_sync(self.http, self.engine.logout_flow())

    def close(self) -> None:
        if self._own_http:
            self.http.close()

    def __enter__(self) -> Authgate:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
