"""Route dispatch by path prefix, in front of FastAPI's linear route scan.

Starlette matches a request against every route in order until one matches, and FastAPI 0.16x
does it twice for a route inside an included router (``matches``, then ``handle``). With ~100
routes that scan was ~17 % of an authenticated read (docs/performance.md). Here each route is
filed under its first two path segments (``/api/customers``, ``/app/auth``, ``/healthz``); a
request tries only the routes filed under its own two segments, in their original order, plus
the few that could match any path (a parameter in the first two segments, or an included
router). Only a full match is dispatched here; everything else (405, 404, trailing-slash
redirects, lifespan, telemetry) goes to the router itself, so the answer is the router's own.

Why this is exact: a route whose first two segments are literal text only matches paths that
start with that text, so the routes skipped for a request are routes that cannot match it, and
among the rest the first full match in the original order is the router's first full match.
"""

from __future__ import annotations

from typing import Any

from starlette._utils import get_route_path  # where starlette.routing has it from
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

WILDCARD = ""


def _key(path: str) -> str:
    """The first two segments of a path: ``/api/customers/x/y`` → ``/api/customers``."""
    return "/".join(path.split("/", 3)[:3])


def _route_key(route: BaseRoute) -> str:
    if not isinstance(route, Route):
        return WILDCARD  # a mount or an included router: it may match anything
    key = _key(route.path)
    return WILDCARD if "{" in key else key


class PrefixDispatch:
    """The router's ``middleware_stack``: see the module docstring."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self._fallback = router.app
        self._index: dict[str, list[BaseRoute]] = {}
        self._wild: list[BaseRoute] = []
        self._routes_seen: list[BaseRoute] = []

    def _build(self) -> None:
        routes = list(self.router.routes)
        keys = [_route_key(route) for route in routes]
        index: dict[str, list[BaseRoute]] = {}
        for key in keys:
            if key != WILDCARD:
                index.setdefault(key, [])
        # Every bucket keeps the original order, wildcards included where they stood.
        for route, key in zip(routes, keys, strict=True):
            for bucket_key, bucket in index.items():
                if key == WILDCARD or key == bucket_key:
                    bucket.append(route)
        self._index = index
        self._wild = [route for route, key in zip(routes, keys, strict=True) if key == WILDCARD]
        self._routes_seen = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or "fastapi.telemetry" in scope:
            await self._fallback(scope, receive, send)
            return
        routes = self.router.routes
        if len(routes) != len(self._routes_seen):  # routes added after the app was built
            self._build()
        path = get_route_path(scope)
        for route in self._index.get(_key(path), self._wild):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope.setdefault("router", self.router)
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
        await self._fallback(scope, receive, send)


def install(router: Any) -> None:
    """Put the prefix dispatch in front of ``router`` (a Starlette/FastAPI router without router-level
    middleware: its ``middleware_stack`` is its own ``app``)."""
    if router.middleware_stack != router.app:
        raise RuntimeError("PrefixDispatch expects a router without its own middleware")
    router.middleware_stack = PrefixDispatch(router)
