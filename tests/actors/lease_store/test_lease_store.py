"""One contract suite for the lease store (KV on a real nats-server, and the memory fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import nats
import pytest

from actors.lease_store import (
    LEASES_BUCKET,
    KvLeaseStore,
    LeaseRecord,
    LeaseStore,
    LeaseStoreConflictError,
    LeaseStoreCorruptError,
    LeaseStoreUnavailableError,
    MemoryLeaseStore,
    StoredLease,
)
from actors.service import NatsServer
from events import InvalidTenantError

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RECORD = LeaseRecord(lease_id="a1b2", fence=7, expires_at=T0)


@dataclass
class Backend:
    """Opens handles on one shared store (as two instances see one bucket)."""

    open: Callable[[], Awaitable[LeaseStore]]


@pytest.fixture(params=["memory", "kv"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        shared = MemoryLeaseStore()

        async def open_memory() -> LeaseStore:
            return shared

        yield Backend(open_memory)
        return
    server: NatsServer = request.getfixturevalue("nats_server")
    nc = await nats.connect(server.url, max_reconnect_attempts=0)

    async def open_kv() -> LeaseStore:
        return await KvLeaseStore.open(nc.jetstream(timeout=5))

    yield Backend(open_kv)
    await nc.drain()


async def test_a_missing_record_reads_as_none(backend: Backend) -> None:
    """A tenant without a record reads as None."""
    store = await backend.open()
    assert await store.get("nobody") is None


async def test_create_then_read_back_with_its_revision(backend: Backend) -> None:
    """put at revision 0 creates; get returns the record (aware UTC times) and the revision
    put answered; every write's revision is higher than any before."""
    store = await backend.open()
    first = await store.put("alice", RECORD, revision=0)
    assert await store.get("alice") == StoredLease(RECORD, first)
    other = await store.put("bob", RECORD, revision=0)
    later = LeaseRecord(lease_id="a1b2", fence=7, expires_at=T0 + timedelta(seconds=90))
    second = await store.put("alice", later, revision=first)
    assert first < other < second
    stored = await store.get("alice")
    assert stored == StoredLease(later, second)
    assert stored.record.expires_at.tzinfo is not None


async def test_compare_and_set_refuses_a_stale_revision(backend: Backend) -> None:
    """Two handles read the same revision; the first write wins, the second is a conflict and
    changes nothing. Creating over an existing record is a conflict too."""
    one, two = await backend.open(), await backend.open()
    created = await one.put("alice", RECORD, revision=0)
    renewed = LeaseRecord(lease_id="a1b2", fence=7, expires_at=T0 + timedelta(seconds=60))
    ended = LeaseRecord(lease_id="a1b2", fence=7, expires_at=T0, ended=True)
    won = await one.put("alice", renewed, revision=created)
    with pytest.raises(LeaseStoreConflictError):
        await two.put("alice", ended, revision=created)
    with pytest.raises(LeaseStoreConflictError):
        await two.put("alice", ended, revision=0)
    with pytest.raises(LeaseStoreConflictError):
        await two.put("carol", ended, revision=won)
    assert await two.get("alice") == StoredLease(renewed, won)
    assert await two.get("carol") is None


async def test_tenant_ids_are_validated(backend: Backend) -> None:
    """A tenant id outside the contract's pattern is refused, read or write."""
    store = await backend.open()
    with pytest.raises(InvalidTenantError):
        await store.get("a.b")
    with pytest.raises(InvalidTenantError):
        await store.put("a b", RECORD, revision=0)


def test_a_record_names_its_lease() -> None:
    """names(): the same lease id and fence, nothing else."""
    assert RECORD.names("a1b2", 7)
    assert not RECORD.names("a1b2", 8)
    assert not RECORD.names("zzzz", 7)


# --- the KV adapter alone ----------------------------------------------------------------------


async def test_kv_garbage_is_corrupt_and_a_closed_connection_unavailable(
    nats_server: NatsServer,
) -> None:
    """A value that is not a record: LeaseStoreCorruptError; a closed connection:
    LeaseStoreUnavailableError on read and write."""
    nc = await nats.connect(nats_server.url, max_reconnect_attempts=0)
    js = nc.jetstream(timeout=2)
    store = await KvLeaseStore.open(js)
    await (await js.key_value(LEASES_BUCKET)).put("alice", b"{not json")
    with pytest.raises(LeaseStoreCorruptError):
        await store.get("alice")
    await nc.close()
    with pytest.raises(LeaseStoreUnavailableError):
        await store.get("alice")
    with pytest.raises(LeaseStoreUnavailableError):
        await store.put("alice", RECORD, revision=0)
