"""The hashing threads (core/hashpool.py): results handed back together only while hashes queue."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from authgate.core.hashpool import HashThreads


class Gate:
    """A job that runs until the test lets it finish, and says when it has started."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Any:
        self.started.set()
        assert self.release.wait(5), "the test never let the job finish"
        return self.value


async def wait_started(gate: Gate) -> None:
    assert await asyncio.to_thread(gate.started.wait, 5)


@pytest.fixture
def pool() -> Any:
    threads = HashThreads(1, name="test", batch=4)
    yield threads
    threads.close()


async def test_a_lone_hash_is_handed_back_at_once(pool: HashThreads) -> None:
    """Nothing queued behind it: no waiting for a batch (a single login is never delayed)."""
    assert await asyncio.wait_for(pool.run(lambda: 42), 2) == 42


async def test_results_are_held_while_the_next_hash_is_in_hand(pool: HashThreads) -> None:
    first, second = Gate("a"), Gate("b")
    a = pool.run(first)
    await wait_started(first)
    b = pool.run(second)  # queued behind the running one
    first.release.set()
    await wait_started(second)  # the thread took the queued job: "a" is done but held
    await asyncio.sleep(0.05)
    assert not a.done(), "a result was handed back while the next hash was already waiting"
    second.release.set()
    assert await asyncio.wait_for(asyncio.gather(a, b), 2) == ["a", "b"]


async def test_at_most_a_batch_is_held(pool: HashThreads) -> None:
    gates = [Gate(i) for i in range(6)]
    futures = [pool.run(gates[0])]
    await wait_started(gates[0])
    futures += [pool.run(g) for g in gates[1:]]
    for g in gates[:4]:
        g.release.set()
    await wait_started(gates[4])
    # Four done (a full batch) are handed back while the fifth runs.
    await asyncio.wait_for(asyncio.gather(*futures[:4]), 2)
    assert not futures[4].done()
    gates[4].release.set()
    gates[5].release.set()
    assert await asyncio.wait_for(asyncio.gather(*futures), 2) == list(range(6))


async def test_an_exception_reaches_the_caller(pool: HashThreads) -> None:
    def boom() -> None:
        raise ValueError("bad hash")

    with pytest.raises(ValueError, match="bad hash"):
        await asyncio.wait_for(pool.run(boom), 2)
    assert await asyncio.wait_for(pool.run(lambda: "still works"), 2) == "still works"


async def test_a_cancelled_hash_is_not_run(pool: HashThreads) -> None:
    first, ran = Gate(None), []
    pool.run(first)
    await wait_started(first)
    gone = pool.run(lambda: ran.append("hashed"))
    gone.cancel()  # its client left while it queued
    first.release.set()
    assert await asyncio.wait_for(pool.run(lambda: "next"), 2) == "next"
    assert ran == []


async def test_close_cancels_what_is_queued(pool: HashThreads) -> None:
    first = Gate("running")
    running = pool.run(first)
    await wait_started(first)
    queued = pool.run(lambda: "never")
    pool.close()
    first.release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(queued, 2)
    assert await asyncio.wait_for(running, 2) == "running"  # the running hash still finishes
    with pytest.raises(RuntimeError, match="closed"):
        pool.run(lambda: "after close")  # refused, not left waiting for ever


def test_submit_outside_a_loop() -> None:
    threads = HashThreads(2, name="test")
    try:
        assert threads.submit(pow, 2, 10).result(2) == 1024
    finally:
        threads.close()
