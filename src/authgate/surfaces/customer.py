"""Customer surface (seed 000, CONTRACT §6) and the CSRF token API it depends on (CONTRACT §1).

- ``GET /api/auth/csrf-token`` (Bearer, or a form session by cookie / ``x-qt-auth``);
- ``GET /api/customers/check-username/{username}``: Bearer JWT + CSRF + app signature;
- ``PUT /api/customers/{username}`` (admin) links a billing customer by hand;
- ``POST /api/billing/stripe/webhook``: Stripe events.

Errors are ``{"error": {"code", "message"}}`` (plus ``field`` naming a bad header or field); a 401
carries ``WWW-Authenticate: Bearer error="invalid_token"`` (RFC 6750 §3). The checks themselves
live in core (core.appsig, core.flows.billing); this module only reads headers and renders.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from authgate.adapters.billing.stripe import parse_event
from authgate.core.errors import AuthError, ErrorCode, Kind
from authgate.core.flows import billing
from authgate.core.identifiers import normalise_username
from authgate.core.model import TokenType
from authgate.core.sessions import Principal
from authgate.surfaces.common import (
    JSONResponse,
    SurfaceSpec,
    bearer,
    bearer_challenge,
    context,
    core_of,
    text_for,
    with_retry_after,
)

CSRF_PATH = "/api/auth/csrf-token"
router = APIRouter(tags=["customer (seed 000)"])

# Every header seed 000 lists but Authorization (whose absence is a 401), in the order reported.
REQUIRED_HEADERS = (
    "x-csrf-token",
    "x-username",
    "locale",
    "x-app-version",
    "x-platform",
    "x-app-payload",
    "x-app-signature",
)


def render(err: AuthError, locale: str, path: str = "") -> Response:
    error: dict[str, Any] = {"code": err.code.value, "message": text_for(err, locale)}
    if err.field:
        error["field"] = err.field
    response = JSONResponse({"error": error}, status_code=err.status)
    if err.kind is Kind.UNAUTHENTICATED:  # seed 000: a missing, bad or expired JWT
        response.headers["WWW-Authenticate"] = bearer_challenge(err, always_a_token=True)
    return with_retry_after(response, err)


SPEC = SurfaceSpec("customer", ("/api/customers", "/api/billing", CSRF_PATH), render)


# --- CSRF tokens (CONTRACT §1) ---------------------------------------------------------------------
@router.get(CSRF_PATH)
async def csrf_token(request: Request) -> JSONResponse:
    """A token bound to the caller's session: the access token's ``sid``, ``client:<clientId>`` for a
    client-app token, or the form session behind the ``qt-auth`` cookie / ``x-qt-auth`` header."""
    core = core_of(request)
    token = bearer(request)
    if token:
        principal = await core.sessions.authenticate(token, (TokenType.ACCESS, TokenType.APP))
        session_id = principal.session_id or f"client:{principal.client_id}"
    else:
        secret = request.headers.get("x-qt-auth") or request.cookies.get(core.settings.cookie_name)
        session, _ = await core.sessions.from_secret(secret)
        session_id = session.id
    ttl = core.settings.csrf_ttl
    return JSONResponse({"csrfToken": core.keyed.csrf_token(session_id, ttl), "expiresIn": ttl})


# --- the username check (seed 000) -----------------------------------------------------------------
def _header_text(value: str) -> str:
    """HTTP header bytes arrive as latin-1; a client sending a UTF-8 username gets it back intact."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def request_target(request: Request) -> str:
    """The path as the client sent it (still percent-encoded), with ``?query`` when there is one:
    what an app signature's ``path`` must equal."""
    raw = request.scope.get("raw_path")
    path = raw.split(b"?", 1)[0].decode("latin-1") if isinstance(raw, bytes) and raw else request.url.path
    query = request.scope.get("query_string") or b""
    return f"{path}?{query.decode('latin-1')}" if query else path


def view_json(view: billing.CustomerView) -> dict[str, Any]:
    return {
        "exists": view.exists,
        "hasCustomer": view.has_customer,
        "customerId": view.customer_id,
        "stripeCustomerId": view.stripe_customer_id,
        "email": view.email,
        "phone": view.phone,
        "subscriptionStatus": view.subscription_status,
        "pinSet": view.pin_set,
    }


@router.get("/api/customers/check-username/{username}")
async def check_username(username: str, request: Request) -> JSONResponse:
    headers = request.headers
    for name in REQUIRED_HEADERS:
        if not headers.get(name, "").strip():
            raise AuthError(ErrorCode.MISSING_HEADER, field=name)
    claimed = _header_text(headers["x-username"]).strip()
    if normalise_username(claimed) != normalise_username(username):
        raise AuthError(ErrorCode.MISSING_HEADER, field="x-username", detail="must equal the path's username")
    view = await billing.check_username(
        core_of(request),
        token=bearer(request),
        csrf_token=headers["x-csrf-token"].strip(),
        username=username,
        method=request.method,
        path=request_target(request),
        body=await request.body(),
        headers={k.lower(): v for k, v in headers.items()},
    )
    return JSONResponse(view_json(view))


# --- linking a customer by hand (admin) -----------------------------------------------------------
class LinkBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customerId: str | None = Field(default=None, max_length=255)  # noqa: N815 - seed field names
    stripeCustomerId: str = Field(min_length=1, max_length=255)  # noqa: N815
    subscriptionStatus: str | None = Field(default=None, max_length=40)  # noqa: N815


async def authenticated(request: Request) -> Principal:
    """The Bearer's principal; a dependency, so a missing token is 401 before the body is read."""
    return await core_of(request).sessions.authenticate(bearer(request), (TokenType.ACCESS, TokenType.APP))


@router.put("/api/customers/{username}")
async def link_customer(
    username: str, body: LinkBody, request: Request, principal: Principal = Depends(authenticated)
) -> JSONResponse:
    view = await billing.link_customer(
        core_of(request),
        context(request, "customer"),
        principal,
        username,
        stripe_customer_id=body.stripeCustomerId,
        customer_id=body.customerId,
        subscription_status=body.subscriptionStatus,
        set_status="subscriptionStatus" in body.model_fields_set,
    )
    return JSONResponse(view_json(view))


# --- Stripe ---------------------------------------------------------------------------------------
@router.post("/api/billing/stripe/webhook")
async def stripe_webhook(request: Request) -> dict[str, Any]:
    core = core_of(request)
    secret = core.settings.stripe_webhook_secret
    if secret is None or not secret.get_secret_value():
        # Not configured: a 5xx makes Stripe retry, so events are not lost while it is being set up.
        raise AuthError(ErrorCode.SERVICE_UNAVAILABLE, detail="AUTHGATE_STRIPE_WEBHOOK_SECRET is not set")
    event = parse_event(await request.body(), request.headers.get("stripe-signature"), secret.get_secret_value())
    outcome = await billing.apply_event(core, event)
    return {"received": True, "outcome": outcome}
