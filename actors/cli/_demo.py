"""``make demo``: the whole service end to end on embedded defaults, in about a minute.

Starts an embedded nats-server, the Telegram simulator and the service, then drives tenants
through every flow the way a client application would (commands over NATS, the simulator's
phone over NATS): plain login, 2FA with a wrong then right password, expiry, flood wait, DC
migration, ownership mismatch, cancel, logout, and a service crash mid-2FA followed by a
restart that resumes from the log. Prints the status and metrics projections and a verified
audit, stops everything and returns 0 (1 if any flow did not end as expected).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from nats.aio.client import Client
from nats.js.api import DeliverPolicy

from actors.service import (
    NatsAuth,
    RunningService,
    ServiceConfig,
    connect_nats,
    read_credentials,
    run_service,
)
from actors.sim import Simulator
from events import Event, decode_event
from events.audit import audit_verify, format_record, replay
from events.jetstream import STREAM
from projections import render_metrics, render_status

from ._demo_lease import lease_flow
from ._demo_page import page_flow

__all__ = ["run_demo"]

_Stream = tuple[MemoryObjectSendStream[Event], MemoryObjectReceiveStream[Event]]


class DemoFailedError(Exception):
    """A flow of the demo did not end as expected."""


class _Client:
    """What a user's application would do: commands and event subscriptions over NATS."""

    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self._streams: dict[str, _Stream] = defaultdict(
            lambda: anyio.create_memory_object_stream[Event](1000)
        )

    async def listen(self, *, task_status: anyio.abc.TaskStatus[None]) -> None:
        # An ordered consumer: under auth the app reads the log's mirror, which carries no
        # live traffic on the log's subjects.
        sub = await self.nc.jetstream(timeout=5).subscribe(
            "tgqr.evt.*", stream=STREAM, ordered_consumer=True, deliver_policy=DeliverPolicy.NEW
        )
        task_status.started()
        async for msg in sub.messages:
            event = decode_event(msg.data)
            self._streams[event.tenant][0].send_nowait(event)

    async def request(self, subject: str, body: dict[str, Any]) -> dict[str, Any]:
        msg = await self.nc.request(subject, json.dumps(body).encode(), timeout=30)
        reply: dict[str, Any] = json.loads(msg.data)
        return reply

    async def command(self, tenant: str, verb: str, **body: Any) -> dict[str, Any]:
        reply = await self.request(f"tgqr.cmd.{tenant}.{verb}", body)
        if not reply["ok"]:
            raise DemoFailedError(f"{tenant} {verb}: {reply['error']}")
        return reply

    async def expect(self, tenant: str, kind: str, within_s: float = 30) -> Event:
        """Wait for the tenant's next event of type ``kind`` (others are printed)."""
        receive = self._streams[tenant][1]
        with anyio.fail_after(within_s):
            async for event in receive:
                name = type(event).__name__
                print(f"  {tenant:<7} {name}{_fields(event)}")
                if name == kind:
                    return event
        raise DemoFailedError(f"{tenant}: no {kind}")

    async def scan(self, tenant: str, user_id: int, **extra: Any) -> None:
        reply = await self.request("tgqr.sim.scan", {"tenant": tenant, "user_id": user_id, **extra})
        if not reply["ok"]:
            raise DemoFailedError(f"scan for {tenant}: {reply['error']}")


def _fields(event: Event) -> str:
    skip = {"tenant", "attempt", "at", "v", "id", "prev", "trace", "kid", "type"}
    shown = {k: v for k, v in msgspec.to_builtins(event).items() if k not in skip}
    if "url" in shown:
        shown["url"] = shown["url"][:34] + "…"
    return " " + json.dumps(shown) if shown else ""


async def _flows(c: _Client, sim: Simulator) -> None:
    print("\n== plain login (alice)")
    await c.command("alice", "start")
    await c.expect("alice", "QrIssued")
    await c.scan("alice", 1001)
    await c.expect("alice", "Authorized")
    again = await c.command("alice", "start")
    print(f"  alice   start again -> {again['state']} (idempotent)")

    print("\n== 2FA, wrong then right password (bob)")
    await c.command("bob", "start")
    await c.expect("bob", "QrIssued")
    await c.scan("bob", 1002, password="correct horse")
    await c.expect("bob", "PasswordRequired")
    await c.command("bob", "password", password="wrong guess")
    await c.expect("bob", "PasswordRejected")
    await c.command("bob", "password", password="correct horse")
    await c.expect("bob", "Authorized")

    print("\n== expiry with ttl_s=2 (carol)")
    await c.command("carol", "start", ttl_s=2)
    await c.expect("carol", "QrIssued")
    await c.expect("carol", "Expired")

    print("\n== flood wait on export, retried after the server's wait (dave)")
    sim.flood_next("auth.exportLoginToken", seconds=1)
    await c.command("dave", "start")
    await c.expect("dave", "FloodWaited")
    await c.expect("dave", "QrIssued")
    await c.scan("dave", 1004)
    await c.expect("dave", "Authorized")

    print("\n== DC migration: the account lives on DC 2 (erin)")
    await c.command("erin", "start")
    await c.expect("erin", "QrIssued")
    await c.scan("erin", 1005, dc_id=2)
    await c.expect("erin", "Authorized")

    print("\n== ownership mismatch: expected user 1006, user 1099 scans (frank)")
    await c.command("frank", "start", expected_user_id=1006)
    await c.expect("frank", "QrIssued")
    await c.scan("frank", 1099)
    await c.expect("frank", "LoginFailed")

    if not await lease_flow(c, sim):
        raise DemoFailedError("the leased session of alice is not user 1001")

    print("\n== cancel (heidi) and logout (alice)")
    await c.command("heidi", "start")
    await c.expect("heidi", "QrIssued")
    await c.command("heidi", "cancel")
    await c.expect("heidi", "LoginCancelled")
    await c.command("alice", "logout")
    await c.expect("alice", "LoggedOut")


