"""``create_app(settings)``: one FastAPI app serving every surface over one core."""

from __future__ import annotations

import gc
import ipaddress
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate import __version__
from authgate.config import Settings
from authgate.container import Container, build
from authgate.core import maintenance
from authgate.core.errors import AuthError
from authgate.core.service import Core
from authgate.storage.db import SchemaNotReady
from authgate.surfaces import dispatch, form, ops
from authgate.surfaces.common import BodyLimit, JSONResponse, Surfaces, install_error_handlers

log = structlog.get_logger("authgate.http")

# Optional surfaces register themselves here when their module exists (one module per contract);
# the hottest request paths come first, since routes are matched in order.
OPTIONAL_SURFACES = ("customer", "app", "firebase", "sync", "pages")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "authgate_requests_total", "HTTP requests", ["surface", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "authgate_request_seconds", "HTTP request latency", ["surface"], registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        # The labelled children, looked up once per label set (``labels()`` costs a lock and a
        # tuple build on every call, on every request).
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, surface: str, method: str, status: int, seconds: float) -> None:
        key = (surface, method, status)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > 10_000:  # methods are whatever clients send: stay bounded
                self._children.clear()
            children = (self.requests.labels(surface, method, str(status)), self.latency.labels(surface))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def _startup_failure_in_one_line(scope: Scope, send: Send) -> Send:
    """Starlette reports a failed lifespan start-up with the whole traceback, which the server
    prints; for the failures the lifespan explains (app.state.startup_error) the line says it."""
    if scope["type"] != "lifespan":
        return send

    async def send_(message: Message) -> None:
        error = getattr(scope["app"].state, "startup_error", None)
        if message["type"] == "lifespan.startup.failed" and error:
            message = {**message, "message": f"authgate cannot start: {error}"}
        await send(message)

    return send_


class AccessLog:
    """Request id, method, path, status, latency and surface for every request; metrics too;
    ``Cache-Control: no-store`` on every answer that does not set its own; and ``HEAD`` served as
    the ``GET`` it stands for, without the body (RFC 9110 §9.3.2; the routes know only GET)."""

    def __init__(self, app: ASGIApp, surfaces: Surfaces, metrics: Metrics) -> None:
        self.app = app
        self.surfaces = surfaces
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, _startup_failure_in_one_line(scope, send))
            return
        start = time.perf_counter()
        status = 500
        request_id = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                request_id = value.decode("latin-1")[:64]
        request_id = request_id or os.urandom(16).hex()  # 32 hex digits, as uuid4().hex; ~5x cheaper
        method = scope.get("method", "")
        head = method == "HEAD"
        if head:
            scope = {**scope, "method": "GET"}
        # Every log line of this request carries its id; the core binds user_id once it knows it.
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", request_id.encode()))
                # Tokens, sessions and personal data: no browser or proxy may keep an answer
                # (RFC 6749 §5.1), unless the route says otherwise (the JWKS, the pages' assets).
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            elif head and message["type"] == "http.response.body":
                message = {**message, "body": b""}  # the GET's headers, Content-Length included
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            surface = self.surfaces.for_path(scope.get("path", "/")).name
            self.metrics.observe(surface, method, status, elapsed)
            log.info(
                "request",
                method=method,
                path=scope.get("path"),
                status=status,
                latency_ms=round(elapsed * 1000, 2),
                surface=surface,
            )


def create_app(settings: Settings, *, core: Core | None = None, internal: bool = False) -> FastAPI:
    """Build the ASGI app. With ``core`` given the caller owns its lifetime; otherwise the app's
    lifespan builds and closes it. ``internal`` marks the internal listener (x-user-ctx honoured)."""
    holder: dict[str, Container] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if core is None:
            try:
                container = await build(settings)
            except (SchemaNotReady, AuthError) as exc:
                # Said in one line (AccessLog passes it to the server instead of the traceback):
                # an unmigrated or unreachable database is the operator's to fix, not a crash.
                app.state.startup_error = str(exc) if isinstance(exc, SchemaNotReady) else (
                    exc.detail or exc.code.value
                )
                raise
            holder["c"] = container
            app.state.core = container.core
            # Everything built so far lives as long as the process: keep it out of the cyclic GC's
            # full collections, which otherwise stall every request for tens of milliseconds.
            # `authgate serve` runs start-up with the collector off (cli.serve); it starts here.
            gc.freeze()
            gc.enable()
            if settings.purge_interval:
                container.closers.append(maintenance.schedule(container.core))  # closed first (LIFO)
        try:
            yield
        finally:
            if "c" in holder:
                await holder.pop("c").close()

    app = FastAPI(
        title="authgate",
        version=__version__,
        description="Self-hosted authentication: five client contracts over one identity core.",
        lifespan=lifespan,
        docs_url="/docs",
        openapi_url="/openapi.json",
        redoc_url=None,
        # `/app/auth/login/` is an unknown path (404 in the surface's envelope), not a 307 to
        # `/app/auth/login`; the documented trailing-slash paths (seed 002's `PUT /api/users/`)
        # are routes of their own.
        redirect_slashes=False,
        default_response_class=JSONResponse,  # orjson (surfaces/common.py)
        # FastAPI's native OpenTelemetry asks the global providers whether they are configured on
        # every request (~3 % of a signed username check); authgate's own metrics are Prometheus.
        # It stays on when the process is set up for OpenTelemetry (any OTEL_* variable).
        telemetry=None if _otel_requested() else {"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.internal = internal
    app.state.trusted_networks = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
    if core is not None:
        app.state.core = core

    surfaces = Surfaces(ops.SPEC)
    modules = [ops, form, *(m for m in map(_optional, OPTIONAL_SURFACES) if m is not None)]
    for module in modules:
        surfaces.add(module.SPEC)
        _mount(app, module.router)
    dispatch.install(app.router)
    install_error_handlers(app, surfaces)
    metrics = Metrics()
    app.state.metrics = metrics
    app.state.surfaces = surfaces
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, surfaces=surfaces)
    app.add_middleware(AccessLog, surfaces=surfaces, metrics=metrics)
    return app


def _otel_requested() -> bool:
    return any(name.startswith("OTEL_") for name in os.environ) or bool(os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE"))


def _mount(app: FastAPI, router: APIRouter) -> None:
    """A surface router whose routes are all plain routes joins the app's own route list (as if
    declared with ``@app.get``): FastAPI matches an included router's routes twice per request."""
    if all(isinstance(route, Route) for route in router.routes):
        app.router.routes.extend(router.routes)
    else:
        app.include_router(router)


def _optional(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(f"authgate.surfaces.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"authgate.surfaces.{name}":
            raise
        return None


def factory() -> FastAPI:
    """For ``uvicorn --factory authgate.app:factory`` (multi-worker serve): settings from env."""
    from authgate import logging as applog

    settings = Settings()
    applog.configure(settings.log_level, settings.log_json)
    return create_app(settings)
