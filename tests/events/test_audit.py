"""Audit replay: filters, one-line formatting, and chain verification."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest
from nats.js import JetStreamContext

from events import (
    ChainKey,
    Event,
    Head,
    LoginStarted,
    MemoryEventLog,
    QrIssued,
    QuarantineLifted,
    Record,
    Undecodable,
    encode_event,
)
from events.audit import (
    UnknownEventTypeError,
    audit_verify,
    format_record,
    key_mismatch_text,
    marks_of,
    released_marks,
    replay,
)
from events.jetstream import STREAM, JetStreamEventLog, ensure_stream
from tests.projections._histories import T0, Script, fill, interleave, tenant_events

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"k" * 32)


def two_tenants() -> list[Event]:
    acme = tenant_events("acme", [Script("authorized", floods=1), Script("expired")])
    beta = tenant_events("beta", [Script("cancelled")], start=T0 + timedelta(minutes=5))
    return interleave([acme, beta], [0, 1] * 40)


@pytest.fixture
async def log() -> MemoryEventLog:
    log = MemoryEventLog(KEY)
    await fill(log, two_tenants())
    return log


async def test_filters_by_tenant_time_and_type(log: MemoryEventLog) -> None:
    """Each filter narrows the replay; stream order is kept."""
    everything = [r async for r in replay(log)]
    assert [r.seq for r in everything] == list(range(1, await log.last_seq() + 1))
    beta = [r async for r in replay(log, tenant="beta")]
    assert beta
    assert {r.tenant for r in beta if isinstance(r, Record)} == {"beta"}
    since = T0 + timedelta(minutes=5)
    late = [r async for r in replay(log, since=since, until=since + timedelta(seconds=14))]
    assert late
    assert all(isinstance(r, Record) and since <= r.event.at < since + timedelta(seconds=14)
               for r in late)  # fmt: skip
    qrs = [r async for r in replay(log, types=["QrIssued", "Expired"])]
    assert {type(r.event).__name__ for r in qrs if isinstance(r, Record)} == {"QrIssued", "Expired"}
    with pytest.raises(UnknownEventTypeError):
        [r async for r in replay(log, types=["Teleported"])]


async def test_human_lines_shorten_tokens_and_macs(log: MemoryEventLog) -> None:
    """Human output shows seq, time, tenant, type and fields, never a token or MAC in full."""
    records = [r async for r in replay(log, tenant="acme", types=["QrIssued"])]
    record = records[0]
    assert isinstance(record, Record)
    line = format_record(record)
    assert line.startswith(f"#{record.seq} 2025-01-01T12:00:07Z acme QrIssued attempt=1 ")
    assert "url=tg://login?token=acme…" in line
    assert isinstance(record.event, QrIssued)
    assert record.event.url not in line
    assert record.mac not in line
    assert f"mac={record.mac[:8]}…" in line
    assert "\n" not in line


async def test_json_lines_carry_everything(log: MemoryEventLog) -> None:
    """JSON output is one complete object per line."""
    [record, *_] = [r async for r in replay(log, types=["Authorized"])]
    assert isinstance(record, Record)
    decoded = msgspec.json.decode(format_record(record, json=True))
    assert decoded["seq"] == record.seq
    assert decoded["type"] == "Authorized"
    assert decoded["mac"] == record.mac
    assert decoded["event"]["user_id"] == 1001
    assert decoded["event"]["prev"] == record.event.prev


async def test_undecodable_messages_are_shown(log: MemoryEventLog) -> None:
    """Garbage is replayed (and formatted) rather than hidden."""
    seq = log.inject("tgqr.evt.beta", b"garbage")
    [item] = [r async for r in replay(log, tenant="beta") if r.seq == seq]
    assert "UNDECODABLE" in format_record(item)
    assert msgspec.json.decode(format_record(item, json=True))["seq"] == seq


async def test_verify_passes_on_an_honest_log(log: MemoryEventLog) -> None:
    report = await audit_verify(log, KEY)
    assert report.ok
    assert report.tenants == 2
    assert (await audit_verify(log, KEY, tenant="beta")).ok


async def test_verify_names_a_forged_event(log: MemoryEventLog) -> None:
    """An event stored without the key's MAC fails at its own sequence."""
    head = await log.head("acme")
    forged = LoginStarted(tenant="acme", attempt=9, at=T0, deadline=T0, id="f", prev=head.mac)
    seq = log.inject("tgqr.evt.acme", encode_event(forged), mac="0" * 64)
    report = await audit_verify(log, KEY)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == seq
    assert "forged" in report.first_break.reason


