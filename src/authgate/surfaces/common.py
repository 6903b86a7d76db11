"""What every surface shares: request facts for the core, one error pipeline, auth helpers.

Each surface registers a prefix and a renderer; every error raised under that prefix (AuthError,
validation, 404/405, oversized bodies, unexpected exceptions) is rendered in that surface's
envelope by one handler. No route has a try/except of its own.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
import orjson
from starlette.responses import JSONResponse as _StarletteJSONResponse
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.i18n import message, negotiate
from authgate.core.model import RequestContext
from authgate.core.service import Core

log = structlog.get_logger("authgate.http")


class JSONResponse(_StarletteJSONResponse):
    """Every surface's JSON answers, serialised by orjson (the same compact UTF-8 as Starlette's
    ``json.dumps`` rendering, several times faster)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)

Renderer = Callable[[AuthError, str, str], Response]  # (error, locale, path)


@dataclass
class SurfaceSpec:
    name: str
    prefixes: tuple[str, ...]
    render: Renderer


class Surfaces:
    """The registry of surfaces by path prefix (longest match wins)."""

    def __init__(self, default: SurfaceSpec) -> None:
        self.default = default
        self._by_prefix: list[tuple[str, SurfaceSpec]] = []

    def add(self, spec: SurfaceSpec) -> None:
        for prefix in spec.prefixes:
            self._by_prefix.append((prefix, spec))
        self._by_prefix.sort(key=lambda item: len(item[0]), reverse=True)

    def for_path(self, path: str) -> SurfaceSpec:
        for prefix, spec in self._by_prefix:
            if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
                return spec
        return self.default


def core_of(request: Request) -> Core:
    return request.app.state.core  # type: ignore[no-any-return]


def locale_of(request: Request) -> str:
    return negotiate(request.headers.get("locale"), request.headers.get("accept-language"))


