"""The boundary, attacked with each role's real credentials on the embedded server (auth on,
the accounts of the shipped ``nats.conf``): no request makes tgqr publish anywhere but an
inbox reply, and no client reaches the log's or the buckets' subjects.

Each attack is one that worked before the accounts: a reply subject chosen to land in the log
or the sessions bucket, a JetStream API reply or a push consumer aimed at the command subjects,
the log's consumer API reached from the clients' account.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import nats.errors
import pytest
from nats.aio.client import Client
from nats.js import api

from actors.service import RunningService, Violations
from actors.service._mirror import MIRROR_CONSUMER_IDLE_S, MIRROR_MAX_CONSUMERS
from events.audit import audit_verify
from events.jetstream import STREAM, JetStreamEventLog
from tests.actors.service.conftest import Driver, connect_as, core_subjects, mirrored, request
from tests.actors.service.test_roles import refused

pytestmark = pytest.mark.anyio

SESSIONS = "tgqr_sessions"


async def log_in(app: Client, tenant: str, user_id: int) -> None:
    """Start ``tenant``'s login, scan it and wait until it is authorized (reads the mirror)."""
    js = app.jetstream(timeout=5)
    sub = await js.subscribe(
        f"tgqr.evt.{tenant}",
        stream=STREAM,
        ordered_consumer=True,
        config=api.ConsumerConfig(deliver_policy=api.DeliverPolicy.ALL),
    )
    assert (await request(app, f"tgqr.cmd.{tenant}.start", {}))["ok"]
    with anyio.fail_after(20):
        async for msg in sub.messages:
            kind = json.loads(msg.data)["type"]
            if kind == "QrIssued":
                assert (
                    await request(app, "tgqr.sim.scan", {"tenant": tenant, "user_id": user_id})
                )["ok"]
            if kind == "Authorized":
                break
    await sub.unsubscribe()


async def aim_replies_at_bobs_log(app: Client) -> None:
    """Start bob, then ask $SRV, two queries and a command with ``reply=tgqr.evt.bob``; return
    once the service has taken them all off the wire (:func:`barrier`)."""
    assert (await request(app, "tgqr.cmd.bob.start", {}))["ok"]
    for subject, body in [
        ("$SRV.PING", b""),
        ("$SRV.INFO.tgqr", b""),
        ("tgqr.query.health", b"{}"),
        ("tgqr.query.status", b'{"tenant": "bob"}'),
        ("tgqr.cmd.bob.cancel", b"{}"),
    ]:
        await app.publish(subject, body, reply="tgqr.evt.bob")
    await barrier(app)


async def barrier(app: Client) -> None:
    """One answered request of each kind the attacks used, after them: the service has taken
    every earlier message of those subscriptions off the wire."""
    assert (await request(app, "tgqr.query.health", {}))["ok"]
    ping = await app.request("$SRV.PING.tgqr", b"", timeout=5)
    assert json.loads(ping.data)["name"] == "tgqr"


async def test_replies_aimed_at_the_log_write_nothing(
    embedded: tuple[RunningService, Path],
) -> None:
    """App requests with ``reply=tgqr.evt.bob`` ($SRV.PING, a query, a command): bob's chain
    holds only his own events and verifies (before: the ping reply was appended and bob was
    quarantined)."""
    running, data = embedded
    app = await connect_as(data, "app")
    await aim_replies_at_bobs_log(app)
    events = await core_subjects(running, "bob")
    assert all("type" in e for e in events), events
    report = await audit_verify(running.event_log, running.chain_key)
    assert report.ok, report
    assert not (await running.event_log.load_tenant("bob")).quarantined
    await app.close()


async def test_replies_aimed_at_the_sessions_bucket_change_nothing(
    embedded: tuple[RunningService, Path],
) -> None:
    """Replies aimed at alice's session entry and at the bucket's purge API leave her sealed
    session as it was (before: overwritten by a health reply, lost for good)."""
    running, data = embedded
    app = await connect_as(data, "app")
    await log_in(app, "alice", 1001)
    kv = await running.nc.jetstream(timeout=5).key_value(SESSIONS)
    watcher = await kv.watch("alice")  # the session is put right after Authorized
    with anyio.fail_after(10):
        async for entry in watcher:
            if entry is not None and entry.value:
                break
    await watcher.stop()  # type: ignore[no-untyped-call]
    before = await _entry(kv, "alice")
    assert before is not None
    for reply in (
        f"$KV.{SESSIONS}.alice",
        f"$JS.API.STREAM.PURGE.KV_{SESSIONS}",
        f"$JS.API.STREAM.DELETE.KV_{SESSIONS}",
    ):
        await app.publish("tgqr.query.health", b"{}", reply=reply)
        await app.publish("$SRV.PING", b"", reply=reply)
        await app.publish("tgqr.session.alice.renew", b"{}", reply=reply)
    await barrier(app)
    after = await _entry(kv, "alice")
    assert after is not None
    assert (after.revision, after.value) == (before.revision, before.value)
    await app.close()


async def _entry(kv: Any, key: str) -> Any:
    try:
        return await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return None


