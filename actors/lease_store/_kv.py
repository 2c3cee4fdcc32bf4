"""The lease store on JetStream KV: the bucket ``tgqr_leases``, one key per tenant.

Only this module of the lease store imports ``nats``.
"""

from __future__ import annotations

import dataclasses
from typing import Final

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from events import StorageLimitError, validate_tenant
from events.jskv import RetryingKv
from events.jsretry import DEFAULT_POLICY, RetryPolicy
from events.jsstorage import ensure_bucket
from events.storage import StorageLimits, StoragePolicy

from ._port import (
    LeaseRecord,
    LeaseStoreConflictError,
    LeaseStoreUnavailableError,
    StoredLease,
    decode_record,
    encode_record,
)

__all__ = ["LEASES_BUCKET", "KvLeaseStore"]

LEASES_BUCKET: Final = "tgqr_leases"
_MAX_VALUE_BYTES: Final = 1024  # a record is about 120 bytes
_UNAVAILABLE: Final = (nats.errors.Error, OSError)


class KvLeaseStore:
    """The lease store on a JetStream KV bucket (history 1, leader reads: read-after-write
    consistent). Create it with :meth:`open`. Every method awaits JetStream requests, retried
    within ``retry`` (a write resent after no answer is recognised as stored, never reported as
    a conflict), and raises :class:`LeaseStoreUnavailableError` when they fail."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        js: JetStreamContext | None = None,
        bucket: str = LEASES_BUCKET,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._kv = RetryingKv(kv, bucket, js=js, policy=retry)
        self._bucket = bucket

    def __repr__(self) -> str:
        return f"KvLeaseStore(bucket={self._bucket!r})"

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        replicas: int = 1,
        bucket: str = LEASES_BUCKET,
        limits: StorageLimits | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> KvLeaseStore:
        """Bind to ``bucket``, creating it when missing or bringing its limits up to date
        (idempotent; ``limits``: the storage policy's default for leases, with values of at
        most 1 KiB).

        Raises:
            LeaseStoreUnavailableError: JetStream did not answer or refused the bucket.
        """
        limits = dataclasses.replace(
            limits or StoragePolicy().leases, max_msg_size=_MAX_VALUE_BYTES
        )
        try:
            kv = await ensure_bucket(
                js,
                bucket,
                limits=limits,
                env_name="TGQR_LEASES_MAX_BYTES",
                description="tgqr: the expiry of each tenant's renewed session lease",
                replicas=replicas,
            )
        except (*_UNAVAILABLE, StorageLimitError) as exc:
            raise LeaseStoreUnavailableError(
                f"lease bucket {bucket!r} unavailable: {exc!r}"
            ) from exc
        return cls(kv, js=js, bucket=bucket, retry=retry)

    async def get(self, tenant: str) -> StoredLease | None:
        validate_tenant(tenant)
        try:
            entry = await self._kv.get(tenant)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _UNAVAILABLE as exc:
            raise LeaseStoreUnavailableError(
                f"cannot read the lease record of {tenant!r}: {exc!r}"
            ) from exc
        if not entry.value or entry.revision is None:
            return None
        return StoredLease(decode_record(tenant, entry.value), entry.revision)

    async def put(self, tenant: str, record: LeaseRecord, *, revision: int) -> int:
        validate_tenant(tenant)
        data = encode_record(record)
        try:
            if revision == 0:
                return await self._kv.create(tenant, data)
            return await self._kv.update(tenant, data, last=revision)
        except nats.js.errors.KeyWrongLastSequenceError as exc:
            raise LeaseStoreConflictError(
                f"the lease record of {tenant!r} is no longer at revision {revision}"
            ) from exc
        except _UNAVAILABLE as exc:
            raise LeaseStoreUnavailableError(
                f"cannot write the lease record of {tenant!r}: {exc!r}"
            ) from exc