async def _crash_part_one(c: _Client) -> None:
    print("\n== crash mid-2FA (grace): the service dies while waiting for the password")
    await c.command("grace", "start")
    await c.expect("grace", "QrIssued")
    await c.scan("grace", 1007, password="s3cret")
    await c.expect("grace", "PasswordRequired")


async def _crash_part_two(c: _Client) -> None:
    print("  ...service restarted: grace's actor resumes from the log")
    await c.command("grace", "password", password="s3cret")
    await c.expect("grace", "Authorized")


async def _wait_projected(c: _Client) -> None:
    with anyio.fail_after(30):
        while True:
            health = await c.request("tgqr.query.health", {})
            if health.get("ok") and health.get("lag_events") == 0:
                return
            await anyio.sleep(0.1)


async def _report(c: _Client, running: RunningService) -> bool:
    await _wait_projected(c)
    status = await c.request("tgqr.query.status", {})
    print("\n== status projection (tgqr status)")
    print(render_status(status["items"]))
    metrics = await c.request("tgqr.query.metrics", {"window_s": 3600})
    print("\n== metrics projection (tgqr metrics)")
    print(render_metrics(metrics))
    print("\n== audit of bob, replayed from JetStream (tgqr audit bob --verify)")
    async for item in replay(running.event_log, tenant="bob"):
        print("  " + format_record(item))
    report = await audit_verify(running.event_log, running.chain_key)
    verdict = "intact" if report.ok else f"BROKEN at {report.first_break}"
    print(f"\n  hash chains: {report.checked} events in {report.tenants} chains, {verdict}")
    return report.ok


async def _serve(
    config: ServiceConfig, sim: Simulator, body: Callable[[RunningService], Any]
) -> Any:
    async with anyio.create_task_group() as tg:
        running: RunningService = await tg.start(
            lambda task_status: run_service(config, sim=sim, task_status=task_status)
        )
        try:
            return await body(running)
        finally:
            tg.cancel_scope.cancel()


async def _connect_app(running: RunningService, config: ServiceConfig) -> Client:
    """A client of role ``app``, as a user's application connects (its file under the data
    directory, made by the embedded server)."""
    auth = NatsAuth("app", credentials=read_credentials(config.data_dir, "app"))
    return await connect_nats([running.nats_url], name="demo-client", auth=auth)


async def run_demo(data_dir: Path) -> int:
    """Run the walkthrough in a fresh ``data_dir``; 0 when every flow ended as expected."""
    shutil.rmtree(data_dir, ignore_errors=True)
    base = ServiceConfig.from_env(data_dir=data_dir)
    # The page on any free port unless TGQR_HTTP says otherwise: a `tgqr up` may hold 8080.
    http = base.http if os.environ.get("TGQR_HTTP") else "127.0.0.1:0"
    config = replace(base, throttle_s=(0.0, 0.0), api_id=None, api_hash=None, http=http)
    sim = Simulator(token_ttl_s=30)
    print(f"tgqr demo: embedded nats-server, Telegram simulator, DuckDB in {data_dir}")
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)

        async def first_life(running: RunningService) -> None:
            client = _Client(await _connect_app(running, config))
            async with anyio.create_task_group() as inner:
                await inner.start(client.listen)
                await _flows(client, sim)
                await _crash_part_one(client)
                inner.cancel_scope.cancel()
            await client.nc.close()

        async def second_life(running: RunningService) -> bool:
            client = _Client(await _connect_app(running, config))
            async with anyio.create_task_group() as inner:
                await inner.start(client.listen)
                await _crash_part_two(client)
                await page_flow(client, data_dir, interactive=sys.stdin.isatty())
                ok = await _report(client, running)
                inner.cancel_scope.cancel()
            await client.nc.close()
            return ok

        try:
            await _serve(config, sim, first_life)
            ok = await _serve(config, sim, second_life)
        except (DemoFailedError, TimeoutError) as exc:
            print(f"\ndemo failed: {exc or type(exc).__name__}", file=sys.stderr)
            ok = False
        tg.cancel_scope.cancel()
    print("\ndemo finished: " + ("every flow ended as expected" if ok else "FAILED"))
    return 0 if ok else 1
