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


def test_logins_of_clients_that_left_are_not_hashed(tmp_path: Path) -> None:
    with ServerProcess(tmp_path, SLOW_HASH) as server:
        with httpx.Client(timeout=30) as c:
            r = c.post(f"{server.url}/api/auth/v1/signup", json={
                "email": "queued@example.com", "password": "Queue-S3cure-9", "username": "queued",
            })
            assert r.status_code == 201, r.text
        body = json.dumps(LOGIN).encode()
        request = (
            f"POST /app/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sockets = []
        for _ in range(ABANDONED):
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(request)
            sockets.append(s)
        time.sleep(0.3)  # every request has reached the queue
        for s in sockets:
            s.close()  # the clients give up
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
