"""Hash-chain verification catches altered, forged, deleted and reordered events."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import nats
import pytest

from actors.service import NatsServer
from events import (
    MAC_HEADER,
    ChainKey,
    Head,
    LoginStarted,
    MemoryEventLog,
    QrIssued,
    encode_event,
    event_subject,
    seal,
    verify_log,
)
from events.jetstream import JetStreamEventLog, ensure_stream

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"chain-test-key-0123456789abcdef!")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def events_for(tenant: str, n: int) -> list[LoginStarted | QrIssued]:
    first = LoginStarted(tenant=tenant, attempt=1, at=T0, deadline=T0)
    rest = [
        QrIssued(
            tenant=tenant, attempt=1, at=T0, url=f"tg://login?token={i}", expires_at=T0, dc_id=1
        )
        for i in range(n - 1)
    ]
    return [first, *rest]


async def honest_log() -> MemoryEventLog:
    log = MemoryEventLog(KEY)
    for tenant in ("alice", "bob"):
        await log.append(tenant, events_for(tenant, 4), Head())
    return log


async def test_honest_log_verifies() -> None:
    """An untouched log has no breaks, and every event is checked."""
    report = await verify_log(await honest_log(), KEY)
    assert report.ok
    assert report.checked == 8
    assert report.tenants == 2


async def test_wrong_key_fails_everything() -> None:
    """Verifying with another key flags the first event: MACs are keyed."""
    report = await verify_log(await honest_log(), ChainKey(b"another-key-0123456789abcdefghij"))
    assert report.first_break is not None
    assert report.first_break.seq == 1


async def test_forged_event_with_correct_link_is_caught() -> None:
    """A forger who copies the right `prev` still cannot produce the MAC."""
    log = await honest_log()
    head = await log.head("alice")
    forged = QrIssued(
        tenant="alice",
        attempt=1,
        at=T0,
        url="tg://login?token=evil",
        expires_at=T0,
        dc_id=1,
        id="forged",
        prev=head.mac,
    )
    seq = log.inject(event_subject("alice"), encode_event(forged), mac="0" * 64)
    report = await verify_log(log, KEY)
    assert report.first_break is not None
    assert report.first_break.seq == seq
    assert "MAC" in report.first_break.reason


async def test_forger_with_a_guessed_key_is_caught() -> None:
    """An event sealed under another key fails the MAC check."""
    log = await honest_log()
    head = await log.head("alice")
    sealed = seal(
        events_for("alice", 2)[1], head.mac, ChainKey(b"guessed-key-0123456789abcdefghij")
    )
    seq = log.inject(event_subject("alice"), sealed.data, mac=sealed.mac)
    report = await verify_log(log, KEY)
    assert report.first_break is not None
    assert report.first_break.seq == seq


async def test_altered_event_is_caught() -> None:
    """Changing a stored event's bytes breaks its MAC."""
    log = await honest_log()
    subject, data, mac, msg_id, at = log._messages[2]
    log._messages[2] = (subject, data.replace(b"token=1", b"token=X"), mac, msg_id, at)
    report = await verify_log(log, KEY)
    assert report.first_break is not None
    assert report.first_break.seq == 3


async def test_reordered_events_are_caught() -> None:
    """Swapping two events of a tenant breaks the chain links."""
    log = await honest_log()
    log._messages[1], log._messages[3] = log._messages[3], log._messages[1]
    report = await verify_log(log, KEY, tenant="alice")
    assert report.first_break is not None
    assert report.first_break.seq == 2


async def test_forged_and_deleted_messages_on_jetstream(nats_server: NatsServer) -> None:
    """On a real stream: a forged publish and a deleted message each name their sequence."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        await ensure_stream(js, deny_delete=False)
        log = JetStreamEventLog(js, KEY)
        for tenant in ("alice", "bob"):
            await log.append(tenant, events_for(tenant, 3), Head())
        assert (await verify_log(log, KEY)).ok

        head = await log.head("alice")
        forged = msgspec.structs.replace(events_for("alice", 2)[1], id="f", prev=head.mac)
        ack = await js.publish(
            event_subject("alice"), encode_event(forged), headers={MAC_HEADER: "f" * 64}
        )
        report = await verify_log(log, KEY)
        assert [b.seq for b in report.breaks] == [ack.seq]

        await js.delete_msg("TGQR_EVENTS", 2)
        report = await verify_log(log, KEY)
        assert report.first_break is not None
        assert report.first_break.seq == 2
        assert "missing" in report.first_break.reason
    finally:
        await nc.drain()


async def test_the_event_stream_refuses_deletes(nats_server: NatsServer) -> None:
    """The production stream has deny_delete and deny_purge on."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        info = await ensure_stream(js)
        assert info.config.deny_delete
        assert info.config.deny_purge
        await JetStreamEventLog(js, KEY).append("alice", events_for("alice", 1), Head())
        with pytest.raises(nats.js.errors.APIError):
            await js.delete_msg("TGQR_EVENTS", 1)
        again = await ensure_stream(js)
        assert again.state.messages == 1
    finally:
        await nc.drain()
