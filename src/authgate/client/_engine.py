"""The SDK's logic, written once without I/O.

Every call is a generator that yields the ``httpx.Request`` it wants sent and receives the
``httpx.Response``; the async and sync clients only drive it (``_drive``). So logging in,
refreshing once on 401, fetching the CSRF token, signing and error mapping behave identically in
both.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar
from urllib.parse import quote

import httpx

from authgate.client.errors import AuthgateError, Unauthorized, for_status
from authgate.client.signing import app_signature_headers

log = logging.getLogger("authgate.client")

T = TypeVar("T")
Flow = Generator[httpx.Request, httpx.Response, T]
LoginStyle = Literal["sync", "app"]

CSRF_MARGIN_SECONDS = 60  # fetch a new CSRF token this long before the old one expires


@dataclass
class Tokens:
    access_token: str
    refresh_token: str | None = None
    token_type: str = "Bearer"
    expires_at: float | None = None  # unix time
    grant: str = "password"  # or "clientCredentials": refreshed by logging the app in again


@dataclass(frozen=True)
class CustomerCheck:
    """Seed 000's answer for a username."""

    exists: bool
    has_customer: bool
    customer_id: str | None
    stripe_customer_id: str | None
    email: str
    phone: str
    subscription_status: str | None
    pin_set: bool

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> CustomerCheck:
        return cls(
            exists=bool(body.get("exists")),
            has_customer=bool(body.get("hasCustomer")),
            customer_id=body.get("customerId"),
            stripe_customer_id=body.get("stripeCustomerId"),
            email=body.get("email") or "",
            phone=body.get("phone") or "",
            subscription_status=body.get("subscriptionStatus"),
            pin_set=bool(body.get("pinSet")),
        )


class TokenStore(Protocol):
    """Where tokens live between calls (memory by default; an app may persist them securely)."""

    def load(self) -> Tokens | None: ...
    def save(self, tokens: Tokens) -> None: ...
    def clear(self) -> None: ...


