"""A running service (in-process, simulator mode) and a plain nats-py client to drive it.

The client side uses nothing of tgqr: JSON over NATS subjects, as a user's application would.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import nats
import pytest
from nats.aio.client import Client
from nats.js import api

from actors.service import (
    NatsAuth,
    NatsServer,
    RunningService,
    ServiceConfig,
    Violations,
    connect_nats,
    read_credentials,
    run_service,
)
from events.jetstream import STREAM


async def stored_events(nc: Client, tenant: str) -> list[dict[str, Any]]:
    """Every stored event of ``tenant``, read from the stream in order (leader reads)."""
    js = nc.jetstream()
    out: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg("TGQR_EVENTS", seq=seq, subject=f"tgqr.evt.{tenant}", next=True)
        except nats.js.errors.NotFoundError:
            return out
        out.append(json.loads(msg.data or b"{}"))
        seq = (msg.seq or 0) + 1


@dataclass
class Driver:
    """A user's application: commands, events and the simulator's phone over NATS."""

    nc: Client
    service: RunningService

    async def request(
        self,
        subject: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        data = raw if raw is not None else json.dumps(body or {}).encode()
        msg = await self.nc.request(subject, data, timeout=20, headers=headers)
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    async def command(self, tenant: str, verb: str, **body: Any) -> dict[str, Any]:
        return await self.request(f"tgqr.cmd.{tenant}.{verb}", body)

    async def events(self, tenant: str) -> list[dict[str, Any]]:
        """Every stored event of ``tenant`` (from the stream, in order)."""
        return await stored_events(self.nc, tenant)

    async def wait_for(self, tenant: str, kind: str, within_s: float = 20) -> dict[str, Any]:
        """Wait until ``tenant``'s log holds an event of type ``kind``; return the latest."""
        sub = await self.nc.subscribe(f"tgqr.evt.{tenant}")
        try:
            with anyio.fail_after(within_s):
                history = await self.events(tenant)
                for old in reversed(history):
                    if old["type"] == kind:
                        return dict(old)
                async for msg in sub.messages:
                    live: dict[str, Any] = json.loads(msg.data)
                    if live["type"] == kind:
                        return live
        finally:
            await sub.unsubscribe()
        raise AssertionError("unreachable")

    async def scan(self, tenant: str, user_id: int, **extra: Any) -> dict[str, Any]:
        return await self.request("tgqr.sim.scan", {"tenant": tenant, "user_id": user_id, **extra})


@pytest.fixture
def service_config(tmp_path: Path, nats_server: NatsServer) -> ServiceConfig:
    base = ServiceConfig.from_env({}, data_dir=tmp_path / "data", nats=nats_server.url)
    # No page: its own process costs ~2 s to start, and these tests drive NATS (the page's
    # tests start it themselves, on port 0).
    return replace(base, throttle_s=(0.0, 0.0), http=None, metrics=None)


@asynccontextmanager
async def driving(config: ServiceConfig, url: str) -> AsyncIterator[Driver]:
    """``run_service(config)`` for the block, and a plain client of the server at ``url``."""
    async with anyio.create_task_group() as tg:
        service: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        nc = await nats.connect(url, max_reconnect_attempts=0)
        try:
            yield Driver(nc, service)
        finally:
            await nc.drain()
            tg.cancel_scope.cancel()


@pytest.fixture
async def driver(service_config: ServiceConfig, nats_server: NatsServer) -> AsyncIterator[Driver]:
    async with driving(service_config, nats_server.url) as running:
        yield running


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[RunningService, Path]]:
    """``run_service`` as ``tgqr up`` runs it: its own nats-server with auth on."""
    data = tmp_path / "data"
    env = {"TGQR_HTTP": "off", "TGQR_METRICS": "off"}  # these tests need no HTTP port
    config = replace(ServiceConfig.from_env(env, data_dir=data), throttle_s=(0.0, 0.0))
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, task_status=task_status)
        )
        try:
            yield running, data
        finally:
            tg.cancel_scope.cancel()


async def connect_as(data: Path, role: Any, violations: Violations | None = None) -> Client:
    url = (data / "nats.url").read_text().strip()
    auth = NatsAuth(role, credentials=read_credentials(data, role))
    return await connect_nats([url], auth=auth, reconnect=False, violations=violations)


async def request(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    msg = await nc.request(subject, json.dumps(body).encode(), timeout=20)
    reply: dict[str, Any] = json.loads(msg.data)
    return reply


async def core_subjects(running: RunningService, tenant: str) -> list[dict[str, Any]]:
    """Every message on ``tenant``'s subject of the log itself (account TGQR), decoded."""
    js = running.nc.jetstream(timeout=5)
    out: list[dict[str, Any]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(STREAM, seq=seq, subject=f"tgqr.evt.{tenant}", next=True)
        except nats.js.errors.NotFoundError:
            return out
        out.append(json.loads(msg.data or b"{}"))
        seq = (msg.seq or 0) + 1


async def mirrored(reader: Client, running: RunningService) -> None:
    """Wait until the clients' mirror holds everything the log holds now (event-driven: an
    ordered consumer from the log's last sequence delivers it once mirrored)."""
    last = (await running.nc.jetstream(timeout=5).stream_info(STREAM)).state.last_seq
    if last == 0:
        return
    sub = await reader.jetstream(timeout=5).subscribe(
        ">",
        stream=STREAM,
        ordered_consumer=True,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=last
        ),
    )
    try:
        await sub.next_msg(timeout=10)
    finally:
        await sub.unsubscribe()
