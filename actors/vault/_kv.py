"""The vault on JetStream KV: sealed tokens (:mod:`._keyring`) in the bucket ``tgqr_sessions``.

Only this module of the vault imports ``nats``.
"""

from __future__ import annotations

from typing import Final

import nats.errors
import nats.js.errors
from cryptography.fernet import MultiFernet
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from events import StorageLimitError, StorageLimits, StoragePolicy, validate_tenant
from events.jskv import RetryingKv
from events.jsretry import DEFAULT_POLICY, RetryPolicy
from events.jsstorage import ensure_bucket

from ._keyring import PROXY_SUFFIX, proxy_of, reseal, seal, unseal
from ._port import RotateProgress, Stage, VaultEntry, VaultUnavailableError

__all__ = ["SESSIONS_BUCKET", "KvSessionVault"]

SESSIONS_BUCKET: Final = "tgqr_sessions"

_UNAVAILABLE: Final = (nats.errors.Error, OSError)
_FULL: Final = frozenset({10077, 10047})  # maximum bytes/messages exceeded; no room on server


class KvSessionVault:
    """The vault on a JetStream KV bucket (history 1, leader reads: read-after-write consistent).

    Create it with :meth:`open`. Every method awaits JetStream requests, retried within
    ``retry`` (a leader election costs its length, not a timeout per request), and raises
    :class:`VaultUnavailableError` when they fail.
    """

    def __init__(
        self,
        kv: KeyValue,
        keys: MultiFernet,
        *,
        js: JetStreamContext | None = None,
        bucket: str = SESSIONS_BUCKET,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._kv = RetryingKv(kv, bucket, js=js, policy=retry)
        self._keys = keys
        self._bucket = bucket

    def __repr__(self) -> str:
        return f"KvSessionVault(bucket={self._bucket!r})"

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        keys: MultiFernet,
        *,
        replicas: int = 1,
        bucket: str = SESSIONS_BUCKET,
        limits: StorageLimits | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> KvSessionVault:
        """Bind to ``bucket``, creating it when missing or bringing its limits up to date
        (idempotent; ``limits``: the storage policy's default for sessions). When full, the
        bucket refuses new sessions (``put`` raises) and deletes none.

        Raises:
            VaultUnavailableError: JetStream did not answer or refused the bucket.
        """
        try:
            kv = await ensure_bucket(
                js,
                bucket,
                limits=limits or StoragePolicy().sessions,
                env_name="TGQR_SESSIONS_MAX_BYTES",
                description="tgqr: encrypted Telethon sessions by tenant",
                replicas=replicas,
            )
        except (*_UNAVAILABLE, StorageLimitError) as exc:
            raise VaultUnavailableError(f"session bucket {bucket!r} unavailable: {exc!r}") from exc
        return cls(kv, keys, js=js, bucket=bucket, retry=retry)

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        token = seal(self._keys, validate_tenant(tenant), session, stage)
        try:
            await self._kv.put(tenant, token)
        except nats.js.errors.APIError as exc:
            if exc.err_code in _FULL:
                raise VaultUnavailableError(
                    f"the session bucket is full, nothing stored for {tenant!r} "
                    f"({exc.description}): raise TGQR_SESSIONS_MAX_BYTES / _MAX_MSGS"
                ) from exc
            raise VaultUnavailableError(f"cannot store the session of {tenant!r}: {exc!r}") from exc
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot store the session of {tenant!r}: {exc!r}") from exc

    async def get(self, tenant: str) -> VaultEntry | None:
        validate_tenant(tenant)
        token = await self._raw(tenant)
        return None if token is None else unseal(self._keys, tenant, token)

    async def delete(self, tenant: str) -> None:
        validate_tenant(tenant)
        try:
            # Purge, not delete: no revision of the encrypted session stays behind the marker.
            await self._kv.purge(tenant)
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(
                f"cannot delete the session of {tenant!r}: {exc!r}"
            ) from exc

    async def tenants(self) -> list[str]:
        return [key for key in await self._keys_stored() if PROXY_SUFFIX not in key]

    async def put_proxy(self, tenant: str, url: str) -> None:
        token = seal(self._keys, validate_tenant(tenant), url, "proxy")
        try:
            await self._kv.put(tenant + PROXY_SUFFIX, token)
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot store the proxy of {tenant!r}: {exc!r}") from exc

    async def get_proxy(self, tenant: str) -> str | None:
        validate_tenant(tenant)
        token = await self._raw(tenant + PROXY_SUFFIX)
        return None if token is None else proxy_of(self._keys, tenant, token)

    async def delete_proxy(self, tenant: str) -> None:
        validate_tenant(tenant)
        try:
            await self._kv.purge(tenant + PROXY_SUFFIX)
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot delete the proxy of {tenant!r}: {exc!r}") from exc

    async def rotate(self, *, on_progress: RotateProgress | None = None) -> int:
        count = 0
        keys = await self._keys_stored()  # sessions and proxies alike
        for done, key in enumerate(keys, 1):
            if await self._rotate_one(key):
                count += 1
            if on_progress is not None:
                on_progress(done, len(keys))
        return count

    async def _keys_stored(self) -> list[str]:
        try:
            return sorted(await self._kv.keys())
        except nats.js.errors.NoKeysError:
            return []
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot list the vault: {exc!r}") from exc

    async def _rotate_one(self, tenant: str) -> bool:
        while True:
            try:
                entry = await self._kv.get(tenant)
            except nats.js.errors.KeyNotFoundError:
                return False  # deleted meanwhile
            except _UNAVAILABLE as exc:
                raise VaultUnavailableError(f"cannot read the vault: {exc!r}") from exc
            token = reseal(self._keys, tenant, entry.value or b"")
            try:
                # Compare-and-set: a concurrent put is re-read and rotated, never overwritten.
                await self._kv.update(tenant, token, last=entry.revision or 0)
            except nats.js.errors.KeyWrongLastSequenceError:
                continue
            except _UNAVAILABLE as exc:
                raise VaultUnavailableError(f"cannot rotate the vault: {exc!r}") from exc
            return True

    async def _raw(self, tenant: str) -> bytes | None:
        try:
            entry = await self._kv.get(tenant)
        except nats.js.errors.KeyNotFoundError:
            return None
        except _UNAVAILABLE as exc:
            raise VaultUnavailableError(f"cannot read the session of {tenant!r}: {exc!r}") from exc
        return entry.value or None
