"""Durable lease expiries beside the log: the port, its errors, the KV store and a fake."""

from __future__ import annotations

from ._kv import LEASES_BUCKET, KvLeaseStore
from ._memory import MemoryLeaseStore
from ._port import (
    LeaseRecord,
    LeaseStore,
    LeaseStoreConflictError,
    LeaseStoreCorruptError,
    LeaseStoreError,
    LeaseStoreUnavailableError,
    StoredLease,
)

__all__ = [
    "LEASES_BUCKET",
    "KvLeaseStore",
    "LeaseRecord",
    "LeaseStore",
    "LeaseStoreConflictError",
    "LeaseStoreCorruptError",
    "LeaseStoreError",
    "LeaseStoreUnavailableError",
    "MemoryLeaseStore",
    "StoredLease",
]
