"""Logins whose clients hung up while they queued are not hashed, over a real server process.

Under overload the hashing queue is mostly such logins (clients that timed out and retried);
hashing them only delays the ones still waited for. Each queued login asks the connection, at
the head of the queue, whether its client is still there (surfaces/common.client_gone).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx

from authgate.core.passwords import HASH_BATCH
from tests.e2e.support import ServerProcess

SLOW_HASH = {
    "AUTHGATE_HASH_WORKERS": "1",
    "AUTHGATE_ARGON2_MEMORY_KIB": "32768",
    "AUTHGATE_ARGON2_TIME_COST": "32",  # ~1 s a hash here: the queue outlives the clients
    "AUTHGATE_RATE_LIMITS": "off",
}
ABANDONED = 12
LOGIN = {"loginID": "queued@example.com", "password": "Queue-S3cure-9", "deviceToken": "device-1"}


def login_statuses(server: ServerProcess) -> list[int]:
    statuses = []
    for line in server.log().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == "request" and entry.get("path") == "/app/auth/login":
            statuses.append(entry["status"])
    return statuses


def sign_up(server: ServerProcess) -> None:
    with httpx.Client(timeout=30) as c:
        r = c.post(f"{server.url}/api/auth/v1/signup", json={
            "email": "queued@example.com", "password": "Queue-S3cure-9", "username": "queued",
        })
        assert r.status_code == 201, r.text


def abandon_logins(server: ServerProcess, count: int) -> None:
    """``count`` logins sent on their own connections, which close once all have queued."""
    body = json.dumps(LOGIN).encode()
    request = (
        f"POST /app/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(request)
        sockets.append(s)
    time.sleep(0.3)  # every request has reached the queue
    for s in sockets:
        s.close()  # the clients give up


def test_logins_of_clients_that_left_are_not_hashed(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, SLOW_HASH) as server:
        sign_up(server)
        abandon_logins(server, ABANDONED)
        deadline = time.time() + 30
        while len(login_statuses(server)) < ABANDONED and time.time() < deadline:
            time.sleep(0.2)
        statuses = login_statuses(server)
        assert len(statuses) == ABANDONED, statuses
        # At most those already handed to the hashing thread (HASH_BATCH) ran; the rest were
        # dropped, unhashed, with a 503 nobody reads.
        assert statuses.count(503) >= ABANDONED - HASH_BATCH - 1, statuses
        with httpx.Client(timeout=30) as c:  # and the server still serves a client that waits
            r = c.post(f"{server.url}/app/auth/login",
                       json=LOGIN)
            assert r.status_code == 200, r.text


def test_a_full_queue_of_clients_that_left_does_not_shed_a_client_that_waits(tmp_path: Path) -> None:
    """The queue is full (AUTHGATE_HASH_QUEUE_LIMIT), but of logins whose clients hung up: a
    login that arrives now is served, and the gone ones make room for it, unhashed. Before
    docs/performance.md item 46 it was shed at once with 503 until they had each reached a slot."""
    limit = HASH_BATCH + 4
    env = {**SLOW_HASH, "AUTHGATE_ARGON2_TIME_COST": "8", "AUTHGATE_HASH_QUEUE_LIMIT": str(limit)}
    with ServerProcess(tmp_path, env) as server:
        sign_up(server)
        abandon_logins(server, limit)
        time.sleep(0.2)  # the server has seen the connections close
        with httpx.Client(timeout=30) as c:
            r = c.post(f"{server.url}/app/auth/login", json=LOGIN)
            assert r.status_code == 200, r.text
        deadline = time.time() + 30
        while len(login_statuses(server)) < limit + 1 and time.time() < deadline:
            time.sleep(0.2)
        statuses = login_statuses(server)
        assert statuses.count(503) >= limit - HASH_BATCH - 1, statuses  # made room, unhashed