async def test_clients_cannot_reach_the_logs_consumer_api(
    embedded: tuple[RunningService, Path],
) -> None:
    """The log's consumer API exists in the clients' account only for the mirror: an app or an
    auditor creating a consumer there (with a deliver subject inside tgqr's account) is refused."""
    _, data = embedded
    for role in ("app", "auditor", "page"):
        violations = Violations()
        client = await connect_as(data, role, violations)
        body = json.dumps({"stream_name": STREAM, "config": {"deliver_subject": "$KV.x.y"}})
        text = await refused(
            violations,
            lambda c=client, b=body: c.request(
                f"$JS.tgqr.API.CONSUMER.CREATE.{STREAM}", b.encode(), timeout=3
            ),
        )
        assert "$js.tgqr.api" in text.lower()
        await client.close()


async def test_readers_cannot_turn_jetstream_into_commands(
    embedded: tuple[RunningService, Path],
) -> None:
    """An auditor (no command rights) aims a JetStream API reply and a push consumer's deliver
    subject at ``tgqr.cmd.carol.start``: carol gets no login (the reply-less API answer is
    dropped, the delivered events are not command bodies)."""
    running, data = embedded
    app = await connect_as(data, "app")
    assert (await request(app, "tgqr.cmd.dave.start", {}))["ok"]
    await mirrored(app, running)
    auditor = await connect_as(data, "auditor")
    await auditor.publish(f"$JS.API.STREAM.INFO.{STREAM}", b"", reply="tgqr.cmd.carol.start")
    js = auditor.jetstream(timeout=5)
    await js.add_consumer(
        STREAM,
        api.ConsumerConfig(
            deliver_subject="tgqr.cmd.carol.start", deliver_policy=api.DeliverPolicy.ALL
        ),
    )
    # The auditor's own API round trip: the injected answer above went out before it.
    await js.stream_info(STREAM)
    await barrier(app)
    assert (await request(app, "tgqr.cmd.erin.start", {}))["ok"]
    assert await core_subjects(running, "carol") == []
    await auditor.close()
    await app.close()


async def test_the_mirror_is_read_only_and_bounded(
    embedded: tuple[RunningService, Path],
) -> None:
    """Clients read the log through the mirror (same sequences, verifying chains) and cannot
    delete, purge or replace it, create streams, or keep consumers forever."""
    running, data = embedded
    app = await connect_as(data, "app")
    assert (await request(app, "tgqr.cmd.frank.start", {}))["ok"]
    await mirrored(app, running)
    violations = Violations()
    app_v = await connect_as(data, "app", violations)
    js = app_v.jetstream(timeout=3)
    info = await js.stream_info(STREAM)
    assert info.config.mirror is not None
    assert info.config.max_consumers == MIRROR_MAX_CONSUMERS
    assert info.config.consumer_limits is not None
    assert info.config.consumer_limits.inactive_threshold == MIRROR_CONSUMER_IDLE_S
    first = await running.nc.jetstream(timeout=5).get_msg(STREAM, seq=1)
    copy = await js.get_msg(STREAM, seq=1)
    assert (copy.subject, copy.data) == (first.subject, first.data)
    kept = ("Nats-Msg-Id", "Tgqr-Mac")  # the append's expectations are not copied
    assert {k: (copy.headers or {}).get(k) for k in kept} == {
        k: (first.headers or {}).get(k) for k in kept
    }
    reader = JetStreamEventLog(js, running.chain_key)
    assert (await audit_verify(reader, running.chain_key)).ok
    calls = [
        lambda: js.delete_stream(STREAM),
        lambda: js.purge_stream(STREAM),
        lambda: js.add_stream(name="MINE", subjects=["mine.>"]),
        lambda: js.update_stream(api.StreamConfig(name=STREAM, subjects=["tgqr.evt.>"])),
        lambda: app_v.publish("tgqr.evt.frank", b"{}"),
    ]
    for n, call in enumerate(calls):
        await refused(violations, call, after=n)
    # A durable consumer (through the named create, which the reads need) gets the mirror's
    # idle limit: the server deletes it once idle, so an app cannot pile them up.
    body = {"stream_name": STREAM, "config": {"durable_name": "kept", "ack_policy": "explicit"}}
    made = await app_v.request(
        f"$JS.API.CONSUMER.CREATE.{STREAM}.kept", json.dumps(body).encode(), timeout=5
    )
    threshold_ns = json.loads(made.data)["config"]["inactive_threshold"]
    assert threshold_ns == MIRROR_CONSUMER_IDLE_S * 1e9
    await app_v.close()
    await app.close()


async def test_an_open_server_answers_only_inboxes(driver: Driver) -> None:
    """On a server without accounts (one account, no auth) the responders are the wall: a
    request whose reply is not an inbox is not run and gets no answer, so bob's subject and
    alice's bucket entry receive nothing (before: bob was quarantined by a ping reply)."""
    nc, running = driver.nc, driver.service
    for subject, body in [
        ("$SRV.PING", b""),
        ("$SRV.STATS.tgqr", b""),
        ("tgqr.query.health", b"{}"),
        ("tgqr.cmd.bob.start", b"{}"),
        ("tgqr.session.bob.lease", b"{}"),
        ("tgqr.sim.scan", b'{"tenant": "bob", "user_id": 1}'),
    ]:
        await nc.publish(subject, body, reply="tgqr.evt.bob")
        await nc.publish(subject, body, reply=f"$KV.{SESSIONS}.alice")
        await nc.publish(subject, body)  # no reply at all: not a request, not run
    await barrier(nc)
    assert (await driver.scan("carol", 1))["ok"] is False  # the scan endpoint took it all
    assert (await driver.command("dave", "start"))["ok"]
    assert await core_subjects(running, "bob") == []
    kv = await nc.jetstream(timeout=5).key_value(SESSIONS)
    assert await _entry(kv, "alice") is None