class MemoryTokenStore:
    def __init__(self) -> None:
        self._tokens: Tokens | None = None

    def load(self) -> Tokens | None:
        return self._tokens

    def save(self, tokens: Tokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None


@dataclass
class Config:
    """Everything the SDK needs to know about the server and the app.

    ``login_style`` "sync" logs in at ``POST /api/auth/login`` (seed 002: password, refreshToken and
    clientCredentials grants); "app" at ``POST /app/auth/login`` (seed 001: ``{loginID, password}``),
    refreshing at ``POST /api/v1/auth/refresh``. Every surface shares sessions, so tokens from
    either work everywhere.
    """

    base_url: str
    client_id: str | None = None
    client_secret: str | None = None
    platform: str = "ios"
    app_version: str = "1.0.0"
    locale: str = "en"
    login_style: LoginStyle = "sync"
    login_path: str | None = None
    refresh_path: str | None = None
    csrf_path: str = "/api/auth/csrf-token"
    logout_path: str | None = "/app/auth/logout"
    timeout: float = 10.0
    device_token: str | None = None  # seed 001's login requires one (the app's push token)

    @property
    def resolved_login_path(self) -> str:
        return self.login_path or ("/api/auth/login" if self.login_style == "sync" else "/app/auth/login")

    @property
    def resolved_refresh_path(self) -> str:
        return self.refresh_path or ("/api/auth/login" if self.login_style == "sync" else "/api/v1/auth/refresh")


def _payload(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _unwrap(body: Any) -> dict[str, Any]:
    """Token responses come bare (seed 002) or in an envelope's ``data`` (seeds 001, 004)."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict) and "accessToken" not in body:
        return body["data"]  # type: ignore[no-any-return]
    return body if isinstance(body, dict) else {}


class Engine:
    def __init__(self, config: Config, token_store: TokenStore | None = None) -> None:
        self.config = config
        self.store: TokenStore = token_store or MemoryTokenStore()
        self._csrf: tuple[str, float] | None = None  # (token, unix expiry)

    # --- state ---------------------------------------------------------------------------------
    @property
    def tokens(self) -> Tokens | None:
        return self.store.load()

    def clear(self) -> None:
        """Forget the tokens and the CSRF token (what a failed refresh and logout do)."""
        self.store.clear()
        self._csrf = None

    def _accept_tokens(self, response: httpx.Response, grant: str, previous: Tokens | None = None) -> Tokens:
        data = _unwrap(_payload(response))
        access = data.get("accessToken")
        if not isinstance(access, str) or not access:
            raise AuthgateError(response.status_code, "the login response carried no accessToken")
        expires_in = data.get("expiresIn")
        refresh = data.get("refreshToken") or (previous.refresh_token if previous else None)
        tokens = Tokens(
            access_token=access,
            refresh_token=refresh if isinstance(refresh, str) else None,
            token_type=str(data.get("tokenType") or "Bearer"),
            expires_at=time.time() + expires_in if isinstance(expires_in, (int, float)) else None,
            grant=grant,
        )
        self.store.save(tokens)
        return tokens

    # --- building requests ---------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str | bytes] | None = None,
        auth: bool = True,
        csrf: bool = False,
        sign: bool = False,
    ) -> httpx.Request:
        all_headers: dict[str, str | bytes] = {"locale": self.config.locale, "Accept": "application/json"}
        tokens = self.tokens
        if auth and tokens is not None:
            all_headers["Authorization"] = f"Bearer {tokens.access_token}"
        if csrf and self._csrf is not None:
            all_headers["x-csrf-token"] = self._csrf[0]
        all_headers.update(headers or {})
        url = self.config.base_url.rstrip("/") + path
        # httpx takes str and bytes header values (a non-ASCII x-username goes as UTF-8 bytes)
        request = httpx.Request(method, url, json=json, params=params, headers=all_headers)  # type: ignore[arg-type]
        if sign:
            if not self.config.client_id or not self.config.client_secret:
                raise ValueError("signing needs client_id and client_secret")
            request.headers.update(
                app_signature_headers(
                    self.config.client_id,
                    self.config.client_secret,
                    request.method,
                    request.url.raw_path.decode("ascii"),
                    request.content,
                    platform=self.config.platform,
                    app_version=self.config.app_version,
                )
            )
        return request

    def _raise_for(self, response: httpx.Response) -> None:
        if response.status_code < 400:
            return
        raise for_status(response.status_code, _payload(response), response.headers.get("retry-after"))

    # --- flows ---------------------------------------------------------------------------------
    def login_flow(self, username: str, password: str, device_token: str | None = None) -> Flow[Tokens]:
        c = self.config
        if c.login_style == "sync":
            body: dict[str, Any] = {
                "type": "password",
                "clientId": c.client_id,
                "clientSecret": c.client_secret,
                "withPassword": {"emailOrUsername": username, "password": password},
            }
        else:
            device = device_token or c.device_token
            if not device:
                raise ValueError("login_style='app' needs a device_token (seed 001 requires deviceToken)")
            body = {"loginID": username, "password": password, "deviceToken": device}
        response = yield self._request("POST", c.resolved_login_path, json=body, auth=False)
        self._raise_for(response)
        self._csrf = None  # bound to the previous session
        return self._accept_tokens(response, "password")

    def client_credentials_flow(self) -> Flow[Tokens]:
        c = self.config
        body = {"type": "clientCredentials", "clientId": c.client_id, "clientSecret": c.client_secret}
        response = yield self._request("POST", "/api/auth/login", json=body, auth=False)
        self._raise_for(response)
        self._csrf = None
        return self._accept_tokens(response, "clientCredentials")

    def refresh_flow(self) -> Flow[Tokens]:
        """Exchange the refresh token (or, for an app token, log the app in again). On failure the
        tokens are cleared and Unauthorized is raised: the user must log in again."""
        tokens = self.tokens
        if tokens is None:
            raise Unauthorized(401, "not logged in", "not_logged_in")
        if tokens.grant == "clientCredentials":
            try:
                return (yield from self.client_credentials_flow())
            except AuthgateError as exc:
                self.clear()
                raise Unauthorized(401, exc.message, exc.code, exc.body) from exc
        if not tokens.refresh_token:
            self.clear()
            raise Unauthorized(401, "no refresh token", "refresh_invalid")
        c = self.config
        if c.login_style == "sync":
            body: dict[str, Any] = {
                "type": "refreshToken",
                "refreshToken": tokens.refresh_token,
                "clientId": c.client_id,
                "clientSecret": c.client_secret,
            }
        else:
            body = {"refreshToken": tokens.refresh_token}
        response = yield self._request("POST", c.resolved_refresh_path, json=body, auth=False)
        if response.status_code >= 400:
            self.clear()
            error = for_status(response.status_code, _payload(response), response.headers.get("retry-after"))
            if response.status_code in (400, 401, 403):
                raise Unauthorized(401, error.message, error.code, error.body) from error
            raise error
        return self._accept_tokens(response, "password", previous=tokens)

    def csrf_flow(self, force: bool = False) -> Flow[str]:
        """The CSRF token for the current session, fetched once and reused until near its expiry."""
        if not force and self._csrf is not None and self._csrf[1] - CSRF_MARGIN_SECONDS > time.time():
            return self._csrf[0]
        response = yield from self.call_flow("GET", self.config.csrf_path)
        data = _unwrap(_payload(response))
        token, expires_in = data.get("csrfToken"), data.get("expiresIn")
        if not isinstance(token, str) or not token:
            raise AuthgateError(response.status_code, "the CSRF response carried no csrfToken")
        self._csrf = (token, time.time() + (expires_in if isinstance(expires_in, (int, float)) else 300))
        return token

    def call_flow(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str | bytes] | None = None,
        auth: bool = True,
        csrf: bool = False,
        sign: bool = False,
    ) -> Flow[httpx.Response]:
        """One API call: on a 401 refresh once and retry; on a 403 ``csrf_invalid`` fetch a new
        CSRF token once and retry. Each attempt is signed afresh (a new nonce and ts)."""
        refreshed = csrf_renewed = False
        while True:
            if csrf:
                yield from self.csrf_flow()
            request = self._request(
                method, path, json=json, params=params, headers=headers, auth=auth, csrf=csrf, sign=sign
            )
            response = yield request
            if response.status_code == 401 and auth and not refreshed and self.tokens is not None:
                refreshed = True
                log.debug("authgate %s %s: 401, refreshing the access token once", method, path)
                yield from self.refresh_flow()
                continue
            if response.status_code == 403 and csrf and not csrf_renewed and self._code(response) == "csrf_invalid":
                csrf_renewed = True
                log.debug("authgate %s %s: CSRF token refused, fetching a new one", method, path)
                yield from self.csrf_flow(force=True)
                continue
            if response.status_code == 401 and auth:
                self.clear()
            self._raise_for(response)
            return response

    @staticmethod
    def _code(response: httpx.Response) -> str | None:
        body = _payload(response)
        error = body.get("error") if isinstance(body, dict) else None
        return error.get("code") if isinstance(error, dict) else None

    def check_username_flow(self, username: str) -> Flow[CustomerCheck]:
        """Seed 000: Bearer + CSRF + app signature + x-username, and the customer record back."""
        path = "/api/customers/check-username/" + quote(username, safe="")
        header_value: str | bytes = username if username.isascii() else username.encode("utf-8")
        response = yield from self.call_flow(
            "GET",
            path,
            headers={"x-username": header_value, "Content-Type": "application/json"},
            csrf=True,
            sign=True,
        )
        return CustomerCheck.from_json(_unwrap(_payload(response)))

    def logout_flow(self) -> Flow[None]:
        """Revoke the session on the server (best effort), then forget the tokens either way."""
        tokens = self.tokens
        try:
            if tokens is not None and tokens.grant != "clientCredentials" and self.config.logout_path:
                response = yield self._request("DELETE", self.config.logout_path)
                if response.status_code >= 400 and response.status_code != 401:
                    log.debug("authgate logout: server answered %s", response.status_code)
        finally:
            self.clear()
