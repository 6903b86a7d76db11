"""Drivers for the engine's flows: send each yielded request, feed the response back."""

from __future__ import annotations

import time

import httpx

from authgate.client._engine import Flow, T, log
from authgate.client.errors import ConnectionFailed


def _logged(request: httpx.Request, response: httpx.Response | None, started: float) -> None:
    # Method, path and status only: never headers, bodies or query strings (tokens, secrets, codes).
    status = response.status_code if response is not None else "failed"
    log.debug("authgate %s %s -> %s in %.1f ms", request.method, request.url.path, status,
              (time.perf_counter() - started) * 1000)


def run_sync(http: httpx.Client, flow: Flow[T]) -> T:
    request = next(flow)
    while True:
        started = time.perf_counter()
        try:
            response = http.send(request)
        except httpx.TransportError as exc:
            _logged(request, None, started)
            flow.close()
            raise ConnectionFailed(0, f"{type(exc).__name__}: could not reach the server") from exc
        _logged(request, response, started)
        try:
            request = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]


async def run_async(http: httpx.AsyncClient, flow: Flow[T]) -> T:
    request = next(flow)
    while True:
        started = time.perf_counter()
        try:
            response = await http.send(request)
        except httpx.TransportError as exc:
            _logged(request, None, started)
            flow.close()
            raise ConnectionFailed(0, f"{type(exc).__name__}: could not reach the server") from exc
        _logged(request, response, started)
        try:
            request = flow.send(response)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