def client_ip(request: Request) -> str | None:
    """The socket peer, or the first untrusted hop of X-Forwarded-For when the peer is a trusted proxy."""
    peer = request.client.host if request.client else None
    trusted: list[Any] = request.app.state.trusted_networks
    if not peer or not trusted or not _in(peer, trusted):
        return peer
    forwarded = request.headers.get("x-forwarded-for", "")
    hops = [h.strip() for h in forwarded.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _in(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _in(address: str, networks: list[Any]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def context(request: Request, surface: str) -> RequestContext:
    return RequestContext(
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        locale=locale_of(request),
        surface=surface,
        request_id=request.headers.get("x-request-id"),
        gone=client_gone(request.receive),
    )


def client_gone(receive: Receive) -> Callable[[], Awaitable[bool]]:
    """Whether the client has closed the connection, without waiting for it to.

    One step of ASGI ``receive``: a disconnect the server already has comes back at once;
    otherwise ``receive`` parks on the server's event, and closing the step removes that waiter.
    Starlette's ``Request.is_disconnected`` does the same through an anyio CancelScope, which cost
    ~4 % of a signup's event-loop CPU (it runs before every queued hash; passwords.Hasher).
    The body has been read by then, so a message other than a disconnect is dropped, as there."""

    async def gone() -> bool:
        step = receive()
        if not asyncio.iscoroutine(step):  # a receive returning another awaitable
            step = _awaiting(step)
        try:
            step.send(None)
        except StopIteration as done:
            return bool(done.value.get("type") == "http.disconnect")
        step.close()
        return False

    return gone


async def _awaiting(awaitable: Awaitable[Message]) -> Message:
    return await awaitable


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def text_for(err: AuthError, locale: str) -> str:
    return message(err.code.value, locale, field=err.field or "", retry_after=err.retry_after or "")


_TOKEN_REFUSALS = (ErrorCode.TOKEN_INVALID, ErrorCode.TOKEN_EXPIRED, ErrorCode.TOKEN_MISSING)


def bearer_challenge(err: AuthError, *, always_a_token: bool = False) -> str:
    """The ``WWW-Authenticate`` of a 401 (RFC 9110 §15.5.2, RFC 6750 §3): a refused token says
    ``invalid_token`` (and why, when it expired); another 401 only names the scheme.
    ``always_a_token``: on this surface every 401 is about the Bearer token."""
    if not always_a_token and err.code not in _TOKEN_REFUSALS:
        return "Bearer"
    value = 'Bearer error="invalid_token"'
    if err.code is ErrorCode.TOKEN_EXPIRED:
        value += ', error_description="The access token expired"'
    return value


def with_retry_after(response: Response, err: AuthError) -> Response:
    if err.retry_after:
        response.headers["Retry-After"] = str(err.retry_after)
    return response


# --- errors --------------------------------------------------------------------------------------


def validation_to_auth(exc: RequestValidationError) -> AuthError:
    errors = exc.errors()
    for err in errors:
        if err.get("type") in ("json_invalid", "json_type"):
            return AuthError(ErrorCode.MALFORMED_JSON)
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "header", "path")]
    field = ".".join(loc) or "body"
    return AuthError(ErrorCode.INVALID_FIELD, field=field, detail=str(first.get("msg", "invalid")))


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (RFC 9110 §15.5.6). Starlette's 405 names only
    the first route whose path matches: ``PATCH /api/users`` said ``PUT`` although GET works too."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, Route) and route.methods and route.matches(request.scope)[0] is Match.PARTIAL:
            methods |= route.methods
    return ", ".join(sorted(methods))


def install_error_handlers(app: Any, surfaces: Surfaces) -> None:
    def render(request: Request, err: AuthError) -> Response:
        spec = surfaces.for_path(request.url.path)
        if err.status >= 500:
            log.warning("request_failed", code=err.code.value, detail=err.detail, path=request.url.path)
        return spec.render(err, locale_of(request), request.url.path)

    async def on_auth_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        return render(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return render(request, validation_to_auth(exc))

    async def on_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err = AuthError(ErrorCode.ROUTE_NOT_FOUND)
        elif exc.status_code == 405:
            err = AuthError(ErrorCode.METHOD_NOT_ALLOWED)
        elif exc.status_code == 400:
            err = AuthError(ErrorCode.MALFORMED_JSON)
        elif exc.status_code == 413:
            err = AuthError(ErrorCode.BODY_TOO_LARGE)
        else:
            err = AuthError(ErrorCode.INTERNAL)
        response = render(request, err)
        if exc.status_code == 405:
            response.headers["Allow"] = _allowed_methods(request) or (exc.headers or {}).get("Allow", "")
        return response

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        log.error("unhandled_exception", path=request.url.path, error=type(exc).__name__, exc_info=exc)
        return render(request, AuthError(ErrorCode.INTERNAL))

    app.add_exception_handler(AuthError, on_auth_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)


JSON_PREFIXES_EXEMPT = ("/ui",)
# Bodies that are signed as they are (Stripe's webhook): read by their route byte for byte, and
# acknowledged even when a field is unusable, since any other answer makes the sender retry.
RAW_BODY_PATHS = ("/api/billing/stripe/webhook",)


def _as_json(scope: Scope) -> Scope:
    """API bodies are JSON whatever Content-Type says: seed 003's curl samples send none (curl then
    says x-www-form-urlencoded). Hosted pages under /ui keep their form posts."""
    if scope.get("method") in ("GET", "HEAD", "OPTIONS") or scope.get("path", "").startswith(JSON_PREFIXES_EXEMPT):
        return scope
    headers = [(k, v) for k, v in scope.get("headers", ()) if k != b"content-type"]
    original = next((v for k, v in scope.get("headers", ()) if k == b"content-type"), b"")
    if original.startswith(b"multipart/"):
        return scope
    headers.append((b"content-type", b"application/json"))
    return {**scope, "headers": headers}


def unusable_text(body: bytes) -> str | None:
    """The dotted path of the first JSON string (value or key) in ``body`` holding a NUL or a lone
    UTF-16 surrogate, or None. Both are valid JSON escapes (``\\u0000``, ``\\ud800``) that no
    name, address, password or token has, and both break what lies behind: PostgreSQL refuses a
    NUL even in a lookup, and a lone surrogate cannot be encoded to hash or sign it. One rule here,
    for every surface, instead of a 500 wherever a field forgot to check. Bodies without a ``\\u``
    escape (nearly all) are not parsed."""
    if b"\\u" not in body:
        return None
    try:
        value = json.loads(body)
    except ValueError:
        return None  # malformed: the route answers 400

    def bad(text: str) -> bool:
        if "\x00" in text:
            return True
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False

    def walk(node: Any, path: tuple[str, ...]) -> str | None:
        if isinstance(node, str):
            return (".".join(path) or "body") if bad(node) else None
        if isinstance(node, dict):
            for key, item in node.items():
                if bad(key):
                    return ".".join(path) or "body"
                found = walk(item, (*path, key))
                if found:
                    return found
        elif isinstance(node, list):
            for i, item in enumerate(node):
                found = walk(item, (*path, str(i)))
                if found:
                    return found
        return None

    return walk(value, ())


class BodyLimit:
    """413 for bodies over the limit, by Content-Length up front or by counting the chunks; 422
    naming the field for a NUL or a lone surrogate anywhere in a JSON body (``unusable_text``);
    404 for a NUL in the path (no resource is named so). Query parameters are each checked where
    they are read (a NUL in a verification token is an invalid link, 400).

    Also reads every API body as JSON (see ``_as_json``). An API body is read whole (it is at most
    ``limit`` bytes) before the route runs, then handed on; what ``receive`` gives after it (a
    disconnect) still comes from the server.
    """

    def __init__(self, app: ASGIApp, limit: int, surfaces: Surfaces) -> None:
        self.app = app
        self.limit = limit
        self.surfaces = surfaces

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                break
        if length is not None and (length > self.limit or length < 0):
            await self._reject(scope, receive, send)
            return
        if "\x00" in scope.get("path", ""):
            await self._reject(scope, receive, send, AuthError(ErrorCode.ROUTE_NOT_FOUND), close=False)
            return
        api = scope.get("method") not in ("GET", "HEAD", "OPTIONS") and not scope.get("path", "").startswith(
            JSON_PREFIXES_EXEMPT
        )
        scope = _as_json(scope)
        if not api:
            await self._stream(scope, receive, send)
            return
        chunks = []
        seen = 0
        while True:
            message_ = await receive()
            if message_["type"] != "http.request":  # gone before the body ended: let the app see it
                pending: list[Message] = [message_]
                break
            chunk = message_.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message_.get("more_body", False):
                pending = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]
                field = None if scope.get("path") in RAW_BODY_PATHS else unusable_text(pending[0]["body"])
                if field:
                    await self._reject(scope, receive, send, _unusable(field), close=False)
                    return
                break

        async def replay() -> Message:
            return pending.pop() if pending else await receive()

        await self.app(scope, replay, send)

    async def _stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        seen = 0
        limit = self.limit

        async def counting_receive() -> Message:
            nonlocal seen
            message_ = await receive()
            if message_["type"] == "http.request":
                seen += len(message_.get("body", b""))
                if seen > limit:
                    # An HTTPException, not an AuthError: FastAPI turns any other error raised while
                    # it reads the body into a 400 (a chunked 70 KB body was "Malformed JSON").
                    raise StarletteHTTPException(413)
            return message_

        await self.app(scope, counting_receive, send)

    async def _reject(
        self, scope: Scope, receive: Receive, send: Send, err: AuthError | None = None, *, close: bool = True
    ) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())}
        locale = negotiate(headers.get("locale"), headers.get("accept-language"))
        path = scope.get("path", "/")
        spec = self.surfaces.for_path(path)
        response = spec.render(err or AuthError(ErrorCode.BODY_TOO_LARGE), locale, path)
        if close:  # the rest of an oversized body is not read
            response.headers["Connection"] = "close"
        await response(scope, receive, send)


def _unusable(field: str) -> AuthError:
    # The wording of identifiers.refuse_control, which the fields that check themselves give.
    return AuthError(ErrorCode.INVALID_FIELD, field=field, detail="must not contain control characters")

