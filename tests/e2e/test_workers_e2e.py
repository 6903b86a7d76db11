"""``authgate serve --workers 2`` as a real process: connections are spread over both workers
(SO_REUSEPORT sockets of their own, src/authgate/server.py), both ports answer, and a worker
that dies is replaced by the supervisor and takes connections again."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.support import ServerProcess

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SO_REUSEPORT balancing is Linux's")

CONNECTIONS = 40


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def established_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "01":
                inodes.add(fields[9])
    return inodes


def connections_per_worker(server: ServerProcess, workers: list[int]) -> dict[int, int]:
    inodes = established_inodes(server.port)
    counts = {}
    for pid in workers:
        held = 0
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                held += 1
        counts[pid] = held
    return counts


def open_connections(port: int, n: int) -> list[socket.socket]:
    """n kept-alive connections opened in one burst (as a client pool or a load balancer opens
    them), each having had one answer (so a worker has accepted it)."""
    opened = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(n)]
    for s in opened:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    for s in opened:
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    return opened


def _holds_a_socket(pid: int) -> bool:
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:") for fd in os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:  # the process (or one of its fds) went away while we looked
        return False


def workers_of(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    # The supervisor's children that serve (multiprocessing may add a short-lived helper process
    # that holds no socket, and may be gone by the time its fds are read).
    return [pid for pid in children(server.proc.pid) if _holds_a_socket(pid)]


def test_two_workers_share_the_connections_and_survive_a_crash(tmp_path: Path) -> None:
    env = {"AUTHGATE_WORKERS": "2", "AUTHGATE_LOG_LEVEL": "warning"}
    with ServerProcess(tmp_path, env, internal=True) as server:
        deadline = time.time() + 20
        while len(workers_of(server)) < 2 and time.time() < deadline:
            time.sleep(0.2)
        workers = workers_of(server)
        assert len(workers) == 2, workers
        opened = open_connections(server.port, CONNECTIONS)
        counts = connections_per_worker(server, workers)
        assert sum(counts.values()) == CONNECTIONS, counts
        # The kernel hashes each connection to one worker's socket: a 32-8 split of 40 is already
        # a 1-in-10,000 event; one worker taking (nearly) all of them was the shared socket's habit.
        assert min(counts.values()) >= 8, counts
        for s in opened:
            s.close()
        assert httpx.get(f"{server.internal_url}/healthz", timeout=5).status_code == 200

        # A worker killed outright: the supervisor starts another, and it takes connections.
        os.kill(workers[0], signal.SIGKILL)
        deadline = time.time() + 30
        while time.time() < deadline:
            now = workers_of(server)
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.2)
        now = workers_of(server)
        assert len(now) == 2 and workers[0] not in now, now
        deadline = time.time() + 30
        while time.time() < deadline:  # until the new worker listens (a burst may start before it does)
            opened = open_connections(server.port, CONNECTIONS)
            counts = connections_per_worker(server, now)
            for s in opened:
                s.close()
            if min(counts.values()) >= 8:
                break
            time.sleep(0.5)
        assert min(counts.values()) >= 8, counts

