"""The projector with the chain key: forged and junk messages are dead letters, never events,
and their tenant shows ``quarantined`` until a ``QuarantineLifted`` event releases it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from events import (
    ChainKey,
    Head,
    LoginStarted,
    MemoryEventLog,
    QuarantineLifted,
    Scanned,
    StoredMessage,
    event_subject,
)
from projections import ProjectionStore

pytestmark = pytest.mark.anyio

KEY = ChainKey(b"q" * 32)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def stored(log: MemoryEventLog) -> list[StoredMessage]:
    return [m async for chunk in log.read_chunks(1) for m in chunk]


async def test_forged_events_quarantine_their_tenant_until_released() -> None:
    """A forged Scanned on alice's subject and junk on mallory's: neither is projected, both
    tenants show quarantined, bob is untouched; releasing alice restores her folded state."""
    log = MemoryEventLog(KEY)
    head = await log.append(
        "alice",
        [LoginStarted(tenant="alice", attempt=1, at=T0, deadline=T0 + timedelta(minutes=10))],
        Head(),
    )
    await log.append(
        "bob",
        [LoginStarted(tenant="bob", attempt=1, at=T0, deadline=T0 + timedelta(minutes=10))],
        Head(),
    )
    forged = msgspec.json.encode(
        {"type": "Scanned", "tenant": "alice", "attempt": 1, "at": "2026-01-01T00:00:01Z"}
    )
    bad_seq = log.inject(event_subject("alice"), forged, "f" * 64)
    log.inject(event_subject("mallory"), b"junk")
    store = ProjectionStore.open(":memory:", key=KEY)
    try:
        store.apply_batch(await stored(log))
        status = {row["tenant"]: row for row in store.status()}
        assert status["alice"]["state"] == "quarantined"
        assert status["alice"]["last_event"] == "LoginStarted"  # the forgery changed nothing
        assert status["mallory"]["state"] == "quarantined"
        assert status["bob"]["state"] == "pending"
        reasons = {row[0]: row[2] for row in store.dump()["dead_letters"]}
        assert reasons[bad_seq] == "MAC mismatch: event altered or forged"

        tenant_log = await log.load_tenant("alice")
        lifted = QuarantineLifted(tenant="alice", attempt=1, at=T0, sequences=(bad_seq,))
        await log.append(
            "alice", [lifted, Scanned(tenant="alice", attempt=1, at=T0)], tenant_log.head
        )
        assert head.seq < tenant_log.head.seq
        store.apply_batch(await stored(log))
        status = {row["tenant"]: row for row in store.status()}
        assert status["alice"]["state"] == "scanned"
        assert status["mallory"]["state"] == "quarantined"
        assert [row["tenant"] for row in store.status("mallory")] == ["mallory"]
    finally:
        store.close()


async def test_a_replayed_genuine_event_is_not_counted_twice(tmp_path: Path) -> None:
    """A genuine event stored again (its exact bytes and MAC) verifies but does not link to
    the tenant's chain: a dead letter, its tenant quarantined, nothing counted twice; the
    chain heads survive a reopen of the file, so a replay after a restart is caught too."""
    log = MemoryEventLog(KEY)
    started = LoginStarted(tenant="alice", attempt=1, at=T0, deadline=T0 + timedelta(minutes=10))
    await log.append("alice", [started, Scanned(tenant="alice", attempt=1, at=T0)], Head())
    path = tmp_path / "p.duckdb"
    store = ProjectionStore.open(path, key=KEY)
    try:
        store.apply_batch(await stored(log))
    finally:
        store.close()
    first = (await log.read_tenant("alice"))[0]
    replay_seq = log.inject(event_subject("alice"), first.data, first.mac)
    store = ProjectionStore.open(path, key=KEY)
    try:
        store.apply_batch(await stored(log))
        [status] = store.status("alice")
        assert status["state"] == "quarantined"
        assert status["attempts"] == 1
        reasons = {row[0]: row[2] for row in store.dump()["dead_letters"]}
        assert reasons == {replay_seq: "chain link broken: previous event deleted or reordered"}
    finally:
        store.close()
