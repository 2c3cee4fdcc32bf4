"""One contract suite for every EventLog adapter: the in-memory fake and JetStream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio
import msgspec
import nats
import pytest

from actors.service import NatsServer
from events import (
    MAC_HEADER,
    MAX_CHUNK,
    ChainKey,
    ConcurrencyConflictError,
    Event,
    EventLog,
    Head,
    InvalidTenantError,
    LoginStarted,
    MemoryEventLog,
    QrIssued,
    QuarantineLifted,
    Record,
    Scanned,
    TenantQuarantinedError,
    Undecodable,
    decode_stored,
    event_subject,
)
from events.jetstream import JetStreamEventLog, ensure_stream

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"contract-test-key-0123456789abcdef")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def started(tenant: str, attempt: int = 1, **kw: object) -> Event:
    return LoginStarted(tenant=tenant, attempt=attempt, at=T0, deadline=T0, **kw)  # type: ignore[arg-type]


def qr(tenant: str, n: int) -> Event:
    return QrIssued(
        tenant=tenant, attempt=1, at=T0, url=f"tg://login?token={n}", expires_at=T0, dc_id=1
    )


@pytest.fixture(params=["memory", "jetstream"])
async def log(request: pytest.FixtureRequest) -> AsyncIterator[EventLog]:
    if request.param == "memory":
        yield MemoryEventLog(KEY)
        return
    server: NatsServer = request.getfixturevalue("nats_server")
    nc = await nats.connect(server.url, max_reconnect_attempts=0)
    js = nc.jetstream()
    await ensure_stream(js)
    yield JetStreamEventLog(js, KEY)
    await nc.drain()


async def inject_raw(log: EventLog, tenant: str, data: bytes, mac: str = "") -> None:
    """Store raw bytes on a tenant's subject, bypassing the log (a bug's or a forger's write)."""
    if isinstance(log, MemoryEventLog):
        log.inject(event_subject(tenant), data, mac)
    else:
        assert isinstance(log, JetStreamEventLog)
        headers = {MAC_HEADER: mac} if mac else None
        await log._js.publish(event_subject(tenant), data, headers=headers)


async def collect(log: EventLog, start: int = 1) -> list[Record | Undecodable]:
    return [item async for item in log.read_all(start)]


async def test_append_then_read_round_trips(log: EventLog) -> None:
    """Appended events come back equal, in order, chained, with increasing sequences."""
    head = await log.append("alice", [started("alice"), qr("alice", 1), qr("alice", 2)], Head())
    records = await log.read_tenant("alice")
    assert [type(r.event) for r in records] == [LoginStarted, QrIssued, QrIssued]
    assert [r.event.url for r in records[1:]] == ["tg://login?token=1", "tg://login?token=2"]  # type: ignore[union-attr]
    assert records[0].event.prev == ""
    assert [r.event.prev for r in records[1:]] == [r.mac for r in records[:-1]]
    assert head == Head(records[-1].seq, records[-1].mac)
    assert await log.head("alice") == head
    assert all(r.event.id for r in records)


async def test_read_after_sequence(log: EventLog) -> None:
    """read_tenant(after=n) returns only the events stored after n."""
    head1 = await log.append("alice", [started("alice")], Head())
    await log.append("alice", [qr("alice", 1)], head1)
    after = await log.read_tenant("alice", after=head1.seq)
    assert [type(r.event) for r in after] == [QrIssued]


async def test_heads_are_per_tenant(log: EventLog) -> None:
    """Each tenant has its own head; an unknown tenant has the empty head."""
    a = await log.append("alice", [started("alice")], Head())
    b = await log.append("bob", [started("bob")], Head())
    a2 = await log.append("alice", [qr("alice", 1)], a)
    assert await log.head("alice") == a2
    assert await log.head("bob") == b
    assert await log.head("carol") == Head()
    assert await log.tenants() == ["alice", "bob"]


async def test_read_all_is_in_stream_order(log: EventLog) -> None:
    """read_all yields every tenant's events interleaved in stream order, from any start."""
    ha = await log.append("alice", [started("alice")], Head())
    hb = await log.append("bob", [started("bob")], Head())
    await log.append("alice", [qr("alice", 1)], ha)
    await log.append("bob", [qr("bob", 1)], hb)
    items = await collect(log)
    assert [(i.tenant, type(i.event).__name__) for i in items if isinstance(i, Record)] == [
        ("alice", "LoginStarted"),
        ("bob", "LoginStarted"),
        ("alice", "QrIssued"),
        ("bob", "QrIssued"),
    ]
    seqs = [i.seq for i in items]
    assert seqs == sorted(seqs)
    assert [i.seq for i in await collect(log, seqs[2])] == seqs[2:]
    assert await log.last_seq() == seqs[-1]
    assert await collect(log, seqs[-1] + 1) == []


