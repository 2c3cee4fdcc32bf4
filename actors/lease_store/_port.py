"""The lease store's port: where a tenant's actor keeps the expiry of a renewed lease.

A renewal writes no event (a leased tenant would add one every ``ttl_s / 3``); the tenant's
actor keeps the extended expiry here instead, one record per tenant, written with
compare-and-set on the record's revision so that two actors of one tenant (two instances, a
stale one and its successor) are ordered by the store. A record names its lease
(``lease_id`` and ``fence``): a reader takes it into account only for the lease its log says
runs. ``ended`` marks a lease that an actor is about to end in the log: no renewal may succeed
after it. Nothing here is secret or grants control (the proof is never stored).

This module imports no store: the adapters are :mod:`._kv` (JetStream KV) and :mod:`._memory`
(the verified fake).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final, Protocol

import msgspec

__all__ = [
    "LeaseRecord",
    "LeaseStore",
    "LeaseStoreConflictError",
    "LeaseStoreCorruptError",
    "LeaseStoreError",
    "LeaseStoreUnavailableError",
    "StoredLease",
    "decode_record",
    "encode_record",
]


class LeaseStoreError(Exception):
    """Base class of every error the lease store raises."""


class LeaseStoreConflictError(LeaseStoreError):
    """Raised by :meth:`LeaseStore.put` when the record's revision is not the one given: another
    actor wrote it since it was read (read again and decide again)."""


class LeaseStoreUnavailableError(LeaseStoreError):
    """Raised when the backing store does not answer (timeouts, no responders, 503, closed)."""


class LeaseStoreCorruptError(LeaseStoreError):
    """Raised by :meth:`LeaseStore.get` for a stored value that is not a lease record."""


class LeaseRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The durable expiry of one lease of a tenant: ``expires_at`` of ``lease_id`` (``fence``);
    ``ended``: an actor ended it (no renewal may follow)."""

    lease_id: str
    fence: int
    expires_at: datetime
    ended: bool = False

    def names(self, lease_id: str, fence: int) -> bool:
        """Whether this record is about lease ``lease_id`` with ``fence``."""
        return self.lease_id == lease_id and self.fence == fence


@dataclass(frozen=True, slots=True)
class StoredLease:
    """A record as read, with the revision a compare-and-set :meth:`LeaseStore.put` needs."""

    record: LeaseRecord
    revision: int


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(LeaseRecord)


def encode_record(record: LeaseRecord) -> bytes:
    """The stored form of ``record``: one JSON object."""
    return _encoder.encode(record)


def decode_record(tenant: str, data: bytes) -> LeaseRecord:
    """The record stored as ``data`` under ``tenant``.

    Raises:
        LeaseStoreCorruptError: ``data`` is not a lease record.
    """
    try:
        return _decoder.decode(data)
    except msgspec.DecodeError as exc:
        raise LeaseStoreCorruptError(f"the lease record of {tenant!r} does not decode") from exc


class LeaseStore(Protocol):
    """Durable lease expiries, one record per tenant, compare-and-set by revision.

    Every method may block on the store and raises :class:`LeaseStoreUnavailableError` when it
    does not answer; tenant ids are validated (``InvalidTenantError``).
    """

    async def get(self, tenant: str) -> StoredLease | None:
        """``tenant``'s record and its revision, or None. Raises LeaseStoreCorruptError."""
        ...

    async def put(self, tenant: str, record: LeaseRecord, *, revision: int) -> int:
        """Store ``record`` if ``tenant``'s record is still at ``revision`` (0: there is none);
        the new revision (always higher than any before).

        Raises:
            LeaseStoreConflictError: the record is at another revision.
        """
        ...
