"""Operations surface (CONTRACT §2): health, readiness, JWKS, discovery, metrics.

Also the default envelope for paths no surface owns: ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from authgate.core.errors import AuthError
from authgate.surfaces.common import JSONResponse, SurfaceSpec, core_of, text_for, with_retry_after

router = APIRouter(tags=["ops"])


def render(err: AuthError, locale: str, path: str = "") -> Response:
    body = {"error": {"code": err.code.value, "message": text_for(err, locale)}}
    if err.field:
        body["error"]["field"] = err.field
    return with_retry_after(JSONResponse(body, status_code=err.status), err)


SPEC = SurfaceSpec("ops", ("/healthz", "/readyz", "/.well-known", "/metrics"), render)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    core = core_of(request)
    checks: dict[str, str] = {}
    ok = True
    for name, probe in (("database", core.store.ping), ("redis", core.cache.ping)):
        if name == "redis" and not core.settings.redis_url:
            continue
        try:
            await probe()
            checks[name] = "ok"
        except AuthError:
            checks[name] = "unavailable"
            ok = False
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return JSONResponse(body, status_code=200 if ok else 503)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    core = core_of(request)
    await core.keys.signing_key()  # refreshes the ring when due, so rotations show up
    return JSONResponse(core.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/.well-known/openid-configuration")
async def openid_configuration(request: Request) -> dict[str, object]:
    settings = core_of(request).settings
    base = settings.public_url.rstrip("/")  # unset, where this server listens (config.py)
    return {
        "issuer": settings.issuer,
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "token_endpoint": f"{base}/api/auth/login",
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "grant_types_supported": ["password", "refresh_token", "client_credentials"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