async def test_read_chunks_hands_out_stored_bytes_in_bounded_chunks(log: EventLog) -> None:
    """read_chunks yields non-empty chunks of at most MAX_CHUNK undecoded messages: the
    exact stored bytes, MAC and subject, store times, in stream order, garbage included;
    without follow it ends at the last message stored when it began."""
    events = [started("alice"), *(qr("alice", n) for n in range(MAX_CHUNK + 10))]
    head = await log.append("alice", events[:1], Head())
    await inject_raw(log, "alice", b"garbage")
    await log.append("alice", events[1:], (await log.load_tenant("alice")).head)
    chunks = [chunk async for chunk in log.read_chunks(1)]
    assert all(0 < len(chunk) <= MAX_CHUNK for chunk in chunks)
    messages = [m for chunk in chunks for m in chunk]
    assert [m.seq for m in messages] == list(range(1, len(events) + 2))
    records = [r for r in (await log.load_tenant("alice")).records if r.seq > 2]
    assert [(m.data, m.mac) for m in messages[2:]] == [(r.data, r.mac) for r in records]
    assert messages[0].mac == head.mac
    assert (messages[1].subject, messages[1].data) == (event_subject("alice"), b"garbage")
    assert all(m.stored_at is not None for m in messages)
    assert isinstance(decode_stored(messages[1]), Undecodable)
    assert [m.seq async for chunk in log.read_chunks(len(messages)) for m in chunk] == [
        len(messages)
    ]


async def test_follow_yields_new_events(log: EventLog) -> None:
    """read_all(follow=True) delivers events appended after it started."""
    head = await log.append("alice", [started("alice")], Head())
    seen: list[int] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:

            async def follow() -> None:
                async for item in log.read_all(1, follow=True):
                    seen.append(item.seq)
                    if len(seen) == 2:
                        tg.cancel_scope.cancel()

            tg.start_soon(follow)
            await log.append("alice", [qr("alice", 1)], head)
    assert len(seen) == 2


async def test_stale_head_is_a_conflict(log: EventLog) -> None:
    """Appending at an old head raises ConcurrencyConflictError and stores nothing."""
    h1 = await log.append("alice", [started("alice")], Head())
    await log.append("alice", [qr("alice", 1)], h1)
    before = await log.last_seq()
    with pytest.raises(ConcurrencyConflictError):
        await log.append("alice", [qr("alice", 9)], h1)
    with pytest.raises(ConcurrencyConflictError):
        await log.append("alice", [started("alice", 2)], Head())
    assert await log.last_seq() == before


