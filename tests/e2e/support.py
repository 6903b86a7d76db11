"""Real processes and real peers for end-to-end tests: an ``authgate serve`` subprocess, an SMTP
server (aiosmtpd) and an HTTP sink (SMS webhooks, provider emulators) on loopback."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SmtpSink:
    """aiosmtpd on loopback; collects every message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[Message] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                sink.messages.append(message_from_bytes(envelope.content))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()

    def wait_for(self, to: str, timeout: float = 10.0, after: int = 0) -> str:
        """The text body of the first message to ``to`` (after the first ``after`` messages)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for msg in self.messages[after:]:
                if to.lower() in str(msg["To"]).lower():
                    payload = msg.get_payload(decode=True)
                    return payload.decode() if isinstance(payload, bytes) else str(msg.get_payload())
            time.sleep(0.05)
        raise AssertionError(f"no mail to {to} within {timeout}s")

    @staticmethod
    def code_in(text: str) -> str:
        match = re.search(r"\b(\d{4,8})\b", text)
        assert match, text
        return match.group(1)


class HttpSink:
    """A loopback HTTP server recording requests; ``status`` and ``delay`` make it fail or hang."""

    def __init__(
        self, status: int = 200, delay: float = 0.0, reply: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = status
        self.delay = delay
        self.reply = reply if reply is not None else {"ok": True}
        self.headers = dict(headers or {})  # extra response headers (e.g. Cache-Control)
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                sink.requests.append(
                    {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
                )
                if sink.delay:
                    time.sleep(sink.delay)
                payload = json.dumps(sink.reply).encode()
                self.send_response(sink.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for name, value in sink.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = _handle  # noqa: N815

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests if r["body"]]

    def __enter__(self) -> HttpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class ServerProcess:
    """``authgate migrate`` then ``authgate serve`` as a real process on loopback."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None, internal: bool = False) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.internal_port = free_port() if internal else None
        base = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
        base.update(
            {
                "AUTHGATE_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'authgate.db'}",
                "AUTHGATE_HOST": "127.0.0.1",
                "AUTHGATE_PORT": str(self.port),
                "AUTHGATE_ISSUER": f"http://127.0.0.1:{self.port}",
                "AUTHGATE_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
                "AUTHGATE_REDIRECT_ALLOWLIST": "https://app.example.com",
            }
        )
        if self.internal_port:
            base["AUTHGATE_INTERNAL_PORT"] = str(self.internal_port)
        base.update(env or {})
        self.env = base
        self.log_path = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def cli(self, *args: str) -> Any:
        """Run an ``authgate`` command with this server's settings; its JSON output."""
        out = subprocess.run(
            [str(BIN / "authgate"), *args], env=self.env, cwd=self.workdir, capture_output=True, timeout=60
        )
        assert out.returncode == 0, out.stderr.decode()
        return json.loads(out.stdout.decode().strip().splitlines()[-1])

    def start(self, migrate: bool = True, timeout: float = 20.0) -> ServerProcess:
        if migrate:
            self.cli("migrate")
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "authgate"), "serve"], env=self.env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not up: {self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            return self  # already started (``with server.start(migrate=False):``)
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def have(binary: str) -> bool:
    return shutil.which(binary) is not None
