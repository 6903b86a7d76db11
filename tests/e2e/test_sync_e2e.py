"""Seed 002 against one real ``authgate serve --internal-port`` process: the public listener ignores
``x-user-ctx`` (as behind an API gateway that strips it), the internal listener honours it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from tests.e2e.support import ServerProcess

SYSTEM_CTX = base64.b64encode(json.dumps({"id": "__system", "user": "__system"}).encode()).decode()
CERSEI = {
    "username": "cersei.lannister",
    "email": "cersei-lannister@gmail.com",
    "password": "C3rs3i#L4nnist3r",
    "emailVerified": True,
}


def test_public_listener_ignores_x_user_ctx_and_internal_honours_it(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, internal=True)
    server.cli("migrate")
    client = server.cli("clients", "create", "--name", "sync-e2e", "--platform", "web")
    admin = server.cli("users", "create", "--username", "ops.admin", "--password", "Adm1n-pass!", "--role", "ROLE_ADMIN")
    creds = {"clientId": client["clientId"], "clientSecret": client["clientSecret"]}
    with server.start(migrate=False), httpx.Client(timeout=10) as c:
        login = {"type": "password", **creds,
                 "withPassword": {"emailOrUsername": CERSEI["email"], "password": CERSEI["password"]}}
        r = c.post(f"{server.url}/api/auth/login", json=login)
        assert r.json() == {"statusCode": 401, "error": "Unauthorized", "message": "User not found"}

        # the same header, two listeners of one process
        r = c.put(f"{server.url}/api/users/", json=CERSEI, headers={"x-user-ctx": SYSTEM_CTX})
        assert r.status_code == 401 and r.json()["statusCode"] == 401
        r = c.put(f"{server.internal_url}/api/users/", json=CERSEI, headers={"x-user-ctx": SYSTEM_CTX})
        assert r.status_code == 200, r.text
        assert r.json()["createdBy"] == "__system" and "password" not in r.json()
        user_id = r.json()["id"]

        # a malformed context is refused where it counts, and ignored where it does not
        assert c.get(f"{server.internal_url}/api/users/{user_id}", headers={"x-user-ctx": "%%%"}).status_code == 400
        assert c.get(f"{server.url}/api/users/{user_id}", headers={"x-user-ctx": "%%%"}).status_code == 401

        # the synced user logs in on the public listener
        r = c.post(f"{server.url}/api/auth/login", json=login)
        assert r.status_code == 200 and r.json()["user"]["id"] == user_id

        # public access with an admin Bearer; the admin is recorded
        admin_login = {"type": "password", **creds,
                       "withPassword": {"emailOrUsername": "ops.admin", "password": "Adm1n-pass!"}}
        token = c.post(f"{server.url}/api/auth/login", json=admin_login).json()["accessToken"]
        auth = {"authorization": f"Bearer {token}"}
        r = c.put(f"{server.url}/api/users", json={"username": "cersei.lannister", "firstName": "Cersei"},
                  headers={**auth, "x-user-ctx": SYSTEM_CTX})
        assert r.status_code == 200 and r.json()["updatedBy"] == admin["id"]

        # delete on the internal listener: the user can no longer log in anywhere
        assert c.delete(f"{server.internal_url}/api/users/{user_id}", headers={"x-user-ctx": SYSTEM_CTX}).status_code == 200
        r = c.post(f"{server.url}/api/auth/login", json=login)
        assert r.status_code == 401 and r.json()["message"] == "User not found"
    log = server.log()
    assert CERSEI["password"] not in log and "Adm1n-pass!" not in log and token not in log
