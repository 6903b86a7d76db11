"""The prefix dispatch in front of the router answers exactly as the router's own scan would."""

from __future__ import annotations

import re

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Match, Route

from authgate.app import create_app
from authgate.config import Settings
from authgate.surfaces import dispatch
from authgate.surfaces.dispatch import PrefixDispatch


def _app_with(routes: list[tuple[str, str, str]], *, installed: bool) -> FastAPI:
    app = FastAPI()
    for path, method, name in routes:

        async def endpoint(name: str = name) -> dict[str, str]:
            return {"route": name}

        app.add_api_route(path, endpoint, methods=[method], name=name)
    nested = APIRouter(prefix="/nested")

    @nested.get("/{anything}")
    async def nested_any() -> dict[str, str]:
        return {"route": "nested"}

    app.include_router(nested)
    if installed:
        dispatch.install(app.router)
    return app


# Overlaps on purpose: a wildcard first segment declared before a literal one, the same path with
# two methods, a trailing-slash twin, a parameter in the second segment, an included router.
ROUTES = [
    ("/{tenant}/items", "GET", "tenant-items"),
    ("/api/items", "GET", "api-items"),
    ("/api/items", "POST", "api-items-post"),
    ("/api/items/{id}", "GET", "api-item"),
    ("/api/{kind}/special", "GET", "kind-special"),
    ("/api/users/", "GET", "users-slash"),
    ("/healthz", "GET", "health"),
]

REQUESTS = [
    ("GET", "/api/items"),  # the wildcard route declared first wins, as in the router
    ("POST", "/api/items"),
    ("PUT", "/api/items"),  # 405 from the router
    ("GET", "/api/items/7"),
    ("GET", "/api/users/special"),
    ("GET", "/api/users/"),
    ("GET", "/api/users"),  # trailing-slash redirect from the router
    ("GET", "/healthz"),
    ("GET", "/nested/x"),
    ("GET", "/nope/nope/nope"),  # 404
    ("GET", "/"),
]


@pytest.mark.parametrize(("method", "path"), REQUESTS)
async def test_dispatch_answers_as_the_router(method: str, path: str) -> None:
    answers = []
    for installed in (False, True):
        app = _app_with(ROUTES, installed=installed)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            r = await client.request(method, path, follow_redirects=False)
        answers.append((r.status_code, r.headers.get("location"), r.text))
    assert answers[0] == answers[1]


def test_dispatch_is_installed_on_the_app() -> None:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    assert isinstance(app.router.middleware_stack, PrefixDispatch)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x1", path)


def test_every_route_of_the_app_is_reached_through_its_bucket() -> None:
    """For each route of the real app, the dispatch tries exactly the routes the linear scan would
    find first: the first full match in the bucket is the first full match over all routes."""
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    stack = app.router.middleware_stack
    assert isinstance(stack, PrefixDispatch)
    stack._build()
    checked = 0
    for route in app.router.routes:
        if not isinstance(route, Route):
            continue
        for method in sorted(route.methods or {"GET"}):
            scope = {"type": "http", "path": _concrete(route.path), "root_path": "", "method": method}
            first = next(r for r in app.router.routes if r.matches(dict(scope))[0] is Match.FULL)
            bucket = stack._index.get(dispatch._key(scope["path"]), stack._wild)
            in_bucket = next((r for r in bucket if r.matches(dict(scope))[0] is Match.FULL), None)
            assert in_bucket is first, (method, route.path)
            checked += 1
    assert checked > 40
    # The surfaces' routes are plain routes of the app (matched once), not an included router.
    assert any(isinstance(r, APIRoute) and r.path == "/api/v1/auth/me" for r in app.router.routes)


def test_install_refuses_a_router_with_its_own_middleware() -> None:
    app = FastAPI()
    app.router.middleware_stack = PrefixDispatch(app.router)
    with pytest.raises(RuntimeError):
        dispatch.install(app.router)
