"""The vault's verified fake: the same sealed tokens as the KV store, held in a mapping."""

from __future__ import annotations

from collections.abc import MutableMapping

import anyio.lowlevel
from cryptography.fernet import MultiFernet

from events import validate_tenant

from ._keyring import PROXY_SUFFIX, proxy_of, reseal, seal, unseal
from ._port import RotateProgress, Stage, VaultEntry

__all__ = ["MemorySessionVault"]


class MemorySessionVault:
    """An in-process vault holding the same tokens the KV adapter would.

    It encrypts too, so rotation and wrong keys behave as they do in :class:`KvSessionVault`.
    ``store`` (tenant -> token) may be shared between instances to model one bucket opened with
    different key rings. Each method is a checkpoint and never blocks otherwise.
    """

    def __init__(
        self, keys: MultiFernet, *, store: MutableMapping[str, bytes] | None = None
    ) -> None:
        self._keys = keys
        self._store: MutableMapping[str, bytes] = {} if store is None else store

    def __repr__(self) -> str:
        return f"MemorySessionVault(entries={len(self._store)})"

    async def put(self, tenant: str, session: str, *, stage: Stage) -> None:
        await anyio.lowlevel.checkpoint()
        validate_tenant(tenant)
        self._store[tenant] = seal(self._keys, tenant, session, stage)

    async def get(self, tenant: str) -> VaultEntry | None:
        await anyio.lowlevel.checkpoint()
        token = self._store.get(validate_tenant(tenant))
        return None if token is None else unseal(self._keys, tenant, token)

    async def delete(self, tenant: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._store.pop(validate_tenant(tenant), None)

    async def tenants(self) -> list[str]:
        await anyio.lowlevel.checkpoint()
        return sorted(key for key in self._store if PROXY_SUFFIX not in key)

    async def put_proxy(self, tenant: str, url: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._store[validate_tenant(tenant) + PROXY_SUFFIX] = seal(self._keys, tenant, url, "proxy")

    async def get_proxy(self, tenant: str) -> str | None:
        await anyio.lowlevel.checkpoint()
        token = self._store.get(validate_tenant(tenant) + PROXY_SUFFIX)
        return None if token is None else proxy_of(self._keys, tenant, token)

    async def delete_proxy(self, tenant: str) -> None:
        await anyio.lowlevel.checkpoint()
        self._store.pop(validate_tenant(tenant) + PROXY_SUFFIX, None)

    async def rotate(self, *, on_progress: RotateProgress | None = None) -> int:
        await anyio.lowlevel.checkpoint()
        keys = sorted(self._store)
        for done, tenant in enumerate(keys, 1):
            self._store[tenant] = reseal(self._keys, tenant, self._store[tenant])
            if on_progress is not None:
                on_progress(done, len(keys))
        return len(keys)
