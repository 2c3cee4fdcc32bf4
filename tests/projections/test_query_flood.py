"""The query endpoint under a flood, on a real nats-server: refused fast, answered again after."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from nats.aio.client import Client

from actors.service import NatsServer, connect_nats
from events import ChainKey, MemoryEventLog
from projections import ProjectionStore, Projector, QueryGate, serve_queries

pytestmark = pytest.mark.anyio


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def served(nats_server: NatsServer, tmp_path: Path) -> AsyncIterator[tuple[Clock, QueryGate]]:
    """``tgqr.query.*`` served on its own connection (as the service's), a test clock."""
    clock, gate = Clock(), QueryGate()
    store = ProjectionStore.open(tmp_path / "q.duckdb")
    projector = Projector(MemoryEventLog(ChainKey(b"k" * 32)), store)
    service_nc = await connect_nats([nats_server.url], reconnect=False)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(
                lambda task_status: serve_queries(
                    service_nc, projector, gate=gate, monotonic=clock, task_status=task_status
                )
            )
            yield clock, gate
            tg.cancel_scope.cancel()
    finally:
        await service_nc.close()
        store.close()


async def ask(nc: Client, name: str, wait_s: float = 5) -> dict[str, Any]:
    reply: dict[str, Any] = json.loads(
        (await nc.request(f"tgqr.query.{name}", b"{}", timeout=wait_s)).data
    )
    return reply


async def test_status_is_answered_right_after_a_flood(
    nc: Client, served: tuple[Clock, QueryGate]
) -> None:
    """60,000 status queries published without waiting (replies to an inbox nobody reads):
    health, which has its own budget, answers once they are through; a second later status
    answers again (on main: unanswered for more than 20 s)."""
    clock, gate = served
    inbox = nc.new_inbox()
    for _ in range(60_000):
        await nc.publish("tgqr.query.status", b"{}", reply=inbox)
    await nc.flush()
    with anyio.fail_after(10):
        while True:  # a health query nats-py dropped with the flood's excess is asked again
            try:
                health = await ask(nc, "health", wait_s=1)
            except TimeoutError:
                continue
            break
    assert health["ok"], health
    assert gate.statistics().refused > 0
    clock.now += 1.0  # the flood stopped a second ago
    with anyio.fail_after(2):
        status = await ask(nc, "status")
    assert status == {"ok": True, "items": []}


async def test_a_burst_gets_rate_limited_with_retry_after(
    nc: Client, served: tuple[Clock, QueryGate]
) -> None:
    """300 status queries at one instant: at most the window's 100 run, every other one gets
    ``rate_limited`` with ``retry_after_s`` within the window, all at once."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=300)
    for _ in range(300):
        await nc.publish("tgqr.query.status", b"{}", reply=inbox)
    replies: list[dict[str, Any]] = []
    with anyio.fail_after(10):
        async for msg in sub.messages:
            replies.append(json.loads(msg.data))
    ok = [r for r in replies if r["ok"]]
    refused = [r["error"] for r in replies if not r["ok"]]
    assert 0 < len(ok) <= 100
    assert len(ok) + len(refused) == 300
    assert {e["code"] for e in refused} == {"rate_limited"}
    assert all(0 < e["retry_after_s"] <= 1.0 for e in refused)
    assert all("retry in" in e["message"] for e in refused)


async def test_a_query_without_an_inbox_reply_is_not_run(
    nc: Client, served: tuple[Clock, QueryGate]
) -> None:
    """A query whose reply subject is not an inbox (or missing) costs no query and no reply."""
    _, gate = served
    sub = await nc.subscribe("tgqr.evt.>")
    await nc.publish("tgqr.query.status", b"{}", reply="tgqr.evt.bob")
    await nc.publish("tgqr.query.status", b"{}")
    assert (await ask(nc, "status"))["ok"]  # served after both, in order
    assert gate.statistics().admitted == 1
    assert sub.pending_msgs == 0
