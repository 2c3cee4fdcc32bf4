"""The lease store's verified fake: the same records and compare-and-set, in a mapping."""

from __future__ import annotations

import anyio.lowlevel

from events import validate_tenant

from ._port import LeaseRecord, LeaseStoreConflictError, StoredLease, decode_record, encode_record

__all__ = ["MemoryLeaseStore"]


class MemoryLeaseStore:
    """An in-process lease store. Share one between actors to model one bucket seen by several
    instances. Revisions grow across all keys, as a JetStream bucket's do. Each method is a
    checkpoint and never blocks otherwise."""

    def __init__(self) -> None:
        self._records: dict[str, tuple[bytes, int]] = {}
        self._last = 0

    def __repr__(self) -> str:
        return f"MemoryLeaseStore(records={len(self._records)})"

    async def get(self, tenant: str) -> StoredLease | None:
        await anyio.lowlevel.checkpoint()
        found = self._records.get(validate_tenant(tenant))
        if found is None:
            return None
        data, revision = found
        return StoredLease(decode_record(tenant, data), revision)

    async def put(self, tenant: str, record: LeaseRecord, *, revision: int) -> int:
        await anyio.lowlevel.checkpoint()
        found = self._records.get(validate_tenant(tenant))
        current = 0 if found is None else found[1]
        if current != revision:
            raise LeaseStoreConflictError(
                f"the lease record of {tenant!r} is at revision {current}, not {revision}"
            )
        self._last += 1
        self._records[tenant] = (encode_record(record), self._last)
        return self._last
