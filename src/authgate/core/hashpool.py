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

In front of them, ``HashQueue`` admits a bounded number of hashes at once and keeps the rest in
arrival order, shedding past a limit and a deadline; a waiter whose client has gone is dropped
to make room rather than counted against a client still waiting (docs/performance.md, item 46).
"""

from __future__ import annotations

import asyncio
import queue
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import Any

Gone = Callable[[], Awaitable[bool]] | None
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


class Shed(Exception):
    """A hash the queue would not run: ``reason`` is "full", "timeout" or "gone"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class HashQueue:
    """``slots`` hashes out to the threads at once; the others wait, first come first served.

    A waiter has at most ``max_wait`` seconds (jittered to 75-100 %, so that a burst that queued
    together is not shed, and back, in the same instant; 0: no deadline), and past ``limit``
    hashes pending (out or waiting) a newcomer is shed at once. A waiter's ``gone`` asks whether
    its client has left: once as it reaches a slot (no hash for nobody), and, when the queue is
    full, for every waiter before a newcomer is shed. Without that sweep the waiters of clients
    that left (a flood that ended, clients that timed out) count against the limit until each
    reaches a slot, and a live login arriving meanwhile is shed while the queue is in fact
    empty. A sweep that finds nobody gone costs ~3 µs a waiter (~0.2 ms for 64), so the next
    one waits ``SWEEP_HOLDOFF`` seconds: a queue full of clients still waiting is not swept for
    every login it sheds (at most ~1 % of the core).

    A slot given back goes straight to the first waiter, so a newcomer never overtakes the queue.
    """

    SWEEP_HOLDOFF = 0.02

    def __init__(self, slots: int, limit: int, max_wait: float) -> None:
        self._free = slots
        self._out = 0
        self._limit = limit
        self._max_wait = max_wait
        self._waiters: deque[tuple[asyncio.Future[None], Gone]] = deque()
        self._quiet_until = float("-inf")  # no sweep before this (loop time): the last found nobody

    @property
    def pending(self) -> int:
        return self._out + len(self._waiters)

    async def acquire(self, gone: Gone = None) -> None:
        """A slot, or Shed. The caller gives it back with ``release``."""
        if self._free and not self._waiters:
            self._free -= 1  # a free slot: taken without suspending
        else:
            if self.pending >= self._limit and not await self._sweep():
                raise Shed("full")
            await self._wait(gone)
        self._out += 1
        if gone is not None and await gone():
            self.release()
            raise Shed("gone")

    def release(self) -> None:
        self._out -= 1
        while self._waiters:
            future, _gone = self._waiters.popleft()
            if not future.done():
                future.set_result(None)  # the slot passes to the first waiter
                return
        self._free += 1

    async def _wait(self, gone: Gone) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (future, gone)
        self._waiters.append(entry)
        deadline = self._max_wait * (0.75 + 0.25 * random.random())
        try:
            async with asyncio.timeout(deadline or None):
                await future
        except BaseException as exc:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._out += 1  # the slot came as the deadline (or a cancel) did: pass it on
                self.release()
            else:
                try:
                    self._waiters.remove(entry)
                except ValueError:  # a sweep took it out
                    pass
            if isinstance(exc, TimeoutError):
                raise Shed("timeout") from None
            raise

    async def _sweep(self) -> bool:
        """Drop the waiters whose clients have gone; whether any was."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._quiet_until:
            return False
        dropped = 0
        for future, gone in list(self._waiters):
            if gone is not None and not future.done() and await gone():
                future.set_exception(Shed("gone"))
                dropped += 1
        if not dropped:
            self._quiet_until = loop.time() + self.SWEEP_HOLDOFF
            return False
        self._waiters = deque(entry for entry in self._waiters if not entry[0].done())
        return self.pending < self._limit
