"""The threads that hash passwords, handing results back to the event loop several at a time
(``batch``: passwords.HASH_BATCH, 4) when hashes queue.

A result handed back wakes the event loop, and on a core shared with the hashing (one worker per
core) every wake-up starts cold: a 19 MiB argon2id hash has evicted the loop's code and data from
the core's caches. A login's loop work cost ~3.4 ms beside the hash against ~1.1 ms with a trivial
one (docs/performance.md). So when another hash is already waiting, a thread keeps the result it
just computed, runs the next hash, and hands them back together in one wake-up: the later
logins' work then runs on warm caches. A result is held back only while the thread has the next
hash in hand (at most ``batch - 1`` hashes, ~20 ms each); with nothing queued it is handed back
at once, so a lone login is never delayed.

The standard ThreadPoolExecutor settles each future as its call returns; holding one back needs
its own workers, and this is all they do.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Outcome = tuple[bool, Any]  # (True, result) or (False, exception)
_Job = tuple[asyncio.AbstractEventLoop | None, "asyncio.Future[Any] | Future[Any]", Callable[..., Any], tuple[Any, ...]]


class HashThreads:
    def __init__(
        self, count: int, *, name: str = "hash", batch: int = 2, initializer: Callable[[], None] | None = None
    ) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._batch = max(1, batch)
        self._initializer = initializer
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True) for i in range(max(1, count))
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Outside the event loop (start-up): a concurrent future, settled as soon as it is done."""
        self._check_open()
        future: Future[Any] = Future()
        self._jobs.put((None, future, fn, args))
        return future

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on a hashing thread; await the result on the running loop."""
        self._check_open()
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((loop, future, fn, args))
        return future

    def _check_open(self) -> None:
        if self._closed:  # as an executor after shutdown: nothing would ever run it
            raise RuntimeError("the hashing threads are closed")

    def close(self) -> None:
        """Pending hashes are cancelled; the threads end after the hash they are running."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                _cancel(job)
        for _ in self._threads:
            self._jobs.put(None)

    def _work(self) -> None:
        if self._initializer is not None:
            self._initializer()
        held: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], _Outcome]] = []
        while True:
            try:
                # Holding a result, only a hash already waiting is taken: never wait for one.
                job = self._jobs.get(block=not held)
            except queue.Empty:
                _hand_back(held)
                held = []
                continue
            if job is None:
                _hand_back(held)
                return
            loop, future, fn, args = job
            if loop is None:
                if not future.set_running_or_notify_cancel():  # type: ignore[union-attr]
                    continue
            elif future.cancelled():  # its request has gone: no hash for nobody
                continue
            try:
                outcome: _Outcome = (True, fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, as an executor would
                outcome = (False, exc)
            if loop is None:
                _settle(future, outcome)
                continue
            held.append((loop, future, outcome))  # type: ignore[arg-type]
            if len(held) >= self._batch:
                _hand_back(held)
                held = []


def _hand_back(held: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[Any], _Outcome]]) -> None:
    """One wake-up of each loop for all the results held for it."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
    for loop, future, outcome in held:
        by_loop.setdefault(loop, []).append((future, outcome))
    for loop, results in by_loop.items():
        try:
            loop.call_soon_threadsafe(_settle_all, results)
        except RuntimeError:  # the loop has closed: nobody waits for these
            pass


def _settle_all(results: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    for future, outcome in results:
        _settle(future, outcome)


def _settle(future: asyncio.Future[Any] | Future[Any], outcome: _Outcome) -> None:
    if future.cancelled():
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _cancel(job: _Job) -> None:
    loop, future, _fn, _args = job
    if loop is None:
        future.cancel()
        return
    try:
        loop.call_soon_threadsafe(future.cancel)
    except RuntimeError:
        pass