async def test_racing_writers_never_fork(log: EventLog) -> None:
    """Two writers racing on one tenant: exactly one wins each round; one linear history."""
    head = await log.append("alice", [started("alice")], Head())
    for round_ in range(10):
        outcomes: dict[str, Head | Exception] = {}

        async def write(name: str, at: Head, n: int = round_) -> None:
            try:
                outcomes[name] = await log.append("alice", [qr("alice", n)], at)
            except ConcurrencyConflictError as exc:
                outcomes[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(write, "a", head)
            tg.start_soon(write, "b", head)
        winners = [h for h in outcomes.values() if isinstance(h, Head)]
        assert len(winners) == 1
        head = winners[0]
    records = await log.read_tenant("alice")
    assert len(records) == 11
    assert [r.event.prev for r in records[1:]] == [r.mac for r in records[:-1]]


async def test_resent_append_is_recognised_as_ours(log: EventLog) -> None:
    """The same events (same ids) resent after they were stored succeed without duplicates."""
    events = [
        msgspec.structs.replace(started("alice"), id="evt-1"),
        msgspec.structs.replace(qr("alice", 1), id="evt-2"),
    ]
    head = await log.append("alice", events, Head())
    again = await log.append("alice", events, Head())
    assert again == head
    first = (await log.read_tenant("alice"))[0]
    partly = await log.append("alice", events[1:], Head(first.seq, first.mac))
    assert partly == head
    assert len(await log.read_tenant("alice")) == 2


async def test_invalid_tenant_is_rejected_before_publishing(log: EventLog) -> None:
    """A bad tenant id raises InvalidTenantError and nothing is stored."""
    for bad in ["", "a.b", "a b", "x" * 65, "tgqr.evt.*", "ünï", ">"]:
        with pytest.raises(InvalidTenantError):
            await log.append(bad, [started(bad)], Head())
        with pytest.raises(InvalidTenantError):
            await log.read_tenant(bad)
    assert await log.last_seq() == 0


async def test_events_of_another_tenant_are_refused(log: EventLog) -> None:
    """append refuses events whose tenant differs from the aggregate's."""
    with pytest.raises(ValueError, match="belong"):
        await log.append("alice", [started("bob")], Head())
    assert await log.last_seq() == 0


async def test_undecodable_data_names_its_sequence(log: EventLog) -> None:
    """Garbage, unknown types and newer schemas surface as typed errors, never silently."""
    head = await log.append("alice", [started("alice")], Head())
    bad = [
        b"not json",
        b'{"type":"Teleported","tenant":"alice"}',
        b'{"type":"Scanned","tenant":"alice","attempt":1,"at":"2026-01-01T00:00:00Z","v":99}',
    ]
    for data in bad:
        await inject_raw(log, "alice", data)
    items = await collect(log)
    assert isinstance(items[0], Record)
    broken = items[1:]
    assert all(isinstance(i, Undecodable) for i in broken)
    assert [i.seq for i in broken] == [head.seq + 1, head.seq + 2, head.seq + 3]
    reasons = [i.error.why for i in broken if isinstance(i, Undecodable)]
    assert "JSON" in reasons[0]
    assert "unknown event type" in reasons[1]
    assert "newer" in reasons[2]
    with pytest.raises(TenantQuarantinedError) as info:
        await log.read_tenant("alice")
    assert [seq for seq, _ in info.value.bad] == [head.seq + 1, head.seq + 2, head.seq + 3]
    assert all(reason.startswith("undecodable") for _, reason in info.value.bad)
    assert str(head.seq + 1) in str(info.value)


async def test_forged_and_replayed_events_quarantine_the_tenant(log: EventLog) -> None:
    """A well-formed event with a made-up MAC, and a genuine event stored again, do not
    verify: they change nothing, every other tenant reads fine, and a later genuine event
    links past them."""
    head = await log.append("alice", [started("alice"), qr("alice", 1)], Head())
    await log.append("bob", [started("bob")], Head())
    genuine = (await log.read_tenant("alice"))[-1]
    forged = msgspec.json.encode(
        {"type": "Scanned", "tenant": "alice", "attempt": 1, "at": "2026-01-01T00:00:00Z"}
    )
    await inject_raw(log, "alice", forged, "0" * 64)
    await inject_raw(log, "alice", genuine.data, genuine.mac)  # a replay
    tenant_log = await log.load_tenant("alice")
    assert [r.seq for r in tenant_log.records] == [head.seq - 1, head.seq]
    assert [b.reason for b in tenant_log.bad] == [
        "MAC mismatch: event altered or forged",
        "chain link broken: previous event deleted or reordered",
    ]
    assert tenant_log.head.mac == head.mac
    assert tenant_log.head.seq == head.seq + 3  # bob's event sits in between
    with pytest.raises(TenantQuarantinedError):
        await log.read_tenant("alice")
    assert len(await log.read_tenant("bob")) == 1
    lifted = QuarantineLifted(
        tenant="alice",
        attempt=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        sequences=tuple(b.seq for b in tenant_log.bad),
    )
    await log.append("alice", [lifted, qr("alice", 2)], tenant_log.head)
    released = await log.load_tenant("alice")
    assert not released.quarantined
    assert [b.seq for b in released.released] == [b.seq for b in tenant_log.bad]
    kinds = [type(r.event).__name__ for r in await log.read_tenant("alice")]
    assert kinds == ["LoginStarted", "QrIssued", "QuarantineLifted", "QrIssued"]


async def test_scanned_events_have_no_extra_fields(log: EventLog) -> None:
    """An event without fields beyond the envelope round-trips."""
    await log.append("alice", [Scanned(tenant="alice", attempt=1, at=T0)], Head())
    (record,) = await log.read_tenant("alice")
    assert isinstance(record.event, Scanned)


async def test_a_long_tenant_log_reads_whole_and_in_order(log: EventLog) -> None:
    """A tenant with many more events than the adapter reads one by one (its rest streams),
    interleaved with another tenant and a bad message: every event, in order, once; the
    maybe-mine check after a head deep in the log sees the same tail."""
    head = await log.append("alice", [started("alice")], Head())
    for n in range(60):
        head = await log.append("alice", [qr("alice", n)], head)
        if n % 7 == 0:
            await log.append("bob", [started("bob")], (await log.load_tenant("bob")).head)
        if n == 40:
            await inject_raw(log, "alice", b"junk")
            head = (await log.load_tenant("alice")).head
    tenant_log = await log.load_tenant("alice")
    urls = [r.event.url for r in tenant_log.records[1:]]  # type: ignore[union-attr]
    assert urls == [f"tg://login?token={n}" for n in range(60)]
    seqs = [r.seq for r in tenant_log.records]
    assert seqs == sorted(set(seqs))
    assert [b.reason[:11] for b in tenant_log.bad] == ["undecodable"]
    assert tenant_log.head == head
    middle = tenant_log.records[20]
    tail = await log.load_tenant("alice", after=Head(middle.seq, middle.mac))
    assert [r.seq for r in tail.records] == [r.seq for r in tenant_log.records[21:]]
