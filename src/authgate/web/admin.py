"""The admin console under ``/ui/admin`` (``ROLE_ADMIN`` and above): a dashboard drawn from the
audit log, user search, one user's identities, sessions and audit trail, lock/unlock,
deactivate/activate, sign-out everywhere, and client app registration.

Authorisation and auditing are the core's (core/flows/ui_admin.py); this module maps pages to it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from authgate.core.errors import AuthError, ErrorCode
from authgate.core.flows import ui_admin
from authgate.core.model import Role, User
from authgate.surfaces.common import core_of
from authgate.web.charts import bar_chart
from authgate.web.kit import (
    PageRoute,
    Viewer,
    check_csrf,
    ctx_of,
    explain,
    form_of,
    form_with_lists,
    on_error,
    page_locale,
    render_page,
    require_viewer,
    values_of,
)

router = APIRouter(prefix="/admin", route_class=PageRoute)
PAGE_SIZE = 25
ACTIONS = ("lock", "unlock", "deactivate", "activate", "revoke")
DONE = ("lock", "unlock", "deactivate", "activate", "revoke")


def is_admin(user: User) -> bool:
    return user.is_active and user.has_role_at_least(Role.ADMIN)


async def admin_viewer(request: Request) -> Viewer:
    seen = await require_viewer(request)
    ui_admin.require_admin(seen.user)
    return seen


def _user_id(raw: str) -> int:
    if not raw.isdigit() or len(raw) > 20:
        raise AuthError(ErrorCode.NOT_FOUND)
    return int(raw)


@router.get("")
async def dashboard(request: Request) -> Response:
    seen = await admin_viewer(request)
    locale = page_locale(request)
    series = await ui_admin.dashboard(core_of(request), seen.user)
    charts = [bar_chart(s, locale) for s in series]
    return render_page(request, "admin_dashboard.html", seen=seen, charts=charts, section="dashboard")


@router.get("/users")
async def users(
    request: Request,
    q: Annotated[str, Query(max_length=100)] = "",
    after: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    seen = await admin_viewer(request)
    after_id = int(after) if after.isdigit() else None
    found = await ui_admin.search_users(core_of(request), seen.user, q, PAGE_SIZE + 1, after_id)
    more = len(found) > PAGE_SIZE
    found = list(found)[:PAGE_SIZE]
    return render_page(
        request, "admin_users.html", seen=seen, users=found, q=q, section="users",
        next_after=str(found[-1].id) if more and found else None,
    )


async def _user_page(request: Request, user_id: str, *, status: int = 200, errors: Any = None) -> Response:
    seen = await admin_viewer(request)
    detail = await ui_admin.user_detail(core_of(request), seen.user, _user_id(user_id))
    done = request.query_params.get("done", "")
    return render_page(
        request, "admin_user.html", seen=seen, detail=detail, status=status, errors=errors, section="users",
        done=done if done in DONE else None, self_view=detail.user.id == seen.user.id,
    )


@router.get("/users/{user_id}")
async def user_page(user_id: str, request: Request) -> Response:
    return await _user_page(request, user_id)


async def action_retry(request: Request, err: AuthError) -> Response:
    if err.kind.value in ("not_found",):
        raise err
    errors = explain(err, page_locale(request), form="actions")
    return await _user_page(request, request.path_params.get("user_id", ""), status=err.status, errors=errors)


@router.post("/users/{user_id}/{action}")
@on_error(action_retry)
async def user_action(user_id: str, action: str, request: Request) -> Response:
    seen = await admin_viewer(request)
    if action not in ACTIONS:
        raise AuthError(ErrorCode.ROUTE_NOT_FOUND)
    check_csrf(request, await form_of(request), seen, signed_in=True)
    core, ctx, uid = core_of(request), ctx_of(request), _user_id(user_id)
    if action == "lock":
        await ui_admin.lock_user(core, ctx, seen.user, uid)
    elif action == "unlock":
        await ui_admin.unlock_user(core, ctx, seen.user, uid)
    elif action in ("deactivate", "activate"):
        await ui_admin.set_active(core, ctx, seen.user, uid, action == "activate")
    else:
        await ui_admin.revoke_sessions(core, ctx, seen.user, uid)
    return RedirectResponse(f"/ui/admin/users/{uid}?done={action}", status_code=303)


@router.get("/clients")
async def clients_page(request: Request) -> Response:
    seen = await admin_viewer(request)
    return render_page(request, "admin_clients.html", seen=seen, section="clients", made=None)


async def clients_retry(request: Request, err: AuthError) -> Response:
    seen = await admin_viewer(request)
    form = await form_of(request)
    errors = explain(err, page_locale(request), fields={"name": "name", "platform": "platforms",
                                                         "min-version": "min_versions"})
    return render_page(request, "admin_clients.html", seen=seen, section="clients", made=None,
                       status=err.status, errors=errors, values=values_of(form))


@router.post("/clients")
@on_error(clients_retry)
async def clients_post(request: Request) -> Response:
    seen = await admin_viewer(request)
    form, lists = await form_with_lists(request)
    check_csrf(request, form, seen, signed_in=True)
    minimums = [line.strip().replace(" ", "") for line in form.get("min_versions", "").splitlines() if line.strip()]
    made = await ui_admin.register_client_app(
        core_of(request), ctx_of(request), seen.user, form.get("name", ""), lists.get("platforms", []), minimums
    )
    # Shown once, never stored in clear: the response must not be cached anywhere.
    return render_page(request, "admin_clients.html", seen=seen, section="clients", made=made)
