"""The admission skeleton of the command and session endpoints, and the ``tgqr`` micro
service they share, on a real nats-server: retries, ``$SRV`` floods, bounded subscriptions."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from nats.aio.client import Client

from actors.gateway import DedupeStore, MemoryDedupe
from actors.service import NatsServer

from ._serving import Clock, EchoActors, serving

pytestmark = pytest.mark.anyio

ONE_START_A_MINUTE = {"start": 1, "password": 30, "cancel": 30, "logout": 30, "link": 30}


async def ask(nc: Client, subject: str, msg_id: str | None = None) -> dict[str, Any]:
    headers = {"Nats-Msg-Id": msg_id} if msg_id else None
    msg = await nc.request(subject, b"{}", timeout=10, headers=headers)
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


@pytest.mark.parametrize("durable", [False, True], ids=["in-process", "durable-claims"])
async def test_a_rate_limited_id_retried_after_the_window_runs(
    nats_server: NatsServer, nc: Client, durable: bool
) -> None:
    """A start refused as rate_limited, retried with the same Nats-Msg-Id once the window
    admits: it runs (the refusal was not kept as the id's reply)."""
    clock, actors = Clock(), EchoActors()
    dedupe: DedupeStore | None = MemoryDedupe() if durable else None
    async with serving(
        nats_server.url, clock=clock, actors=actors, limits=ONE_START_A_MINUTE, dedupe=dedupe
    ):
        assert (await ask(nc, "tgqr.cmd.alice.start"))["ok"]
        refused = await ask(nc, "tgqr.cmd.alice.start", "retry-1")
        assert refused["error"]["code"] == "rate_limited"
        clock.now += 61
        retried = await ask(nc, "tgqr.cmd.alice.start", "retry-1")
        assert retried["ok"], retried
        assert actors.ran == [("alice", "Start"), ("alice", "Start")]
        # It ran: now the id holds this reply, and a repeat runs nothing.
        assert await ask(nc, "tgqr.cmd.alice.start", "retry-1") == retried
        assert len(actors.ran) == 2


async def test_a_srv_flood_does_not_starve_commands(nats_server: NatsServer, nc: Client) -> None:
    """100,000 $SRV.STATS published without waiting: a command sent right after them is
    answered within a bounded time (on nats.micro's own handlers: about 14 s here), and $SRV
    answers again once its one-second window has passed."""
    clock, actors = Clock(), EchoActors()
    async with serving(nats_server.url, clock=clock, actors=actors):
        inbox = nc.new_inbox()  # nobody reads it: the replies are the flood's own cost
        for _ in range(100_000):
            await nc.publish("$SRV.STATS.tgqr", b"", reply=inbox)
        await nc.flush()
        with anyio.fail_after(7):
            assert (await ask(nc, "tgqr.cmd.bob.start"))["ok"]
        clock.now += 1.0
        with anyio.fail_after(3):
            ping = json.loads((await nc.request("$SRV.PING.tgqr", b"", timeout=3)).data)
        assert ping["name"] == "tgqr"


async def test_every_subscription_of_the_endpoints_is_bounded(
    nats_server: NatsServer,
) -> None:
    """The micro endpoints and the nine $SRV subjects: pending messages and bytes bounded."""
    async with serving(nats_server.url, clock=Clock(), actors=EchoActors()) as service_nc:
        subs = [s for s in service_nc._subs.values() if not s._subject.startswith("_INBOX.")]
        assert len(subs) == 2 + 9
        for sub in subs:
            assert 0 < sub._pending_msgs_limit <= 4096, sub._subject
            assert 0 < sub._pending_bytes_limit <= 64 * 1024 * 1024, sub._subject


async def test_only_an_inbox_gets_an_answer(nats_server: NatsServer, nc: Client) -> None:
    """A command or $SRV request whose reply subject is not an inbox is not run."""
    clock, actors = Clock(), EchoActors()
    async with serving(nats_server.url, clock=clock, actors=actors):
        sub = await nc.subscribe("tgqr.evt.>")
        await nc.publish("tgqr.cmd.carol.start", b"{}", reply="tgqr.evt.carol")
        await nc.publish("$SRV.PING", b"", reply="tgqr.evt.bob")
        assert (await ask(nc, "tgqr.cmd.dave.start"))["ok"]  # after the first, in order
        await nc.request("$SRV.PING", b"", timeout=3)  # after the second, in order
        await nc.flush()
        assert sub.pending_msgs == 0
        assert actors.ran == [("dave", "Start")]
