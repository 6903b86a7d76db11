"""deploy/nginx.conf in front of two real nodes on one PostgreSQL and one Redis: TLS at the edge,
round robin across both nodes, a login through it that holds on either node, and an
X-Forwarded-For that a client cannot forge. Outside CI it skips when nginx, PostgreSQL or Redis
is missing; under CI=true it fails instead (``apt-get install -y nginx-light``)."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import ipaddress
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import CI, REDIS_URL, need, postgres_url
from tests.e2e.support import ServerProcess, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PASSWORD = "Corr3ct-Horse"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found:
        return found
    if CI:
        pytest.fail("nginx is required under CI=true (apt-get install -y nginx-light)")
    pytest.skip("nginx is not installed (apt-get install -y nginx-light)")


def load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location("render_nginx", DEPLOY / "render_nginx.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost, and its key (the test trusts exactly this one)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "tls.crt", directory / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


class Nginx:
    """nginx in the foreground with the rendered site config inside a minimal main config."""

    def __init__(self, binary: str, workdir: Path, site: str) -> None:
        self.binary = binary
        self.workdir = workdir
        (workdir / "authgate.conf").write_text(site)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must reach the 0700 test dir
        temp = "\n".join(f"    {kind}_temp_path {workdir}/{kind};" for kind in
                         ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (workdir / "nginx.conf").write_text(
            f"{user}worker_processes 1;\npid {workdir}/nginx.pid;\nerror_log {workdir}/error.log warn;\n"
            f"events {{ worker_connections 256; }}\n"
            f"http {{\n    access_log {workdir}/access.log;\n{temp}\n    include {workdir}/authgate.conf;\n}}\n"
        )
        self.args = [binary, "-p", str(workdir), "-e", str(workdir / "error.log"), "-c", str(workdir / "nginx.conf")]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        check = subprocess.run([*self.args, "-t"], check=False, capture_output=True, timeout=20)
        assert check.returncode == 0, check.stderr.decode()
        self.proc = subprocess.Popen([*self.args, "-g", "daemon off;"], stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while time.time() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read().decode() if self.proc.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("nginx did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@dataclass
class Edge:
    url: str
    http_port: int
    nodes: list[ServerProcess]
    cert: Path


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Edge]:
    binary = nginx_binary()
    db = asyncio.run(postgres_url())  # migrated and emptied, as for the `hdb` tests
    redis = need(REDIS_URL, "AUTHGATE_TEST_REDIS_URL")
    https_port, http_port = free_port(), free_port()
    edge = f"https://127.0.0.1:{https_port}"
    shared = {
        "AUTHGATE_DATABASE_URL": db,
        "AUTHGATE_REDIS_URL": redis,
        "AUTHGATE_SECRET_KEY": secrets.token_urlsafe(48),
        "AUTHGATE_TRUSTED_PROXIES": "127.0.0.1",
        "AUTHGATE_ISSUER": edge,
        "AUTHGATE_PUBLIC_URL": edge,
        "AUTHGATE_COOKIE_SECURE": "true",
    }
    nodes = []
    try:
        for i in range(2):
            workdir = tmp_path / f"node{i}"
            workdir.mkdir()
            nodes.append(ServerProcess(workdir, {**shared, "AUTHGATE_NODE_ID": str(i + 1)}).start(migrate=i == 0))
        cert, key = self_signed(tmp_path)
        site = load_renderer().render(
            (DEPLOY / "nginx.conf").read_text(),
            server_name="127.0.0.1 localhost",
            nodes=[f"127.0.0.1:{n.port}" for n in nodes],
            certificate=str(cert), certificate_key=str(key),
            http_listen=f"127.0.0.1:{http_port}", https_listen=f"127.0.0.1:{https_port}",
        )
        edge_dir = tmp_path / "nginx"
        edge_dir.mkdir()
        nginx = Nginx(binary, edge_dir, site)
        nginx.start(https_port)
        try:
            yield Edge(edge, http_port, nodes, cert)
        finally:
            nginx.stop()
    finally:
        for node in nodes:
            node.stop()


def served_by(nodes: list[ServerProcess], request_id: str) -> int:
    """Which node logged the request with this id (nginx sends its $request_id to the node)."""
    deadline = time.time() + 5
    while time.time() < deadline:
        hits = [i for i, n in enumerate(nodes) if request_id in n.log()]
        if hits:
            assert len(hits) == 1
            return hits[0]
        time.sleep(0.05)
    raise AssertionError(f"no node logged {request_id}")


def test_nginx_balances_two_nodes_and_a_login_holds_on_both(cluster: Edge) -> None:
    edge, nodes, cert = cluster.url, cluster.nodes, cluster.cert
    tls = ssl.create_default_context(cafile=str(cert))
    email = f"edge{secrets.token_hex(4)}@example.com"
    with httpx.Client(base_url=edge, verify=tls, timeout=10) as c:
        r = c.get("/healthz")
        assert r.status_code == 200 and r.headers["strict-transport-security"].startswith("max-age=")
        assert "server" not in r.headers or "nginx/" not in r.headers["server"]
        assert c.get("/metrics").status_code == 404  # not exposed at the edge
        assert {served_by(nodes, c.get("/healthz").headers["x-request-id"]) for _ in range(6)} == {0, 1}

        # sign up through the API, then log in through the hosted pages (CSRF cookie + form)
        r = c.post("/api/auth/v1/signup", json={"email": email, "username": email, "password": PASSWORD,
                                                "dont-login": True})
        assert r.status_code == 201, r.text
        page = c.get("/ui/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        r = c.post("/ui/login", data={"csrf": token, "login": email, "password": PASSWORD},
                   headers={"x-forwarded-for": "198.51.100.23"})
        assert r.status_code == 303, r.text
        cookie = next(v for v in r.headers.get_list("set-cookie") if v.startswith("qt-auth="))
        assert "Secure" in cookie and "HttpOnly" in cookie
        # the session is honoured whichever node answers
        seen = set()
        for _ in range(6):
            r = c.get("/ui/account")
            assert r.status_code == 200 and email in r.text
            seen.add(served_by(nodes, r.headers["x-request-id"]))
        assert seen == {0, 1}
        # the address a client claimed is not believed: nginx replaced it with the peer it saw
        assert "198.51.100.23" not in r.text and "127.0.0.1" in r.text

    r = httpx.get(f"http://127.0.0.1:{cluster.http_port}/ui/login", timeout=5)
    assert r.status_code == 301 and r.headers["location"].startswith("https://")


def test_renderer_refuses_unsafe_values() -> None:
    renderer = load_renderer()
    template = (DEPLOY / "nginx.conf").read_text()
    ok = renderer.render(template, server_name="auth.example.com", nodes=["10.0.0.11:8000", "10.0.0.12:8000"],
                         certificate="/etc/tls/fullchain.pem", certificate_key="/etc/tls/privkey.pem")
    assert ok.count("server 10.0.0.1") == 2 and not re.search(r"\{\{\w+\}\}", ok)
    for bad in ({"server_name": "x; include /etc/passwd"}, {"nodes": ["10.0.0.11"]}, {"nodes": []}):
        args = {"server_name": "a.example", "nodes": ["10.0.0.11:8000"], "certificate": "/c", "certificate_key": "/k"}
        args.update(bad)
        with pytest.raises(ValueError):
            renderer.render(template, **args)


def test_compose_and_systemd_units_describe_the_same_cluster() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "node1", "node2", "nginx"} <= set(services)
    for name in ("node1", "node2"):
        env = services[name]["environment"]
        assert env["AUTHGATE_DATABASE_URL"].startswith("postgresql+asyncpg://")
        assert env["AUTHGATE_REDIS_URL"].startswith("redis://") and env["AUTHGATE_TRUSTED_PROXIES"]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    unit = (DEPLOY / "systemd" / "authgate.service").read_text()
    assert "ExecStart=" in unit and " serve " in unit and "EnvironmentFile=" in unit
    timer = (DEPLOY / "systemd" / "authgate-keys-rotate.timer").read_text()
    assert "OnCalendar=" in timer
    assert "keys rotate" in (DEPLOY / "systemd" / "authgate-keys-rotate.service").read_text()
