"""The queue in front of the hashing threads (core/hashpool.HashQueue): first come first served,
shed past a limit or a deadline, and a waiter whose client has gone makes room for one who waits."""

from __future__ import annotations

import asyncio

import pytest

from authgate.core.errors import AuthError
from authgate.core.hashpool import HashQueue, Shed
from authgate.core.passwords import PasswordHasher


class Client:
    """A waiter's connection: ``left`` once its client hung up; counts how often it was asked."""

    def __init__(self) -> None:
        self.left = False
        self.asked = 0

    async def gone(self) -> bool:
        self.asked += 1
        return self.left


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_full_queue_of_clients_that_left_admits_one_still_waiting() -> None:
    """Without the sweep the newcomer is shed at once: the gone waiters still count."""
    q = HashQueue(slots=1, limit=4, max_wait=0)
    await q.acquire()  # a hash out to the threads
    clients = [Client() for _ in range(3)]
    waiters = [asyncio.create_task(q.acquire(c.gone)) for c in clients]
    await settle()
    assert q.pending == 4
    with pytest.raises(Shed) as full:  # all still there: a newcomer is shed
        await q.acquire(Client().gone)
    assert full.value.reason == "full"
    for c in clients:
        c.left = True  # the flood ends: its clients hang up
    await asyncio.sleep(HashQueue.SWEEP_HOLDOFF)  # the pause after a fruitless sweep
    live = asyncio.create_task(q.acquire(Client().gone))
    await settle()
    assert all(w.done() for w in waiters)
    assert [w.exception().reason for w in waiters] == ["gone"] * 3  # type: ignore[union-attr]
    assert not live.done() and q.pending == 2  # the live one waits for the slot, first in line
    q.release()
    await settle()
    assert live.done() and live.exception() is None
    q.release()
    assert q.pending == 0 and q._free == 1


async def test_a_fruitless_sweep_is_not_repeated_for_every_shed_login() -> None:
    q = HashQueue(slots=1, limit=3, max_wait=0)
    await q.acquire()
    clients = [Client() for _ in range(2)]
    waiters = [asyncio.create_task(q.acquire(c.gone)) for c in clients]
    await settle()
    for _ in range(20):
        with pytest.raises(Shed):
            await q.acquire(Client().gone)
    assert [c.asked for c in clients] == [1, 1]  # one sweep asked each once; the others waited
    for w in waiters:
        w.cancel()
    await settle()
    assert q.pending == 1


async def test_a_slot_given_back_goes_to_the_first_waiter_not_a_newcomer() -> None:
    q = HashQueue(slots=1, limit=10, max_wait=0)
    order: list[str] = []

    async def take(name: str) -> None:
        await q.acquire()
        order.append(name)

    await take("a")
    b = asyncio.create_task(take("b"))
    await settle()
    q.release()  # b's, though it has not run yet
    c = asyncio.create_task(take("c"))
    await settle()
    assert order == ["a", "b"] and not c.done()
    q.release()
    await settle()
    assert order == ["a", "b", "c"] and b.done() and c.done()
    q.release()
    assert q._free == 1 and q.pending == 0


async def test_a_slot_that_came_with_the_deadline_is_passed_on() -> None:
    """Granted and cancelled in the same instant: the slot is not lost."""
    q = HashQueue(slots=1, limit=10, max_wait=0)
    await q.acquire()
    first = asyncio.create_task(q.acquire())
    second = asyncio.create_task(q.acquire())
    await settle()
    q.release()  # to the first waiter ...
    first.cancel()  # ... whose request is cancelled before it runs
    await settle()
    assert first.cancelled()
    assert second.done() and second.exception() is None  # the slot passed to the next
    q.release()
    assert q._free == 1 and q.pending == 0


async def test_a_waiter_past_its_deadline_is_shed_and_leaves_the_queue() -> None:
    q = HashQueue(slots=1, limit=10, max_wait=0.05)
    await q.acquire()
    with pytest.raises(Shed) as late:
        await q.acquire()
    assert late.value.reason == "timeout"
    assert q.pending == 1
    q.release()
    assert q._free == 1


async def test_a_client_gone_by_the_time_it_reaches_a_slot_gives_the_slot_back() -> None:
    q = HashQueue(slots=1, limit=10, max_wait=0)
    client = Client()
    client.left = True
    with pytest.raises(Shed) as gone:
        await q.acquire(client.gone)
    assert gone.value.reason == "gone"
    assert q._free == 1 and q.pending == 0


async def test_the_hasher_serves_a_login_behind_a_queue_of_clients_that_left() -> None:
    """Through PasswordHasher: the gone logins get 503 client_gone, unhashed; the live one its hash."""
    hasher = PasswordHasher(memory_kib=8192, time_cost=4, workers=1, queue_limit=8, max_wait=0)
    stored = await hasher.hash("S3cure-pass")
    hashed: list[str] = []
    real = hasher._verify_sync

    def counted(stored_: str | None, secret: str) -> tuple[bool, bool]:
        hashed.append(secret)
        return real(stored_, secret)

    hasher._verify_sync = counted  # type: ignore[method-assign]
    flood = [Client() for _ in range(8)]
    tasks = [asyncio.create_task(hasher.verify(stored, f"flood-{i}", gone=c.gone)) for i, c in enumerate(flood)]
    await settle()
    for c in flood:
        c.left = True
    assert await hasher.verify(stored, "S3cure-pass", gone=Client().gone) == (True, False)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    dropped = [r for r in results if isinstance(r, AuthError)]
    assert len(dropped) >= 8 - 4 and all(e.status == 503 and e.detail == "client_gone" for e in dropped)
    assert len(hashed) == 8 - len(dropped) + 1  # only those already out to the thread, and the live one
    hasher.close()
