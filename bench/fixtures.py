"""What the workloads need before the load: users, tokens, a CSRF token, a client app, and a
probe of each endpoint (a 404 means the surface is not built yet: the workload is skipped)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench import seed
from bench.server import Server

LOGIN = "/app/auth/login"
SIGNUP = "/api/auth/v1/signup"
ME = "/api/v1/auth/me"
INFO = "/app/auth/info"
REFRESH = "/api/v1/auth/refresh"
CHECK = "/api/customers/check-username/{username}"
CSRF = "/api/auth/csrf-token"
HEALTHZ = "/healthz"
PROBE_PATIENCE_S = 10.0


@dataclass
class Probe:
    status: int
    body: str

    @property
    def missing(self) -> bool:
        return self.status == 404

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


@dataclass
class Tokens:
    access: str
    refresh: str


@dataclass
class Fixtures:
    """State shared by the workloads of one run."""

    server: Server
    users: int = 0
    sessions: list[Tokens] = field(default_factory=list)
    token_source: str = ""
    csrf: str | None = None
    client: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, timeout=30.0)

    def probe(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None,
        patience: float = PROBE_PATIENCE_S,
    ) -> Probe:
        """One request; a 503 (shed: the hashing queue is full) is asked again every 0.1 s for
        up to ``patience`` seconds, as a client that retries would. Right after W7's flood a
        probe that arrived before the server had seen the flood's connections close was shed
        and skipped the next workload (docs/performance.md, items 45 and 46)."""
        deadline = time.monotonic() + patience
        with self.http() as c:
            while True:
                r = c.request(method, path, json=json_body, headers=headers)
                if r.status_code != 503 or time.monotonic() >= deadline:
                    return Probe(r.status_code, r.text)
                time.sleep(0.1)

    # --- users -----------------------------------------------------------------------------------
    def signup_users(self, count: int) -> Probe | None:
        """Create bench users 1..count through the form surface; the failing probe if one fails."""
        with self.http() as c:
            for i in range(self.users + 1, count + 1):
                body = {
                    "email": seed.email(i), "name": "Bench User", "username": seed.username(i),
                    "password": seed.PASSWORD, "dont-login": True,
                }
                r = c.post(SIGNUP, json=body)
                if r.status_code != 201:
                    return Probe(r.status_code, r.text)
                self.users = i
        return None

    # --- tokens ----------------------------------------------------------------------------------
    def open_sessions(self, count: int) -> None:
        """``count`` sessions of bench users (round robin): by POST /app/auth/login when the app
        surface answers, else minted through the core (python -m bench.mint)."""
        count = max(1, count)
        first = self.probe("POST", LOGIN, json_body=login_body(1, seed.PASSWORD))
        if first.status == 200:
            self.token_source = f"POST {LOGIN}"
            self.sessions.append(tokens_from(first.json()))
            with self.http() as c:
                for k in range(1, count):
                    r = c.post(LOGIN, json=login_body(k % max(1, self.users) + 1, seed.PASSWORD))
                    if r.status_code == 200:
                        self.sessions.append(tokens_from(r.json()))
            return
        minted = self.server.python("bench.mint", "--username", seed.username(1), "--count", str(count), pin=False)
        self.sessions = [Tokens(t["accessToken"], t["refreshToken"]) for t in minted]
        self.token_source = "minted through the core"
        self.notes.append(
            f"tokens minted through the core: POST {LOGIN} answered {first.status}"
        )

    @property
    def access(self) -> str:
        return self.sessions[0].access

    def csrf_token(self) -> str | None:
        if self.csrf is None:
            p = self.probe("GET", CSRF, headers={"Authorization": f"Bearer {self.access}"})
            doc = p.json() if p.status == 200 else None
            self.csrf = doc.get("csrfToken") if isinstance(doc, dict) else None
        return self.csrf

    def client_app(self) -> dict[str, Any]:
        if self.client is None:
            self.client = self.server.cli("clients", "create", "--name", "bench", "--platform", "web")
        return self.client


def login_body(i: int, password: str) -> dict[str, str]:
    return {"loginID": seed.username(i), "password": password, "deviceToken": "bench-device"}


def tokens_from(doc: Any) -> Tokens:
    """Seed 001's envelope puts the tokens under ``data``; accept them at the top level too."""
    data = doc.get("data") if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else doc
    if not isinstance(data, dict) or "accessToken" not in data:
        raise ValueError(f"no accessToken in the login response: {str(doc)[:300]}")
    return Tokens(str(data["accessToken"]), str(data.get("refreshToken") or ""))
