"""``authgate users import FILE`` (and the client commands): JSON lines in the PUT /api/users shape,
bad lines reported with their number and skipped, a JSON summary, exit 1 when any line failed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import bcrypt
import pytest
from typer.testing import CliRunner

from authgate.cli import cli
from authgate.config import Settings
from authgate.container import build
from authgate.core.flows import login
from authgate.core.model import RequestContext
from tests.conftest import sqlite_url

FAST_ENV = {"AUTHGATE_ARGON2_MEMORY_KIB": "1024", "AUTHGATE_ARGON2_TIME_COST": "1"}


LOG_LEVELS: list[str] = []


@pytest.fixture
def db(sqlite_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = sqlite_url(sqlite_template, tmp_path)
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name, value in {"AUTHGATE_DATABASE_URL": url, **FAST_ENV}.items():
        monkeypatch.setenv(name, value)
    # The CLI configures logging for its process; here that would bind the process-wide loggers to
    # CliRunner's stdout, closed after each invoke, and break every later test that logs.
    LOG_LEVELS.clear()
    monkeypatch.setattr("authgate.logging.configure", lambda level="info", *a, **k: LOG_LEVELS.append(level))
    return url


def run(*args: str) -> tuple[int, Any, str]:
    result = CliRunner().invoke(cli, list(args))
    lines = result.stdout.strip().splitlines()
    return result.exit_code, json.loads(lines[-1]) if lines else None, result.stderr


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(url.split("///", 1)[1]) as conn:
        return conn.execute(sql).fetchall()


def write_lines(path: Path, items: list[Any]) -> Path:
    path.write_text("\n".join(i if isinstance(i, str) else json.dumps(i) for i in items) + "\n")
    return path


def test_import_generated_file_with_bad_lines(db: str, tmp_path: Path) -> None:
    seed_hash = bcrypt.hashpw(b"Imp0rted-pass", bcrypt.gensalt(4)).decode()
    items: list[Any] = []
    for i in range(120):
        item: dict[str, Any] = {"username": f"user.{i:03d}", "email": f"user{i}@example.com", "emailVerified": i % 2 == 0}
        if i < 3:
            item["password"] = f"Plain-pass-{i}"
        elif i < 10:
            item["password"] = seed_hash
        items.append(item)
    bad = {
        121: "{not json",
        122: {"username": "bad.email", "email": "cersei-lannister@gmail.com'"},
        123: {"username": "dup.email", "email": "user5@example.com"},  # another user's email
        124: {"username": "bad.role", "roles": ["ROLE_GOD"]},
        125: ["a", "list"],
        126: {"username": "weak.pass", "password": "123"},
    }
    items += [bad[n] for n in sorted(bad)]
    items.append("")  # blank lines are skipped, not errors (line 127)
    items.append({"username": "user.001", "firstName": "Updated", "roles": ["ROLE_ADMIN"]})  # line 128
    items.append({"email": "fresh@example.com"})  # line 129: username derived from the email
    path = write_lines(tmp_path / "users.jsonl", items)

    code, summary, _ = run("users", "import", str(path), "--batch-size", "50")
    assert code == 1  # some lines were rejected
    assert LOG_LEVELS == ["warning"]  # one audit log line per user would bury the summary
    assert summary["created"] == 121 and summary["updated"] == 1
    assert [f["line"] for f in summary["failed"]] == sorted(bad)
    by_line = {f["line"]: f for f in summary["failed"]}
    assert by_line[121]["code"] == "malformed_json"
    assert by_line[122]["code"] == "invalid_field" and "email" in by_line[122]["error"]
    assert by_line[123]["code"] == "identifier_taken" and "email" in by_line[123]["error"]
    assert "roles" in by_line[124]["error"] and "body" in by_line[125]["error"]
    assert "password" in by_line[126]["error"]
    assert "Plain-pass" not in json.dumps(summary) and "123" not in json.dumps(by_line[126])

    assert rows(db, "SELECT count(*) FROM users")[0][0] == 121
    assert rows(db, "SELECT first_name, roles, created_by, updated_by FROM users WHERE username='user.001'") == [
        ("Updated", '["ROLE_ADMIN"]', "__import", "__import")
    ]
    assert rows(db, "SELECT username FROM users WHERE email='fresh@example.com'") == [("fresh",)]
    assert rows(db, "SELECT email_verified FROM users WHERE username='user.004'") == [(1,)]
    assert rows(db, "SELECT count(*) FROM audit_events WHERE type='user.synced' AND actor='__import'")[0][0] == 121

    async def logins() -> None:
        container = await build(Settings(_env_file=None))  # type: ignore[call-arg]
        try:
            ctx = RequestContext(ip="198.51.100.1")
            await login.check_password(container.core, ctx, "user.002", "Plain-pass-2")
            user = await login.check_password(container.core, ctx, "user7@example.com", "Imp0rted-pass")
            assert user.password_hash and user.password_hash.startswith("$argon2id$")
        finally:
            await container.close()

    asyncio.run(logins())

    # the same file again: nothing new is created; unchanged lines are counted as updated
    code, again, _ = run("users", "import", str(path))
    assert code == 1 and again["created"] == 0 and again["updated"] == 122
    assert rows(db, "SELECT count(*) FROM users")[0][0] == 121


def test_lines_of_one_batch_apply_in_file_order(db: str, tmp_path: Path) -> None:
    items = [
        {"username": "arya", "email": "arya@example.com"},  # 1 created (bulk)
        {"username": "arya", "firstName": "Arya"},  # 2 updates line 1's user
        {"email": "arya@example.com", "lastName": "Stark"},  # 3 same user, found by email
        {"username": "nymeria", "email": "arya@example.com"},  # 4 409: arya holds it
        {"username": "arya", "email": "arya@winterfell.example.com"},  # 5 frees the old email
        {"username": "needle", "email": "arya@example.com"},  # 6 created with the freed email
        {"username": "other", "email": "other@example.com"},  # 7 created (bulk)
    ]
    path = write_lines(tmp_path / "order.jsonl", items)
    code, summary, _ = run("users", "import", str(path))
    assert code == 1
    assert (summary["created"], summary["updated"]) == (3, 3)
    assert [(f["line"], f["code"]) for f in summary["failed"]] == [(4, "identifier_taken")]
    assert rows(db, "SELECT username, email, first_name, last_name FROM users ORDER BY username") == [
        ("arya", "arya@winterfell.example.com", "Arya", "Stark"),
        ("needle", "arya@example.com", None, None),
        ("other", "other@example.com", None, None),
    ]
    # an existing user touched three times in one batch, by email then by name: later lines must
    # see the earlier lines' changes, not the row as the batch first read it
    path = write_lines(tmp_path / "twice.jsonl", [
        {"email": "other@example.com", "firstName": "Some"},
        {"email": "other@example.com", "lastName": "Else"},  # re-read: its key was claimed above
        {"username": "other", "phoneNumber": "+85261234567"},  # same user by another key
    ])
    code, summary, _ = run("users", "import", str(path))
    assert code == 0 and summary["updated"] == 3
    assert rows(db, "SELECT first_name, last_name, phone FROM users WHERE username='other'") == [
        ("Some", "Else", "+85261234567")
    ]


def test_import_of_a_clean_file_exits_0(db: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "ok.jsonl", [{"username": f"ok.{i}"} for i in range(5)])
    code, summary, _ = run("users", "import", str(path))
    assert code == 0 and summary == {"created": 5, "updated": 0, "failed": []}


def test_import_of_a_missing_file_is_a_clear_error(db: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["users", "import", str(tmp_path / "nope.jsonl")])
    assert result.exit_code == 2 and "cannot read" in result.stderr


def test_clients_disable_and_rotate_secret(db: str) -> None:
    code, made, _ = run("clients", "create", "--name", "billing")
    assert code == 0
    code, rotated, _ = run("clients", "rotate-secret", "--client-id", made["clientId"])
    assert code == 0 and rotated["clientId"] == made["clientId"]
    assert rotated["clientSecret"] and rotated["clientSecret"] != made["clientSecret"]
    (secret_hash,) = rows(db, f"SELECT secret_hash FROM client_apps WHERE client_id='{made['clientId']}'")[0]
    assert rotated["clientSecret"] not in secret_hash  # stored hashed
    code, disabled, _ = run("clients", "disable", "--client-id", made["clientId"])
    assert code == 0 and disabled["enabled"] is False
    assert rows(db, f"SELECT enabled FROM client_apps WHERE client_id='{made['clientId']}'") == [(0,)]
    result = CliRunner().invoke(cli, ["clients", "disable", "--client-id", "cl_nope"])
    assert result.exit_code == 1 and "not_found" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_batch_path_on_both_backends(make_harness: Any, backend: str) -> None:
    from authgate.core.flows.sync import import_lines

    h = await make_harness(backend, argon2_memory_kib=1024, argon2_time_cost=1)
    lines = [json.dumps(i) for i in (
        {"username": "arya", "email": "arya@example.com", "password": "Needl3-pass"},
        {"username": "arya", "firstName": "Arya"},
        {"username": "nymeria", "email": "ARYA@example.com"},
        {"username": "needle", "phoneNumber": "+85261234567", "roles": ["ROLE_MODERATOR"]},
    )]
    summary = await import_lines(h.core, lines, batch_size=10)
    assert (summary.created, summary.updated) == (2, 1)
    assert [(f["line"], f["code"]) for f in summary.failed] == [(3, "identifier_taken")]
    again = await import_lines(h.core, lines, batch_size=10)
    assert (again.created, again.updated, len(again.failed)) == (0, 3, 1)
    async with h.core.store.transaction(write=False) as tx:
        arya = await tx.users.get_by_username("arya")
        needle = await tx.users.get_by_username("needle")
    assert arya is not None and arya.first_name == "Arya" and arya.created_by == "__import"
    assert needle is not None and needle.roles == ["ROLE_MODERATOR"] and needle.roles_set
    user = await login.check_password(h.core, RequestContext(ip="198.51.100.2"), "arya@example.com", "Needl3-pass")
    assert user.id == arya.id
