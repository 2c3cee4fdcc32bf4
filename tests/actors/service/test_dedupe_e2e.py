"""Command dedupe through the real service: per subject, durable across restarts and instances."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client

from actors.service import NatsServer, RunningService, ServiceConfig, run_service

from .conftest import stored_events

pytestmark = pytest.mark.anyio


async def request(nc: Client, subject: str, msg_id: str) -> dict[str, Any]:
    msg = await nc.request(subject, b"{}", timeout=20, headers={"Nats-Msg-Id": msg_id})
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    yield nc
    await nc.drain()


async def test_same_id_on_two_tenants_runs_both(
    service_config: ServiceConfig, client: Client
) -> None:
    """One Nats-Msg-Id on alice's and bob's start: two attempts, each tenant its own reply."""
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: run_service(service_config, task_status=task_status))
        alice = await request(client, "tgqr.cmd.alice.start", "same")
        bob = await request(client, "tgqr.cmd.bob.start", "same")
        tg.cancel_scope.cancel()
    assert (alice["tenant"], bob["tenant"]) == ("alice", "bob")
    for tenant in ("alice", "bob"):
        kinds = [e["type"] for e in await stored_events(client, tenant)]
        assert kinds.count("LoginStarted") == 1


async def test_a_retry_after_a_restart_gets_the_first_reply(
    service_config: ServiceConfig, client: Client
) -> None:
    """A cancel answered before the service restarted, retried with the same id afterwards
    (and to a second instance): the same reply, no new event."""
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: run_service(service_config, task_status=task_status))
        assert (await request(client, "tgqr.cmd.alice.start", "s1"))["ok"]
        first = await request(client, "tgqr.cmd.alice.cancel", "c1")
        tg.cancel_scope.cancel()
    assert first["state"] == "cancelled"
    before = await stored_events(client, "alice")
    async with anyio.create_task_group() as tg:
        for _ in range(2):
            service: RunningService = await tg.start(
                lambda task_status: run_service(service_config, task_status=task_status)
            )
            assert service.supervisor is not None
        for _ in range(4):
            assert await request(client, "tgqr.cmd.alice.cancel", "c1") == first
        tg.cancel_scope.cancel()
    assert await stored_events(client, "alice") == before