async def test_verify_names_a_deleted_event(js: JetStreamContext) -> None:
    """A message deleted from the stream shows as a gap at its sequence."""
    await ensure_stream(js, deny_delete=False)
    log = JetStreamEventLog(js, KEY)
    for tenant in ("acme", "beta"):
        await log.append(tenant, tenant_events(tenant, [Script("authorized")]), Head())
    assert (await audit_verify(log, KEY)).ok
    victim = 3
    await js.delete_msg(STREAM, victim)
    report = await audit_verify(log, KEY)
    assert not report.ok
    assert report.first_break is not None
    assert report.first_break.seq == victim
    assert any("chain link broken" in b.reason for b in report.breaks)


async def test_bad_messages_stay_in_the_replay_marked(log: MemoryEventLog) -> None:
    """A verified audit marks each bad message with why and, once a QuarantineLifted names
    it, by which sequence it was released; a plain replay (no key) marks what lifts name."""
    junk = log.inject("tgqr.evt.beta", b"junk")
    tenant_log = await log.load_tenant("beta")
    lifted = QuarantineLifted(tenant="beta", attempt=1, at=T0, sequences=(junk,), note="test junk")
    head = await log.append("beta", [lifted], tenant_log.head)
    report = await audit_verify(log, KEY)
    assert report.ok
    marks = marks_of(report)
    plain = await released_marks(log)
    [item] = [r async for r in replay(log) if r.seq == junk]
    assert isinstance(item, Undecodable)
    for mark, expected in (
        (marks.get(item), f"not in the chain: undecodable: {item.error.why}; "),
        (plain.get(item), ""),
    ):
        assert mark is not None
        line = format_record(item, mark=mark)
        assert line.endswith(f" | {expected}released by QuarantineLifted at sequence {head.seq}")
        decoded = msgspec.json.decode(format_record(item, json=True, mark=mark))
        assert decoded["released_by"] == head.seq
    assert msgspec.json.decode(format_record(item, json=True, mark=marks.get(item)))["bad"]
    honest = [r async for r in replay(log, tenant="acme")]
    assert all(marks.get(r) is None and plain.get(r) is None for r in honest)
    assert len(await released_marks(log, tenant="acme")) == 0


async def test_a_lift_marks_only_its_own_tenants_messages(log: MemoryEventLog) -> None:
    """A QuarantineLifted names sequences of its own tenant: the same number on another
    tenant's subject is not marked."""
    [acme_seq, *_] = [r.seq async for r in replay(log, tenant="acme")]
    tenant_log = await log.load_tenant("beta")
    lifted = QuarantineLifted(tenant="beta", attempt=1, at=T0, sequences=(acme_seq,))
    await log.append("beta", [lifted], tenant_log.head)
    plain = await released_marks(log)
    [item] = [r async for r in replay(log) if r.seq == acme_seq]
    assert plain.get(item) is None


async def test_key_mismatch_text_names_both_ids(log: MemoryEventLog) -> None:
    """With another key the report is a mismatch and its one line names the log's key id
    and the reader's, never a key."""
    other = ChainKey(b"o" * 32)
    report = await audit_verify(log, other)
    assert report.key_mismatch
    text = key_mismatch_text(report, "var/chain.key")
    assert text == (
        f"the chain key does not match this log: its events were sealed with key id {KEY.id}, "
        f"the key from var/chain.key has id {other.id}"
    )
