"""Run uvicorn on the public port and, with ``--internal-port``, on the internal one too.

One app, one server, two sockets: a request's listener is known from the socket it arrived on
(``scope["server"]``), so ``x-user-ctx`` is honoured only on the internal port. SIGTERM drains
in-flight requests before exit (uvicorn's graceful shutdown).

With ``--workers N`` uvicorn's supervisor starts and watches the workers, and on Linux each worker
listens on sockets of its own, bound with SO_REUSEPORT, so the kernel spreads new connections
evenly over them. With one socket shared, whichever worker woke first accepted a whole burst of
connections (one of two workers held 26 of 32, or all of them), and kept-alive connections stay
where they landed. The supervisor binds the ports without listening, so no connection is queued
on a socket nobody accepts from. A port another program holds still fails at start; a second
``authgate serve --workers`` of the same OS user on the same port would join the group and share
the connections (SO_REUSEPORT's rule, as with nginx's ``reuseport``).
"""

from __future__ import annotations

import gc
import os
import socket
import sys

import uvicorn
import uvicorn.supervisors.multiprocess as uvicorn_multiprocess
from uvicorn.supervisors import Multiprocess

from authgate import logging as applog
from authgate.config import Settings


REUSE_PORT = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")  # balancing, not just sharing


def _bind(host: str, port: int, *, listen: bool = True, reuse_port: bool = False) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class _OwnSocketsProcess(uvicorn_multiprocess.Process):
    """A worker that listens on SO_REUSEPORT sockets of its own, at the addresses of the ones
    the supervisor bound (and did not listen on)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover - a child
        own = []
        for inherited in sockets or []:
            host, port = inherited.getsockname()[:2]
            own.append(_bind(host, port, reuse_port=True))
            inherited.close()
        super().target(own)


def run(settings: Settings) -> None:
    applog.configure(settings.log_level, settings.log_json)
    # Child processes rebuild Settings from the environment: pass the CLI's choices along.
    os.environ["AUTHGATE_HOST"] = settings.host
    os.environ["AUTHGATE_PORT"] = str(settings.port)
    if settings.internal_port:
        os.environ["AUTHGATE_INTERNAL_PORT"] = str(settings.internal_port)
    workers = max(1, settings.workers)
    per_worker = workers > 1 and REUSE_PORT
    ports = [settings.port] + ([settings.internal_port] if settings.internal_port else [])
    sockets = [_bind(settings.host, p, listen=not per_worker, reuse_port=per_worker) for p in ports]
    config = uvicorn.Config(
        "authgate.app:factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
        loop="auto",
        http="auto",
    )
    server = uvicorn.Server(config)
    if workers > 1:
        gc.enable()  # the supervisor has no lifespan to turn it back on (cli.serve turned it off)
        if per_worker:
            # uvicorn's supervisor makes its workers from this module-level name (start, restart
            # of a dead worker, SIGHUP, SIGTTIN); pinned uvicorn, checked by tests/e2e/test_workers_e2e.py.
            uvicorn_multiprocess.Process = _OwnSocketsProcess  # type: ignore[misc]
        Multiprocess(config, sockets=sockets).run()
    else:
        server.run(sockets=sockets)
