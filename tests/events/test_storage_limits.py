"""Bounded stores: the log refuses oversize events and, when full, new ones, and never drops
history; an existing stream gains its limits at start without losing anything; consumers are
bounded in number and expire when idle. Both adapters where the behaviour is the port's."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext, api

from actors.service import NatsServer
from events import (
    ChainKey,
    Event,
    EventLog,
    EventLogFullError,
    EventTooLargeError,
    Head,
    LoginStarted,
    MemoryEventLog,
    QrIssued,
    StorageLimits,
    StoragePolicy,
    storage_warning,
    verify_log,
)
from events._jsinbox import Inbox
from events.jetstream import OWN_CONSUMER_IDLE_S, JetStreamEventLog, ensure_stream
from events.jsstorage import LOG_CONSUMER_IDLE_S, STREAM

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"limits-test-key-0123456789abcdef")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SMALL = StorageLimits(max_bytes=1 << 20, max_msgs=5, max_msg_size=2048, max_consumers=8)


def started(tenant: str) -> Event:
    return LoginStarted(tenant=tenant, attempt=1, at=T0, deadline=T0)


def qr(tenant: str, n: int, pad: int = 0) -> Event:
    url = f"tg://login?token={n}{'x' * pad}"
    return QrIssued(tenant=tenant, attempt=1, at=T0, url=url, expires_at=T0, dc_id=1)


@pytest.fixture
async def js(nats_server: NatsServer) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    yield nc.jetstream()
    await nc.drain()


@pytest.fixture(params=["memory", "jetstream"])
async def small_log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    """A log of at most five messages of at most 2 KiB."""
    if request.param == "memory":
        yield MemoryEventLog(KEY, limits=SMALL)
        return
    server: NatsServer = request.getfixturevalue("nats_server")
    nc = await nats.connect(server.url, max_reconnect_attempts=0)
    await ensure_stream(nc.jetstream(), limits=SMALL)
    yield JetStreamEventLog(nc.jetstream(), KEY)
    await nc.drain()


async def test_an_oversize_append_is_refused_whole(small_log: EventLog) -> None:
    """An append whose second event is too large stores none of them, and says why."""
    with pytest.raises(EventTooLargeError) as info:
        await small_log.append("alice", [started("alice"), qr("alice", 1, pad=4000)], Head())
    assert (info.value.event_type, info.value.limit) == ("QrIssued", 2048)
    assert info.value.size > 2048
    assert "nothing stored" in str(info.value)
    assert await small_log.last_seq() == 0
    head = await small_log.append("alice", [started("alice")], Head())
    assert head.seq == 1


async def test_the_stream_itself_refuses_an_oversize_message(js: JetStreamContext) -> None:
    """Past the adapter's own check, the stream's max_msg_size refuses the message: the error
    is the same structured one and nothing is stored."""

    class Unchecked(JetStreamEventLog):
        async def _max_message_bytes(self) -> int | None:
            return None

    await ensure_stream(js, limits=SMALL)
    log = Unchecked(js, KEY)
    with pytest.raises(EventTooLargeError):
        await log.append("alice", [qr("alice", 1, pad=4000)], Head())
    assert await log.last_seq() == 0


async def test_a_full_log_refuses_new_events_and_keeps_its_history(small_log: EventLog) -> None:
    """At its message limit the log refuses the next append (EventLogFullError), deletes
    nothing, and reports itself full with a warning."""
    head = await small_log.append("alice", [started("alice")], Head())
    for n in range(4):
        head = await small_log.append("alice", [qr("alice", n)], head)
    with pytest.raises(EventLogFullError, match="full"):
        await small_log.append("alice", [qr("alice", 9)], head)
    records = await small_log.read_tenant("alice")
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert (await verify_log(small_log, KEY)).ok
    (use, *_) = await small_log.storage()
    assert (use.msgs, use.max_msgs, use.fill) == (5, 5, 1.0)
    warning = storage_warning([use])
    assert warning is not None
    assert "100% full" in warning
    assert "deletes nothing" in warning


async def test_a_log_full_in_bytes_refuses_too(js: JetStreamContext) -> None:
    """The byte limit refuses like the message limit (discard new), never dropping old ones."""
    limits = dataclasses.replace(SMALL, max_bytes=2000, max_msgs=1000)
    await ensure_stream(js, limits=limits)
    log = JetStreamEventLog(js, KEY)
    head = await log.append("alice", [started("alice")], Head())

    async def fill() -> None:
        nonlocal head
        for n in range(100):
            head = await log.append("alice", [qr("alice", n)], head)

    with pytest.raises(EventLogFullError):
        await fill()
    info = await js.stream_info(STREAM)
    assert info.state.first_seq == 1
    assert info.state.messages == len(await log.read_tenant("alice"))


async def test_the_stream_has_its_limits_after_start(js: JetStreamContext) -> None:
    """ensure_stream sets every limit of the policy, discard new and idle-consumer expiry."""
    info = await ensure_stream(js)
    policy = StoragePolicy().log
    config = info.config
    assert config.max_bytes == policy.max_bytes
    assert config.max_msgs == policy.max_msgs
    assert config.max_msg_size == policy.max_msg_size
    assert config.max_consumers == policy.max_consumers
    assert config.discard == api.DiscardPolicy.NEW
    assert config.consumer_limits is not None
    assert config.consumer_limits.inactive_threshold == LOG_CONSUMER_IDLE_S
    assert (config.deny_delete, config.deny_purge) == (True, True)


async def test_an_old_stream_gains_limits_without_losing_anything(js: JetStreamContext) -> None:
    """A stream created without limits (as before them, discard old) is updated in place at
    start, even to limits below what it holds: every message stays, the chains verify, and
    the next append is refused rather than an old event deleted."""
    await js.add_stream(
        api.StreamConfig(
            name=STREAM,
            subjects=["tgqr.evt.>"],
            storage=api.StorageType.FILE,
            duplicate_window=120.0,
            deny_delete=True,
            deny_purge=True,
            allow_direct=True,
            discard=api.DiscardPolicy.OLD,
        )
    )
    log = JetStreamEventLog(js, KEY)
    heads = {t: await log.append(t, [started(t)], Head()) for t in ("alice", "bob")}
    for n in range(9):
        heads["alice"] = await log.append("alice", [qr("alice", n)], heads["alice"])
    info = await ensure_stream(js, limits=SMALL)
    assert (info.config.max_msgs, info.config.max_consumers) == (5, SMALL.max_consumers)
    assert info.config.discard == api.DiscardPolicy.NEW
    assert (info.state.first_seq, info.state.messages) == (1, 11)
    with pytest.raises(EventLogFullError):
        await log.append("bob", [qr("bob", 1)], heads["bob"])
    report = await verify_log(log, KEY)
    assert report.ok
    assert report.verified == 11
    again = await ensure_stream(js)
    assert again.state.messages == 11
    await log.append("bob", [qr("bob", 1)], heads["bob"])


async def test_consumers_are_bounded_and_expire_when_idle(js: JetStreamContext) -> None:
    """At most max_consumers exist at once; a durable asked without an expiry gets the
    stream's, one asking to stay longer is refused; the log's own readers expire soon."""
    await ensure_stream(js, limits=dataclasses.replace(SMALL, max_consumers=2))
    durable = await js.add_consumer(STREAM, api.ConsumerConfig(durable_name="app"))
    assert durable.config.inactive_threshold == LOG_CONSUMER_IDLE_S
    with pytest.raises(nats.js.errors.APIError) as longer:
        await js.add_consumer(
            STREAM, api.ConsumerConfig(durable_name="forever", inactive_threshold=86400.0)
        )
    assert longer.value.err_code == 10153
    log = JetStreamEventLog(js, KEY)
    sub = await log._follow("tgqr.evt.>", 1, Inbox())
    try:
        info = await sub.consumer_info()
        assert info.config.inactive_threshold == OWN_CONSUMER_IDLE_S
        with pytest.raises(nats.js.errors.APIError) as more:
            await js.add_consumer(STREAM, api.ConsumerConfig(durable_name="third"))
        assert more.value.err_code == 10026  # maximum consumers limit reached
    finally:
        await sub.unsubscribe()


def test_limits_come_from_the_environment() -> None:
    """TGQR_<STORE>_MAX_* replace the defaults, with K/M/G suffixes; bad values name the
    variable."""
    policy = StoragePolicy.from_env(
        {"TGQR_LOG_MAX_BYTES": "10G", "TGQR_DEDUPE_MAX_CONSUMERS": "16", "TGQR_LOG_MAX_MSGS": ""}
    )
    assert policy.log.max_bytes == 10 << 30
    assert policy.log.max_msgs == StoragePolicy().log.max_msgs
    assert policy.dedupe.max_consumers == 16
    assert policy.sessions == StoragePolicy().sessions
    for bad in ("0", "-1", "1.5G", "lots"):
        with pytest.raises(ValueError, match="TGQR_SESSIONS_MAX_BYTES"):
            StoragePolicy.from_env({"TGQR_SESSIONS_MAX_BYTES": bad})
