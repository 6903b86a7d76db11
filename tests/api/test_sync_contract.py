"""Sync surface against CONTRACT §1/§5 and seed 002, as an outside client would test it: the seed's
body as printed, over-long secrets at the token endpoint, strict booleans, the list query as the
contract writes it, and the headers of token responses and 401s."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import harness
from tests.api.test_sync import SYS, admin, envelope, password_login, put, user_count
from tests.conftest import Harness


# --- seed 002 step 2, verbatim ---------------------------------------------------------------------
async def test_seed_body_with_its_stray_quote_gives_the_seed_response(s: Harness) -> None:
    body = {
        "username": "cersei.lannister",
        "email": "cersei-lannister@gmail.com'",  # as the seed prints it
        "password": "C3rs3i#L4nnist3r",
        "emailVerified": True,
    }
    r = await s.client.put("/api/users/", json=body, headers=SYS)
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "cersei-lannister@gmail.com" and r.json()["emailVerified"] is True
    # step 3: the address the seed's response shows logs in
    login = password_login(s.seed_client, "cersei-lannister@gmail.com", "C3rs3i#L4nnist3r")  # type: ignore[attr-defined]
    assert (await s.client.post("/api/auth/login", json=login)).status_code == 200


@pytest.mark.parametrize("email", ["'", "\"'\"", "not-an-email'", "'a@b'", "'ce rsei@gmail.com'"])
async def test_quotes_do_not_rescue_an_invalid_email(s: Harness, email: str) -> None:
    assert envelope(await put(s, {"username": "ok.name", "email": email}), 422)["field"] == "email"
    assert await user_count(s) == 0


# --- POST /api/auth/login --------------------------------------------------------------------------
async def test_an_over_long_password_is_a_failed_login_not_a_422(s: Harness) -> None:
    """CONTRACT §1: a password longer than a legacy hash can check is a failed login, not an error."""
    await put(s, {"username": "tyrion", "password": "Imp-0f-Casterly"})
    c = s.seed_client  # type: ignore[attr-defined]
    for length in (100, 5000, 20000):
        r = await s.client.post("/api/auth/login", json=password_login(c, "tyrion", "x" * length))
        envelope(r, 401, "Invalid credentials")
        r = await s.client.post("/api/auth/login", json=password_login(c, "nobody@example.com", "x" * length))
        envelope(r, 401, "User not found")


async def test_over_long_client_credentials_are_an_invalid_client(s: Harness) -> None:
    for client in (
        {"clientId": "client-app-id", "clientSecret": "s" * 300},
        {"clientId": "c" * 300, "clientSecret": "client-app-secret"},
    ):
        r = await s.client.post("/api/auth/login", json=password_login(client, "nobody@example.com", "pw-123456"))
        envelope(r, 401, "Invalid client")


async def test_an_over_long_refresh_token_is_an_invalid_one(s: Harness) -> None:
    c = s.seed_client  # type: ignore[attr-defined]
    r = await s.client.post("/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": "r" * 600})
    envelope(r, 401, "Invalid refresh token")


async def test_token_responses_are_not_cached(s: Harness) -> None:
    await put(s, {"username": "tyrion", "password": "Imp-0f-Casterly"})
    c = s.seed_client  # type: ignore[attr-defined]
    first = await s.client.post("/api/auth/login", json=password_login(c, "tyrion", "Imp-0f-Casterly"))
    assert first.status_code == 200 and first.headers["cache-control"] == "no-store"
    refreshed = await s.client.post(
        "/api/auth/login", json={"type": "refreshToken", **c, "refreshToken": first.json()["refreshToken"]}
    )
    assert refreshed.status_code == 200 and refreshed.headers["cache-control"] == "no-store"
    app = await s.client.post("/api/auth/login", json={"type": "clientCredentials", **c})
    assert app.status_code == 200 and app.headers["cache-control"] == "no-store"


# --- 401s name their scheme ------------------------------------------------------------------------
async def test_every_401_carries_www_authenticate(pub: Harness) -> None:
    r = await pub.client.get("/api/users")
    envelope(r, 401)
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    r = await pub.client.put("/api/users", json={"username": "x.y.z"}, headers={"authorization": "Bearer a.b.c"})
    envelope(r, 401)
    assert r.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    r = await pub.client.post("/api/auth/login", json=password_login(pub.seed_client, "nobody@x.com", "pw-123456"))  # type: ignore[attr-defined]
    envelope(r, 401, "User not found")
    assert r.headers["www-authenticate"].startswith("Bearer")
    _, headers = await admin(pub)  # an admin is let through, with no challenge
    r = await pub.client.get("/api/users", headers=headers)
    assert r.status_code == 200 and "www-authenticate" not in r.headers


# --- PUT /api/users: booleans are booleans ----------------------------------------------------------
@pytest.mark.parametrize("value", ["yes", "true", "1", "false", "0", 1, 0])
@pytest.mark.parametrize("field", ["emailVerified", "isActive"])
async def test_boolean_fields_refuse_strings_and_numbers(s: Harness, field: str, value: Any) -> None:
    r = await put(s, {"username": "bool.user", field: value})
    assert envelope(r, 422)["field"] == field
    assert await user_count(s) == 0


async def test_a_deactivation_needs_a_real_false(s: Harness) -> None:
    await put(s, {"username": "bool.user", "password": "Bo0l-pass!"})
    envelope(await put(s, {"username": "bool.user", "isActive": "0"}), 422)
    r = await s.client.get("/api/users", params={"search": "bool.user"}, headers=SYS)
    assert r.json()["items"][0]["isActive"] is True


# --- GET /api/users?search=&limit=&cursor= ----------------------------------------------------------
async def test_the_list_query_as_the_contract_writes_it(s: Harness) -> None:
    for name in ("arya", "sansa"):
        assert (await put(s, {"username": name})).status_code == 200
    r = await s.client.get("/api/users?search=&limit=&cursor=", headers=SYS)
    assert r.status_code == 200, r.text
    assert [u["username"] for u in r.json()["items"]] == ["arya", "sansa"] and r.json()["nextCursor"] is None
    r = await s.client.get("/api/users?limit=1", headers=SYS)
    assert len(r.json()["items"]) == 1 and r.json()["nextCursor"]
    assert envelope(await s.client.get("/api/users?limit=abc", headers=SYS), 422)["field"] == "limit"
    assert envelope(await s.client.get("/api/users?limit=0", headers=SYS), 422)["field"] == "limit"
    r = await s.client.get("/api/admin/audit?limit=&cursor=", headers=SYS)
    assert r.status_code == 200 and len(r.json()["items"]) >= 2


async def test_search_matches_underscores_and_percent_signs_as_themselves(make_harness: Any) -> None:
    """LIKE's wildcards in the search text are literal: ``bmp_k`` finds ``bmp_kfayy`` (they were
    dropped, so it found nothing), and ``_`` alone finds only names holding one (it found all)."""
    for backend in ("sqlite", "postgres"):
        h = await harness(make_harness, backend=backend)
        for name in ("bmp_kfayy", "bmpxkfayy", "plain"):
            assert (await put(h, {"username": name})).status_code == 200
        for search, found in (("bmp_k", ["bmp_kfayy"]), ("_", ["bmp_kfayy"]), ("%", []), ("\\", []),
                              ("BMP", ["bmp_kfayy", "bmpxkfayy"])):
            r = await h.client.get("/api/users", params={"search": search}, headers=SYS)
            assert [u["username"] for u in r.json()["items"]] == found, (backend, search, r.text)


@pytest.mark.parametrize("field", ["firstName", "lastName", "gender"])
async def test_control_characters_in_synced_text_are_422_on_both_backends(
    make_harness: Any, field: str
) -> None:
    """PostgreSQL cannot store a NUL: every text field of PUT /api/users refuses control characters
    (core/flows/sync._text), naming the field, instead of a 500 from the database."""
    for backend in ("sqlite", "postgres"):
        h = await harness(make_harness, backend=backend)
        r = await h.client.put("/api/users", json={"username": "nul.probe", field: "a\u0000b"}, headers=SYS)
        assert r.status_code == 422, (backend, r.text)
        assert r.json()["field"] == field and "control characters" in r.json()["message"]


async def test_hostile_ids_cursors_and_search_text_are_404_or_422_not_500(make_harness: Any) -> None:
    """"²" passes str.isdigit but not int(); 20 digits pass int() but not a 64-bit column; a NUL
    is refused by PostgreSQL even in a LIKE (the eleventh session's audit: each was a 500)."""
    for backend in ("sqlite", "postgres"):
        h = await harness(make_harness, backend=backend)
        for path in ("/api/users/%C2%B2", "/api/users/99999999999999999999"):
            assert (await h.client.get(path, headers=SYS)).status_code == 404, (backend, path)
        assert (await h.client.delete("/api/users/99999999999999999999", headers=SYS)).status_code == 404
        assert (await h.client.post("/api/users/%C2%B2/unlock", headers=SYS)).status_code == 404
        for query, field in (("userId=%C2%B2", "userId"), ("userId=99999999999999999999", "userId"),
                             ("type=a%00b", "type")):
            r = await h.client.get(f"/api/admin/audit?{query}", headers=SYS)
            assert r.status_code == 422 and envelope(r, 422)["field"] == field, (backend, query, r.text)
        for query, field in (("cursor=wrI", "cursor"), ("search=a%00b", "search")):
            r = await h.client.get(f"/api/users?{query}", headers=SYS)
            assert r.status_code == 422 and envelope(r, 422)["field"] == field, (backend, query, r.text)
