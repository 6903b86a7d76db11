"""Settings validation (production is strict) and the CLI's JSON output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from authgate.cli import cli
from authgate.config import Settings

STRONG = "k3Y-" + "x9Qz" * 4 + "abcdefghijklmnop"


def prod(**kw: object) -> Settings:
    base = dict(env="production", secret_key=STRONG, issuer="https://auth.example.com",
                public_url="https://auth.example.com", email_provider="smtp", smtp_url="smtp://mail:25",
                sms_provider="webhook", sms_webhook_url="https://sms.example.com/hook")
    base.update(kw)
    return Settings(_env_file=None, **base)  # type: ignore[arg-type]


def test_production_accepts_a_strict_configuration() -> None:
    s = prod()
    assert s.secure_cookies and not s.dev


@pytest.mark.parametrize(
    "change",
    [
        {"secret_key": None},
        {"secret_key": "changeme"},
        {"secret_key": "a" * 40},
        {"email_provider": "console"},
        {"rate_limits": "off"},
        {"cookie_secure": False},
        {"issuer": "http://auth.example.com"},
    ],
)
def test_production_refuses_weak_settings(change: dict) -> None:
    with pytest.raises(ValidationError):
        prod(**change)


def test_dev_defaults_need_nothing() -> None:
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.dev and s.resolved_email_provider == "console" and not s.secure_cookies


def test_lists_from_comma_separated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_REDIRECT_ALLOWLIST", "https://a.example.com, https://b.example.com")
    monkeypatch.setenv("AUTHGATE_TRUSTED_PROXIES", "10.0.0.0/8")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert s.redirect_allowlist == ["https://a.example.com", "https://b.example.com"]
    assert s.trusted_proxies == ["10.0.0.0/8"]


@pytest.mark.parametrize("value", ['["https://app.example.com"]', "app.example.com", "https://app.example.com/path",
                                   "ftp://app.example.com", "https://app.example.com:99999"])
def test_a_redirect_allowlist_of_anything_but_origins_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """A JSON list was taken as one origin that matches nothing: every redirect refused, silently."""
    monkeypatch.setenv("AUTHGATE_REDIRECT_ALLOWLIST", value)
    with pytest.raises(ValueError, match="not an origin"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_cli_migrate_users_clients_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    runner = CliRunner()
    assert runner.invoke(cli, ["migrate"]).exit_code == 0
    out = runner.invoke(cli, ["users", "create", "--username", "root.admin", "--email", "root@example.com",
                              "--password", "S3cure-pass", "--role", "ROLE_ADMIN"])
    assert out.exit_code == 0, out.output
    user = json.loads(out.output.strip().splitlines()[-1])
    assert user["username"] == "root.admin" and user["id"].isdigit() and "ROLE_ADMIN" in user["roles"]
    dup = runner.invoke(cli, ["users", "create", "--username", "ROOT.ADMIN"])
    assert dup.exit_code == 1
    out = runner.invoke(cli, ["clients", "create", "--name", "Mobile", "--platform", "ios",
                              "--platform", "android", "--min-version", "ios=2.1.0"])
    assert out.exit_code == 0, out.output
    client = json.loads(out.output.strip().splitlines()[-1])
    assert client["clientId"] and len(client["clientSecret"]) >= 40
    assert client["platforms"] == ["android", "ios"] and client["minVersions"] == {"ios": "2.1.0"}
    bad = runner.invoke(cli, ["clients", "create", "--name", "X", "--platform", "symbian"])
    assert bad.exit_code == 1
    out = runner.invoke(cli, ["keys", "rotate"])
    assert out.exit_code == 0 and json.loads(out.output.strip().splitlines()[-1])["kid"]


def test_cli_stdout_is_one_json_object(tmp_path: Path) -> None:
    """CONTRACT §8: a script parses the whole stdout; log lines (the user's audit event) go to stderr."""
    import os
    import subprocess
    import sys

    exe = str(Path(sys.executable).parent / "authgate")
    env = {**os.environ, "AUTHGATE_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}",
           "AUTHGATE_LOG_LEVEL": "info"}

    def run(*args: str) -> dict:
        done = subprocess.run([exe, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]

    assert run("migrate")["migrated"] is True
    user = run("users", "create", "--username", "script.user", "--password", "S3cure-pass")
    assert user["username"] == "script.user"
    assert run("clients", "create", "--name", "Scripted")["clientSecret"]
    assert run("keys", "rotate")["kid"]


def test_cli_openapi_covers_the_surfaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'o.db'}")
    out = CliRunner().invoke(cli, ["openapi"])
    assert out.exit_code == 0
    doc = json.loads(out.output)
    assert "/api/auth/v1/signup" in doc["paths"] and "/healthz" in doc["paths"]


def test_invalid_settings_give_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_ENV", "production")
    out = CliRunner().invoke(cli, ["migrate"])
    assert out.exit_code == 2 and "AUTHGATE_SECRET_KEY" in out.output


def test_python_dash_m_authgate_is_the_same_command_line() -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "authgate", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "serve" in out.stdout and "migrate" in out.stdout


def test_the_console_log_escapes_control_characters_but_keeps_lines() -> None:
    """A NUL from a request path made the dev console log binary (grep refused it), and an escape
    sequence would be obeyed by a terminal; the JSON log escapes both itself."""
    from authgate.logging import _escape_controls

    event = _escape_controls(None, "info", {"path": "/api/a\x00b\x1b[31m", "body": "one\ntwo\tthree", "status": 404})
    assert event == {"path": "/api/a\\x00b\\x1b[31m", "body": "one\ntwo\tthree", "status": 404}
