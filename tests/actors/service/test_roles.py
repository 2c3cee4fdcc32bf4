"""Roles on NATS, against a real nats-server with the shipped ``nats.conf``: each denial a
role must meet, and that each role can do its job.

nats-py reports a refused publish or subscription only to the connection's ``error_cb`` (the
call itself times out), so each denial waits for that report (:class:`Violations`) with a
short timeout, never for the call's own timeout.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import nats.errors
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.js import api

from actors.service import (
    RunningService,
    Violations,
)
from events import ChainKey, Head, Scanned
from events.audit import audit_verify
from events.jetstream import STREAM, JetStreamEventLog, ensure_stream
from tests.actors.service.conftest import connect_as, core_subjects, mirrored, request
from tests.conftest import AuthServer

pytestmark = pytest.mark.anyio

REFUSED_WITHIN_S = 2


async def refused(violations: Violations, call: Any, after: int = 0) -> str:
    """Run ``call``; the permission violation it earned (fails if none within 2 s)."""
    with anyio.fail_after(REFUSED_WITHIN_S):
        async with anyio.create_task_group() as tg:
            found: list[str] = []

            async def watch() -> None:
                found.append(await violations.wait(after))
                tg.cancel_scope.cancel()

            tg.start_soon(watch)
            with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
                await call()
            await anyio.sleep_forever()
    return found[0]


@pytest.fixture
async def service_nc(auth_nats_server: AuthServer) -> AsyncIterator[Client]:
    """Role service, with the event stream (one event) and the sessions bucket set up."""
    nc = await auth_nats_server.connect("service")
    js = nc.jetstream(timeout=2)
    await ensure_stream(js)
    kv = await js.create_key_value(bucket="tgqr_sessions")
    await kv.put("alice", b"sealed-session")
    yield nc
    await nc.close()


async def test_app_may_not_publish_events(auth_nats_server: AuthServer, service_nc: Client) -> None:
    """App publishing to tgqr.evt.alice (plain or through JetStream): refused, nothing stored."""
    violations = Violations()
    app = await auth_nats_server.connect("app", violations)
    js = app.jetstream(timeout=5)
    text = await refused(violations, lambda: app.publish("tgqr.evt.alice", b"junk"))
    assert 'publish to "tgqr.evt.alice"' in text
    await refused(violations, lambda: js.publish("tgqr.evt.alice", b"junk"), after=1)
    info = await service_nc.jetstream().stream_info(STREAM)
    assert info.state.messages == 0
    await app.close()


async def test_app_may_not_touch_the_sessions_bucket(
    auth_nats_server: AuthServer, service_nc: Client
) -> None:
    """App opening, reading (direct get, subscription) or writing tgqr_sessions: refused."""
    violations = Violations()
    app = await auth_nats_server.connect("app", violations)
    js = app.jetstream(timeout=5)
    text = await refused(violations, lambda: js.key_value("tgqr_sessions"))
    assert "kv_tgqr_sessions" in text
    direct = "$JS.API.DIRECT.GET.KV_tgqr_sessions.$KV.tgqr_sessions.alice"
    await refused(violations, lambda: app.request(direct, b"", timeout=5), after=1)
    await refused(violations, lambda: app.subscribe("$KV.tgqr_sessions.>"), after=2)
    await refused(violations, lambda: app.publish("$KV.tgqr_sessions.alice", b"x"), after=3)
    # Nor the service's replies, where the sealed sessions it fetches arrive.
    await refused(violations, lambda: app.subscribe("_INBOX_service.>"), after=4)
    await refused(violations, lambda: js.stream_info("KV_tgqr_leases"), after=5)
    kv = await service_nc.jetstream().key_value("tgqr_sessions")
    assert (await kv.get("alice")).value == b"sealed-session"
    await app.close()


async def test_app_may_not_delete_or_list_streams(
    auth_nats_server: AuthServer, service_nc: Client
) -> None:
    """App deleting TGQR_EVENTS or listing streams: refused; the stream is still there."""
    violations = Violations()
    app = await auth_nats_server.connect("app", violations)
    js = app.jetstream(timeout=5)
    text = await refused(violations, lambda: js.delete_stream(STREAM))
    assert "stream.delete.tgqr_events" in text
    await refused(violations, js.streams_info, after=1)
    assert (await service_nc.jetstream().stream_info(STREAM)).config.name == STREAM
    await app.close()


async def test_service_uses_its_buckets(auth_nats_server: AuthServer) -> None:
    """Role service creates, writes, reads, lists (a watch) and deletes in its buckets."""
    violations = Violations()
    nc = await auth_nats_server.connect("service", violations)
    js = nc.jetstream(timeout=2)
    for bucket in ("tgqr_sessions", "tgqr_leases", "tgqr_dedupe"):
        kv = await js.create_key_value(bucket=bucket, history=2)
        await kv.put("alice", b"one")
        await kv.update("alice", b"two", last=1)
        assert (await kv.get("alice")).value == b"two"
        assert await kv.keys() == ["alice"]
        await kv.delete("alice")
        await kv.purge("alice")
    assert violations.seen == []
    await nc.close()


async def test_service_reads_a_long_tenant_log(auth_nats_server: AuthServer) -> None:
    """Role service appends and reads back a tenant log long enough to be streamed through an
    ordered consumer on its subject (the first messages are single reads)."""
    violations = Violations()
    nc = await auth_nats_server.connect("service", violations)
    js = nc.jetstream(timeout=2)
    await ensure_stream(js)
    log = JetStreamEventLog(js, ChainKey(b"r" * 32), timeout=2)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    events = [Scanned(tenant="alice", attempt=1, at=at) for _ in range(40)]
    head = await log.append("alice", events, Head())
    tenant_log = await log.load_tenant("alice")
    assert len(tenant_log.records) == 40
    assert not tenant_log.quarantined
    assert tenant_log.head == head
    assert violations.seen == []
    await nc.close()


async def test_service_may_not_delete_its_stream(
    auth_nats_server: AuthServer, service_nc: Client
) -> None:
    """Even the service cannot delete the event log (deny beats allow)."""
    violations = Violations()
    nc = await auth_nats_server.connect("service", violations)
    await refused(violations, lambda: nc.jetstream(timeout=5).delete_stream(STREAM))
    await nc.close()


async def test_auditor_may_not_send_commands(
    auth_nats_server: AuthServer, service_nc: Client
) -> None:
    """Auditor sending a command, a query, a scan or an event: refused; it reads only."""
    violations = Violations()
    auditor = await auth_nats_server.connect("auditor", violations)
    subjects = ["tgqr.cmd.alice.start", "tgqr.query.status", "tgqr.sim.scan", "tgqr.evt.a"]
    for n, subject in enumerate(subjects):
        text = await refused(
            violations, lambda s=subject: auditor.request(s, b"{}", timeout=5), after=n
        )
        assert f'publish to "{subject}"' in text
    await refused(violations, lambda: auditor.subscribe("_INBOX.>"), after=len(subjects))
    await auditor.close()


async def test_app_may_not_rebuild_projections(auth_nats_server: AuthServer) -> None:
    """A rebuild is the operator's (role service), not the app's."""
    violations = Violations()
    app = await auth_nats_server.connect("app", violations)
    await refused(violations, lambda: app.request("tgqr.query.rebuild", b"{}", timeout=5))
    await app.close()


# --- each role does its job -----------------------------------------------------------


async def test_service_and_app_run_a_login_end_to_end(
    embedded: tuple[RunningService, Path],
) -> None:
    """The embedded server has auth on; role app starts a login, scans, follows the stream
    with an ordered consumer, queries status and pings the micro service: all permitted."""
    running, data = embedded
    assert running.nats_url.startswith("nats://127.0.0.1:")
    violations = Violations()
    app = await connect_as(data, "app", violations)
    js = app.jetstream(timeout=5)
    seen: list[str] = []
    arrived: dict[str, anyio.Event] = {"QrIssued": anyio.Event(), "Authorized": anyio.Event()}

    async def on_event(msg: Any) -> None:
        seen.append(json.loads(msg.data)["type"])
        if seen[-1] in arrived:
            arrived[seen[-1]].set()

    sub = await js.subscribe(
        "tgqr.evt.alice",
        stream=STREAM,
        cb=on_event,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
    )
    assert (await request(app, "tgqr.cmd.alice.start", {}))["ok"]
    with anyio.fail_after(20):
        await arrived["QrIssued"].wait()
        assert (await request(app, "tgqr.sim.scan", {"tenant": "alice", "user_id": 5}))["ok"]
        await arrived["Authorized"].wait()
    assert seen[:3] == ["LoginStarted", "QrIssued", "Scanned"]
    await sub.unsubscribe()
    assert (await request(app, "tgqr.query.status", {"tenant": "alice"}))["ok"]
    assert (await request(app, "tgqr.query.health", {}))["ok"]
    ping = await app.request("$SRV.PING.tgqr", b"", timeout=5)
    assert json.loads(ping.data)["name"] == "tgqr"
    assert violations.seen == []
    await app.close()


async def test_auditor_replays_and_verifies_the_log(
    embedded: tuple[RunningService, Path],
) -> None:
    """Role auditor reads every event (ordered consumer, message gets) and verifies the
    chains with the chain key: what `tgqr audit --verify` does."""
    running, data = embedded
    app = await connect_as(data, "app")
    assert (await request(app, "tgqr.cmd.bob.start", {}))["ok"]
    assert (await request(app, "tgqr.cmd.bob.cancel", {}))["ok"]
    await app.close()
    violations = Violations()
    auditor = await connect_as(data, "auditor", violations)
    await mirrored(auditor, running)  # the auditor reads the clients' mirror
    log = JetStreamEventLog(auditor.jetstream(timeout=5), running.chain_key)
    report = await audit_verify(log, running.chain_key)
    assert report.ok
    assert report.checked >= 2
    assert violations.seen == []
    await auditor.close()


async def test_app_may_not_reach_an_instance_directly(
    embedded: tuple[RunningService, Path],
) -> None:
    """Requests forwarded between instances travel on ``tgqr.inst.<instance>.<subject>`` in
    account TGQR: an app cannot publish there (not in its allow-list, not exported), so it
    cannot skip the routing or pose as another instance; bob's log stays as it was."""
    running, data = embedded
    assert running.ownership is not None
    me = running.ownership.me
    violations = Violations()
    app = await connect_as(data, "app", violations)
    subject = f"tgqr.inst.{me}.tgqr.cmd.bob.start"
    text = await refused(violations, lambda: app.request(subject, b"{}", timeout=2))
    assert f'publish to "{subject}"' in text
    assert await core_subjects(running, "bob") == []
    await app.close()
