"""surfaces/common.client_gone: asks the ASGI connection whether its client left, never waits."""

from __future__ import annotations

import asyncio

from authgate.surfaces.common import client_gone


async def test_a_connection_still_open_is_not_gone_and_leaves_no_waiter() -> None:
    event = asyncio.Event()
    state = {"disconnected": False}

    async def receive() -> dict[str, object]:  # as uvicorn's, once the body has been read
        if not state["disconnected"]:
            await event.wait()
        return {"type": "http.disconnect"} if state["disconnected"] else {"type": "http.request"}

    gone = client_gone(receive)
    assert await asyncio.wait_for(gone(), 1) is False
    assert not event._waiters  # the abandoned step removed its waiter
    state["disconnected"] = True
    event.set()
    assert await gone() is True


async def test_a_receive_returning_a_future_is_asked_the_same_way() -> None:
    loop = asyncio.get_running_loop()
    pending: asyncio.Future[dict[str, object]] = loop.create_future()
    assert await client_gone(lambda: pending)() is False  # type: ignore[arg-type, return-value]
    done: asyncio.Future[dict[str, object]] = loop.create_future()
    done.set_result({"type": "http.disconnect"})
    assert await client_gone(lambda: done)() is True  # type: ignore[arg-type, return-value]
