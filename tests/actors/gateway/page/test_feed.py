"""The page's live feed, run as the server runs it (the ASGI app in this event loop), fed the
fake log's stored messages as they are added: a forged event (bad MAC) and a genuine event
replayed out of place both show the tenant on hold, never as logged in; the streams are capped
per tenant and overall."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream
from starlette.types import Message, Scope

from actors.gateway.page import StreamSlots, build_app
from actors.gateway.page._deps import PageDeps

from ._fakes import World, authorized, started, world

pytestmark = pytest.mark.anyio

WAIT_S = 10


class Feed:
    """One open live stream: its ``state`` events, one at a time."""

    def __init__(self, status: int, chunks: MemoryObjectReceiveStream[bytes]) -> None:
        self.status = status
        self._chunks = chunks
        self._buffer = b""

    async def next_event(self) -> tuple[str, dict[str, Any]]:
        with anyio.fail_after(WAIT_S):
            while b"\n\n" not in self._buffer:
                self._buffer += await self._chunks.receive()
        block, _, self._buffer = self._buffer.partition(b"\n\n")
        lines = dict(line.split(": ", 1) for line in block.decode().splitlines() if ": " in line)
        if "event" not in lines:  # "retry:" or a keep-alive comment
            return await self.next_event()
        return lines["event"], json.loads(lines["data"])

    async def next_state(self) -> str:
        kind, data = await self.next_event()
        assert kind == "state", (kind, data)
        return str(data["state"])


@asynccontextmanager
async def open_feed(deps: PageDeps, url: str) -> AsyncIterator[Feed]:
    """GET ``url`` from the app, as uvicorn would call it, until the block ends."""
    app = build_app(deps)
    send_chunk, chunks = anyio.create_memory_object_stream[bytes](100)
    started_ = anyio.Event()
    status: list[int] = []
    gone = anyio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
            started_.set()
        elif message.get("body"):
            await send_chunk.send(message["body"])

    path, _, query = url.partition("?")
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {"deps": deps, "closing": anyio.Event()},
    }
    async with send_chunk, chunks, anyio.create_task_group() as tg:

        async def serve() -> None:
            await app(scope, receive, send)

        tg.start_soon(serve)
        with anyio.fail_after(WAIT_S):
            await started_.wait()
        yield Feed(status[0], chunks)
        gone.set()


def events_url(w: World, tenant: str = "alice") -> str:
    return f"/l/{w.signer.issue(tenant).token}/events"


async def test_the_feed_follows_the_log() -> None:
    """The control: genuine events, appended while the page watches, change what it shows."""
    w = world()
    w.log.add(started("alice"))
    async with open_feed(w.deps, events_url(w)) as feed:
        assert await feed.next_state() == "pending"
        w.log.add(authorized("alice", 4242))
        assert await feed.next_state() == "authorized"


async def test_a_forged_event_on_the_feed_shows_on_hold() -> None:
    """An ``Authorized`` whose MAC does not verify: "quarantined", never "authorized"."""
    w = world()
    w.log.add(started("alice"))
    async with open_feed(w.deps, events_url(w)) as feed:
        assert await feed.next_state() == "pending"
        w.log.add(authorized("alice", 4242), mac="0" * 64)
        assert await feed.next_state() == "quarantined"


async def test_a_replayed_genuine_event_on_the_feed_shows_on_hold() -> None:
    """A genuine ``Authorized`` of an earlier attempt, stored again while a new attempt runs:
    its MAC verifies, its chain link does not."""
    w = world()
    w.log.add(started("alice"))
    genuine = w.log.add(authorized("alice", 4242))
    w.log.add(started("alice", 2))
    async with open_feed(w.deps, events_url(w)) as feed:
        assert await feed.next_state() == "pending"
        w.log.store("alice", genuine.data, genuine.mac)
        assert await feed.next_state() == "quarantined"


async def test_streams_are_capped_per_tenant_and_overall() -> None:
    w = world()
    deps = replace(w.deps, streams=StreamSlots(limit=3, per_tenant=2))
    w.log.add(started("alice"))
    w.log.add(started("bob"))
    w.log.add(started("carol"))
    async with open_feed(deps, events_url(w)) as a1, open_feed(deps, events_url(w)) as a2:
        assert (a1.status, a2.status) == (200, 200)
        async with open_feed(deps, events_url(w)) as a3:
            assert a3.status == 503  # a third of alice's
        async with open_feed(deps, events_url(w, "bob")) as b1:
            assert b1.status == 200
            async with open_feed(deps, events_url(w, "carol")) as c1:
                assert c1.status == 503  # the fourth overall
    assert deps.streams.statistics() == {"streams": 0, "tenants": 0}
    async with open_feed(deps, events_url(w, "carol")) as c2:
        assert c2.status == 200  # slots come back when streams end
