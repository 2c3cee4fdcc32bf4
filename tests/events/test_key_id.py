"""Chain key ids: every event names the key that sealed it, so a reader with the wrong key is
told so, while a bad MAC under the right key is still an alteration or a forgery; the audit's
breaks are the readers' bad messages, and a verified QuarantineLifted releases them."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import anyio
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    ChainKey,
    Head,
    LoginStarted,
    MemoryEventLog,
    QrIssued,
    QuarantineLifted,
    Record,
    decode_event,
    encode_event,
    event_subject,
    seal,
    verify_log,
)
from events.quarantine import MAC_MISMATCH, fault_of

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"key-id-test-key-0123456789abcdef")
OTHER = ChainKey(b"another-key-0123456789abcdefghij")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def started(tenant: str, attempt: int = 1) -> LoginStarted:
    return LoginStarted(tenant=tenant, attempt=attempt, at=T0, deadline=T0)


def qr(tenant: str, n: int) -> QrIssued:
    return QrIssued(
        tenant=tenant, attempt=1, at=T0, url=f"tg://login?token={n}", expires_at=T0, dc_id=1
    )


def record_of(data: bytes, mac: str, tenant: str = "alice", seq: int = 1) -> Record:
    return Record(seq, tenant, decode_event(data), mac, data)


def test_key_id_is_a_keyed_fingerprint_never_the_key() -> None:
    """The id is HMAC-SHA256(key, "tgqr-chain-key-id") cut to 16 hex digits: not the key, not
    a bare hash of it, the same for equal keys and different for different ones; the repr
    shows the id only."""
    raw = b"key-id-test-key-0123456789abcdef"
    expected = hmac.new(raw, b"tgqr-chain-key-id", hashlib.sha256).hexdigest()[:16]
    assert KEY.id == expected
    assert KEY.id != hashlib.sha256(raw).hexdigest()[:16]
    assert ChainKey(raw).id == KEY.id
    assert OTHER.id != KEY.id
    assert len(KEY.id) == 16
    int(KEY.id, 16)
    assert repr(KEY) == f"ChainKey(id={KEY.id})"
    for shown in (repr(KEY), str(KEY)):
        assert raw.decode() not in shown
        assert raw.hex() not in shown


def test_seal_names_the_key_in_the_sealed_bytes() -> None:
    """A sealed event carries its key's id inside the MACed bytes."""
    sealed = seal(started("alice"), "", KEY)
    assert sealed.event.kid == KEY.id
    assert f'"kid":"{KEY.id}"'.encode() in sealed.data
    assert decode_event(sealed.data).kid == KEY.id
    assert KEY.check(sealed.data, sealed.mac)


def test_fault_of_tells_another_key_from_a_forgery() -> None:
    """Another key's event is "sealed with another chain key (id X)"; a bad MAC on an event
    naming our key, or on one stored before key ids, is "altered or forged"."""
    theirs = seal(started("alice"), "", OTHER)
    assert fault_of(record_of(theirs.data, theirs.mac), "alice", KEY, "") == (
        f"sealed with another chain key (id {OTHER.id})"
    )
    ours = seal(started("alice"), "", KEY)
    assert fault_of(record_of(ours.data, ours.mac), "alice", KEY, "") == ""
    assert fault_of(record_of(ours.data, "0" * 64), "alice", KEY, "") == MAC_MISMATCH
    # The id is inside the MAC: changing it is an alteration like any other.
    renamed = ours.data.replace(KEY.id.encode(), OTHER.id.encode())
    assert "another chain key" in fault_of(record_of(renamed, ours.mac), "alice", KEY, "")
    legacy = msgspec.structs.replace(started("alice"), id="old", prev="")
    legacy_data = encode_event(legacy).replace(b',"kid":""', b"")
    assert b"kid" not in legacy_data
    legacy_record = record_of(legacy_data, KEY.mac(legacy_data))
    assert fault_of(legacy_record, "alice", KEY, "") == ""
    assert fault_of(record_of(legacy_data, "0" * 64), "alice", KEY, "") == MAC_MISMATCH
    junk_id = msgspec.json.encode({**msgspec.json.decode(ours.data), "kid": "<script>" + "x" * 100})
    reason = fault_of(record_of(junk_id, KEY.mac(junk_id)), "alice", KEY, "")
    assert reason.startswith("sealed with another chain key (id '<script>")
    assert len(reason) < 80


async def test_an_event_of_another_key_never_changes_state() -> None:
    """An event sealed with another key, even linked right, is a bad message of its tenant:
    the chain goes on past it, and a QuarantineLifted releases it."""
    log = MemoryEventLog(KEY)
    head = await log.append("alice", [started("alice")], Head())
    theirs = seal(qr("alice", 9), head.mac, OTHER)
    seq = log.inject(event_subject("alice"), theirs.data, theirs.mac, theirs.event.id)
    tenant_log = await log.load_tenant("alice")
    assert [r.seq for r in tenant_log.records] == [1]
    assert [(b.seq, b.reason) for b in tenant_log.bad] == [
        (seq, f"sealed with another chain key (id {OTHER.id})")
    ]
    assert tenant_log.head == Head(seq, head.mac)


