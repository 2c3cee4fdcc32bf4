"""Durable command dedupe: one ``Nats-Msg-Id`` per subject runs once within the window.

A command carrying a ``Nats-Msg-Id`` is *claimed* under a key made of its subject (tenant and
verb) and the id before it runs; its reply is then *settled* under that key. A retry (after a
restart, or to another instance) finds the claim and gets the first reply, or waits for it
while the first is still running. Entries live ``window_s`` (the bucket's max age).

:class:`KvDedupe` keeps the claims in the JetStream KV bucket ``tgqr_dedupe``;
:class:`MemoryDedupe` is its fake for a single process (same contract, tested together).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Final, Protocol

import anyio
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from events import StorageLimits, StoragePolicy
from events.jskv import RetryingKv
from events.jsretry import DEFAULT_POLICY, RetryPolicy
from events.jsstorage import ensure_bucket

__all__ = ["DEDUPE_BUCKET", "PENDING", "DedupeStore", "KvDedupe", "MemoryDedupe", "dedupe_key"]

DEDUPE_BUCKET: Final = "tgqr_dedupe"
PENDING: Final = b""
"""The value of a claim whose command has not answered yet."""

_WAIT_STEPS_S: Final = (0.05, 0.1, 0.2, 0.4, 0.8)


def dedupe_key(subject: str, msg_id: str) -> str:
    """The store key of ``msg_id`` on ``subject`` (a digest: any id is a valid KV key)."""
    return hashlib.sha256(f"{subject}\n{msg_id}".encode()).hexdigest()


class DedupeStore(Protocol):
    """Claims and replies of deduplicated commands."""

    async def claim(self, key: str) -> bytes | None:
        """Claim ``key``: None if this caller owns it now, else the stored value
        (a reply, or :data:`PENDING` while the first command runs)."""

    async def settle(self, key: str, reply: bytes) -> None:
        """Store the reply of the command that owns ``key``."""

    async def release(self, key: str) -> None:
        """Give a claim up (the command did not run: a retry may run it)."""

    async def get(self, key: str) -> bytes | None:
        """The stored value, or None when there is none."""


async def wait_settled(
    store: DedupeStore,
    key: str,
    timeout_s: float,
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
) -> bytes | None:
    """The reply stored under a pending claim once it arrives (None: not within ``timeout_s``,
    or the claim was released). Another process owns the claim, so this polls with backoff."""
    waited = 0.0
    step = 0
    while waited < timeout_s:
        value = await store.get(key)
        if value is None:
            return None
        if value != PENDING:
            return value
        delay = _WAIT_STEPS_S[min(step, len(_WAIT_STEPS_S) - 1)]
        step += 1
        await sleep(delay)
        waited += delay
    return None


class MemoryDedupe:
    """The store for one process (tests, and the fake of :class:`KvDedupe`); no expiry."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}

    async def claim(self, key: str) -> bytes | None:
        if key in self._values:
            return self._values[key]
        self._values[key] = PENDING
        return None

    async def settle(self, key: str, reply: bytes) -> None:
        self._values[key] = reply

    async def release(self, key: str) -> None:
        self._values.pop(key, None)

    async def get(self, key: str) -> bytes | None:
        return self._values.get(key)


class KvDedupe:
    """The store on a JetStream KV bucket whose entries expire after the dedupe window; each
    call retried within ``retry`` (a claim resent after no answer stays this caller's)."""

    def __init__(
        self,
        kv: KeyValue,
        *,
        js: JetStreamContext | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self._kv = RetryingKv(kv, DEDUPE_BUCKET, js=js, policy=retry)

    @classmethod
    async def open(
        cls,
        js: JetStreamContext,
        *,
        window_s: float = 120.0,
        replicas: int = 1,
        limits: StorageLimits | None = None,
        retry: RetryPolicy = DEFAULT_POLICY,
    ) -> KvDedupe:
        """Bind to (or create) the bucket ``tgqr_dedupe``, its limits brought up to date
        (``limits``: the storage policy's default for dedupe; when full, new claims fail).

        Raises:
            StorageLimitError: the server cannot reserve the bucket's size.
            nats.errors.Error: JetStream refused or did not answer.
        """
        kv = await ensure_bucket(
            js,
            DEDUPE_BUCKET,
            limits=limits or StoragePolicy().dedupe,
            env_name="TGQR_DEDUPE_MAX_BYTES",
            description="tgqr: replies of commands by Nats-Msg-Id, for the dedupe window",
            ttl=window_s,
            replicas=replicas,
        )
        return cls(kv, js=js, retry=retry)

    async def claim(self, key: str) -> bytes | None:
        try:
            await self._kv.create(key, PENDING)
        except nats.js.errors.KeyWrongLastSequenceError:
            value = await self.get(key)
            return PENDING if value is None else value
        return None

    async def settle(self, key: str, reply: bytes) -> None:
        await self._kv.put(key, reply)

    async def release(self, key: str) -> None:
        await self._kv.purge(key)

    async def get(self, key: str) -> bytes | None:
        try:
            entry = await self._kv.get(key)
        except (nats.js.errors.KeyNotFoundError, nats.js.errors.KeyDeletedError):
            return None
        return entry.value or PENDING


DEDUPE_ERRORS: Final = (nats.errors.Error, OSError)
"""What a store call may raise when JetStream is unreachable."""
