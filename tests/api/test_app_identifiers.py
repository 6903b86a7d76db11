"""NUL and control characters in login identifiers (CONTRACT §1: an invalid field is 422 naming
it, never a stack trace). PostgreSQL refuses a NUL even in a lookup, so before the rule lived in
core/identifiers.classify the app and sync logins answered 500 there. Each test runs on SQLite and
PostgreSQL; the app surface's own, the other surfaces because they share ``classify``."""

from __future__ import annotations

import pytest

from tests.api.test_app import BASE, error, make_user
from tests.api.test_pages import csrf_of
from tests.api.test_sync import password_login, seed_client
from tests.conftest import Harness

BAD_IDS = ["a\u0000b", "test@aritaone.com\u0000", "\u0000", "ann\u001bx", "a\u007fb"]


@pytest.mark.parametrize("login_id", BAD_IDS)
async def test_app_login_refuses_control_characters(hdb: Harness, login_id: str) -> None:
    await make_user(hdb)
    body = {"loginID": login_id, "password": "x", "deviceToken": "1234567890"}
    r = await hdb.client.post(f"{BASE}/login", json=body)
    assert (r.status_code, r.json()) == (422, error("Invalid value for loginID: must not contain control characters"))
    # the body exactly as the audit sent it (no deviceToken) is a 422 too
    r = await hdb.client.post(f"{BASE}/login", json={"loginID": login_id, "password": "x"})
    assert r.status_code == 422 and r.json()["success"] is False and r.json()["data"] is None


async def test_app_lookups_and_sends_refuse_control_characters(hdb: Harness) -> None:
    r = await hdb.client.post(f"{BASE}/account/check", json={"loginID": "a\u0000b"})
    assert (r.status_code, r.json()) == (422, error("Invalid value for loginID: must not contain control characters"))
    r = await hdb.client.post(f"{BASE}/otp", json={"nature": 1, "loginID": "a\u0000b", "sendType": 1})
    assert r.status_code == 422 and "loginID" in r.json()["message"]


async def test_ordinary_identifiers_still_log_in(hdb: Harness) -> None:
    await make_user(hdb)
    for login_id in ("test@aritaone.com", " OZFQkAz5\n", "+85268098227"):
        body = {"loginID": login_id, "password": "PasghWgf", "deviceToken": "1234567890"}
        assert (await hdb.client.post(f"{BASE}/login", json=body)).status_code == 200, login_id


async def test_sync_login_refuses_control_characters(hdb: Harness) -> None:
    client = await seed_client(hdb)
    r = await hdb.client.post("/api/auth/login", json=password_login(client, "a\u0000b", "x"))
    body = r.json()
    assert r.status_code == 422, r.text
    assert body["statusCode"] == 422 and body["field"] == "withPassword.emailOrUsername"
    assert "control characters" in body["message"]


@pytest.mark.parametrize("field", ["full_name", "email", "username"])
async def test_ui_signup_refuses_control_characters(hdb: Harness, field: str) -> None:
    page = (await hdb.client.get("/ui/signup")).text
    form = {"email": "ann@example.com", "password": "Corr3ct-Horse", "username": "ann", "full_name": "Ann"}
    form[field] = "An\u0000n" if field != "email" else "an\u0000n@example.com"
    r = await hdb.client.post("/ui/signup", data={"csrf": csrf_of(page), **form})
    assert r.status_code == 422, r.text
    assert f'id="f-{field}-error"' in r.text
    async with hdb.core.store.transaction(write=False) as tx:
        assert await tx.users.get_by_email("ann@example.com") is None


async def test_ui_login_refuses_control_characters(hdb: Harness) -> None:
    page = (await hdb.client.get("/ui/login")).text
    r = await hdb.client.post("/ui/login", data={"csrf": csrf_of(page), "login": "a\u0000b", "password": "x"})
    assert r.status_code == 422 and 'id="f-login-error"' in r.text