async def test_a_wrong_key_is_a_mismatch_not_a_forgery() -> None:
    """Verifying with another key: every event is "sealed with another chain key", and the
    report says the key does not match the log, naming the log's key id."""
    log = MemoryEventLog(KEY)
    for tenant in ("alice", "bob"):
        await log.append(tenant, [started(tenant), qr(tenant, 1)], Head())
    report = await verify_log(log, OTHER)
    assert report.key_mismatch
    assert report.key_id == OTHER.id
    assert report.other_key_ids == [KEY.id]
    assert report.verified == 0
    assert {b.reason for b in report.breaks} == {f"sealed with another chain key (id {KEY.id})"}
    right = await verify_log(log, KEY)
    assert right.ok
    assert not right.key_mismatch
    assert right.verified == right.checked == 4


async def test_forgeries_under_the_right_key_are_not_a_mismatch() -> None:
    """A forged event naming our key id (copied from the log) or another made-up id, even as
    the only event of its tenant, is a break; the key still matches the log."""
    log = MemoryEventLog(KEY)
    head = await log.append("alice", [started("alice")], Head())
    forged = msgspec.structs.replace(qr("alice", 2), id="f", prev=head.mac, kid=KEY.id)
    copied = log.inject(event_subject("alice"), encode_event(forged), "0" * 64)
    made_up = msgspec.structs.replace(started("mallory"), id="m", kid="feedfacefeedface")
    alone = log.inject(event_subject("mallory"), encode_event(made_up), "0" * 64)
    report = await verify_log(log, KEY)
    assert not report.key_mismatch
    assert [(b.seq, b.reason) for b in report.breaks] == [
        (copied, MAC_MISMATCH),
        (alone, "sealed with another chain key (id feedfacefeedface)"),
    ]
    only_mallory = await verify_log(log, KEY, tenant="mallory")
    assert not only_mallory.key_mismatch  # the rest of the log names our key
    assert [b.seq for b in only_mallory.breaks] == [alone]


async def test_a_verified_lift_releases_and_a_forged_one_does_not() -> None:
    """After a sealed QuarantineLifted names the bad sequences, the audit is ok and still
    lists them as released; a forged QuarantineLifted releases nothing and is a break itself."""
    log = MemoryEventLog(KEY)
    await log.append("alice", [started("alice")], Head())
    junk = log.inject(event_subject("alice"), b"junk")
    before = await log.load_tenant("alice")
    forged = QuarantineLifted(
        tenant="alice", attempt=1, at=T0, sequences=(junk,), id="x", prev=before.head.mac
    )
    forged_seq = log.inject(event_subject("alice"), encode_event(forged), "0" * 64)
    report = await verify_log(log, KEY)
    assert not report.ok
    assert [(b.seq, b.released_by) for b in report.breaks] == [(junk, None), (forged_seq, None)]

    tenant_log = await log.load_tenant("alice")
    lifted = QuarantineLifted(
        tenant="alice", attempt=1, at=T0, sequences=tuple(b.seq for b in tenant_log.bad)
    )
    head = await log.append("alice", [lifted], tenant_log.head)
    report = await verify_log(log, KEY)
    assert report.ok
    assert report.first_break is None
    assert [(b.seq, b.released_by) for b in report.released] == [
        (junk, head.seq),
        (forged_seq, head.seq),
    ]
    assert str(report.released[0]).endswith(f"released by QuarantineLifted at sequence {head.seq}")


Op = tuple[str, str]
ops = st.lists(
    st.tuples(
        st.sampled_from(["append", "junk", "forged", "replay", "other_key", "lift"]),
        st.sampled_from(["alice", "bob"]),
    ),
    max_size=14,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_the_audit_breaks_are_the_readers_bad_messages(script: list[Op]) -> None:
    """Whatever honest appends, junk, forgeries, replays, other keys' events and lifts the log
    holds, each tenant's breaks in the audit are exactly its readers' bad and released messages,
    and the audit is ok exactly when no tenant is quarantined."""
    anyio.run(_check_audit_matches_readers, script)


async def _check_audit_matches_readers(script: list[Op]) -> None:
    log = MemoryEventLog(KEY)
    for n, (op, tenant) in enumerate(script, start=1):
        subject = event_subject(tenant)
        current = await log.load_tenant(tenant)
        match op:
            case "append":
                event = qr(tenant, n) if current.records else started(tenant)
                await log.append(tenant, [event], current.head)
            case "junk":
                log.inject(subject, b"{not json")
            case "forged":
                fake = msgspec.structs.replace(qr(tenant, n), id=f"f{n}", prev=current.head.mac)
                log.inject(subject, encode_event(fake), "0" * 64)
            case "replay" if current.records:
                last = current.records[-1]
                log.inject(subject, last.data, last.mac)
            case "other_key":
                sealed = seal(qr(tenant, n), current.head.mac, OTHER)
                log.inject(subject, sealed.data, sealed.mac)
            case "lift" if current.bad:
                lift = QuarantineLifted(
                    tenant=tenant, attempt=1, at=T0, sequences=tuple(b.seq for b in current.bad)
                )
                await log.append(tenant, [lift], current.head)
            case _:
                pass
    report = await verify_log(log, KEY)
    for tenant in ("alice", "bob"):
        readers = await log.load_tenant(tenant)
        audited = [b for b in report.breaks if b.tenant == tenant]
        assert [(b.seq, b.reason) for b in audited if b.released_by is None] == [
            (b.seq, b.reason) for b in readers.bad
        ]
        assert sorted((b.seq, b.reason) for b in audited if b.released_by is not None) == sorted(
            (b.seq, b.reason) for b in readers.released
        )
    quarantined = [t for t in ("alice", "bob") if (await log.load_tenant(t)).quarantined]
    assert report.ok == (not quarantined)
