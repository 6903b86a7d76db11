"""Run uvicorn on the public port and, with ``--internal-port``, on the internal one too.

One app, one server, two sockets: a request's listener is known from the socket it arrived on
(``scope["server"]``), so ``x-user-ctx`` is honoured only on the internal port. With ``--workers``
uvicorn's supervisor shares both sockets between the worker processes. SIGTERM drains in-flight
requests before exit (uvicorn's graceful shutdown).
"""

from __future__ import annotations

import gc
import os
import socket

import uvicorn
from uvicorn.supervisors import Multiprocess

from authgate import logging as applog
from authgate.config import Settings


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(settings: Settings) -> None:
    applog.configure(settings.log_level, settings.log_json)
    # Child processes rebuild Settings from the environment: pass the CLI's choices along.
    os.environ["AUTHGATE_HOST"] = settings.host
    os.environ["AUTHGATE_PORT"] = str(settings.port)
    if settings.internal_port:
        os.environ["AUTHGATE_INTERNAL_PORT"] = str(settings.internal_port)
    sockets = [_bind(settings.host, settings.port)]
    if settings.internal_port:
        sockets.append(_bind(settings.host, settings.internal_port))
    config = uvicorn.Config(
        "authgate.app:factory",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=max(1, settings.workers),
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=20,
        loop="auto",
        http="auto",
    )
    server = uvicorn.Server(config)
    if settings.workers > 1:
        gc.enable()  # the supervisor has no lifespan to turn it back on (cli.serve turned it off)
        Multiprocess(config, sockets=sockets).run()
    else:
        server.run(sockets=sockets)
