"""core.flight.BatchFlight: misses of one turn of the event loop share one query, a key being
loaded is never loaded twice, and a failure or a leader that went away leaves nobody hanging."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

import pytest

from authgate.core.flight import BatchFlight

ROWS = {"ann": "Ann", "bob": "Bob", "cat": "Cat", "dan": "Dan", "eve": "Eve"}


class Db:
    """A fake query of many keys that records each call and can be held open."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def fetch(self, keys: Sequence[str]) -> Mapping[str, str]:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return {k: ROWS[k] for k in keys if k in ROWS}


async def test_misses_of_one_turn_share_one_query_and_each_gets_its_own_row() -> None:
    flight: BatchFlight[str, str] = BatchFlight()
    db = Db()
    got = await asyncio.gather(*(flight.load(k, db.fetch) for k in ("ann", "bob", "nobody", "cat", "bob")))
    assert db.calls == [["ann", "bob", "nobody", "cat"]]  # "bob" twice is asked once
    assert got == [("Ann", False), ("Bob", False), (None, False), ("Cat", False), ("Bob", True)]
    # the next turn asks again: the flight holds loads in progress, not results
    assert await flight.load("ann", db.fetch) == ("Ann", False)
    assert db.calls[-1] == ["ann"]


async def test_a_key_asked_while_its_query_runs_joins_it_and_a_new_key_starts_the_next_batch() -> None:
    flight: BatchFlight[str, str] = BatchFlight()
    db = Db()
    db.gate = asyncio.Event()
    first = asyncio.gather(flight.load("ann", db.fetch), flight.load("bob", db.fetch))
    await asyncio.sleep(0.01)
    assert db.calls == [["ann", "bob"]]  # closed and sent; held open by the gate
    later = asyncio.gather(flight.load("bob", db.fetch), flight.load("cat", db.fetch))
    await asyncio.sleep(0.01)
    assert db.calls == [["ann", "bob"], ["cat"]]
    db.gate.set()
    assert await first == [("Ann", False), ("Bob", False)]
    assert await later == [("Bob", True), ("Cat", False)]


async def test_a_batch_takes_at_most_limit_keys() -> None:
    flight: BatchFlight[str, str] = BatchFlight(limit=2)
    db = Db()
    got = await asyncio.gather(*(flight.load(k, db.fetch) for k in ROWS))
    assert sorted(len(c) for c in db.calls) == [1, 2, 2]
    assert sorted(k for c in db.calls for k in c) == sorted(ROWS)
    assert [v for v, _ in got] == list(ROWS.values())


async def test_a_failed_query_fails_every_caller_of_its_batch_and_the_next_ask_queries_again() -> None:
    flight: BatchFlight[str, str] = BatchFlight()
    db = Db()
    db.fail = ConnectionError("database down")
    got = await asyncio.gather(*(flight.load(k, db.fetch) for k in ("ann", "bob", "ann")), return_exceptions=True)
    assert all(isinstance(g, ConnectionError) for g in got)
    assert db.calls == [["ann", "bob"]]
    db.fail = None
    assert await flight.load("bob", db.fetch) == ("Bob", False)
    assert len(db.calls) == 2


async def test_when_the_leader_goes_away_the_others_in_its_batch_still_get_their_rows() -> None:
    """The leader's request ends (its client hung up) while the query runs: the batch's other
    callers ask again instead of failing with the leader's cancellation."""
    flight: BatchFlight[str, str] = BatchFlight()
    db = Db()
    db.gate = asyncio.Event()
    leader = asyncio.create_task(flight.load("ann", db.fetch))
    others = [asyncio.create_task(flight.load(k, db.fetch)) for k in ("bob", "ann")]
    await asyncio.sleep(0.01)
    assert db.calls == [["ann", "bob"]]
    leader.cancel()
    await asyncio.sleep(0.01)
    db.gate.set()
    assert await asyncio.gather(*others) == [("Bob", False), ("Ann", False)]
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert db.calls[0] == ["ann", "bob"] and sorted(k for c in db.calls[1:] for k in c) == ["ann", "bob"]


async def test_a_leader_cancelled_before_its_query_leaves_the_batch_to_the_others() -> None:
    flight: BatchFlight[str, str] = BatchFlight()
    db = Db()
    leader = asyncio.create_task(flight.load("ann", db.fetch))
    await asyncio.sleep(0)  # the leader has opened its batch and waits for the turn to end
    other = asyncio.create_task(flight.load("bob", db.fetch))
    leader.cancel()
    assert await other == ("Bob", False)
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert db.calls == [["bob"]]
