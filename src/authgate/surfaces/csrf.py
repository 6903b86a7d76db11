"""``GET /api/auth/csrf-token`` (CONTRACT §1): a token bound to the caller's session and an expiry.

Works with a Bearer access token or a form session (``qt-auth`` cookie or ``x-qt-auth`` header).
Errors use the customer surface's envelope, ``{"error": {"code", "message"}}`` (seed 000 names
this as its "CSRF Token API" dependency).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from authgate.surfaces.common import SurfaceSpec, bearer, core_of
from authgate.surfaces.ops import render

PATH = "/api/auth/csrf-token"
router = APIRouter(tags=["customer (seed 000)"])
SPEC = SurfaceSpec("csrf", (PATH,), render)


@router.get(PATH)
async def csrf_token(request: Request) -> JSONResponse:
    core = core_of(request)
    token = bearer(request)
    if token:
        principal = await core.sessions.authenticate(token)
        session_id = principal.session_id or f"client:{principal.client_id}"
    else:
        secret = request.headers.get("x-qt-auth") or request.cookies.get(core.settings.cookie_name)
        session, _ = await core.sessions.from_secret(secret)
        session_id = session.id
    ttl = core.settings.csrf_ttl
    return JSONResponse(
        {"csrfToken": core.keyed.csrf_token(session_id, ttl), "expiresIn": ttl},
        headers={"Cache-Control": "no-store"},
    )
