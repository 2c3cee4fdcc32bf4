"""An in-memory EventLog, held to the same contract suite as the JetStream adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import anyio

from ._tenant import event_subject, tenant_of_subject, validate_tenant
from .chain import MAC_HEADER, ChainKey, Head, Sealed
from .errors import EventLogFullError, EventTooLargeError
from .log import (
    HEADER_ALLOWANCE,
    MAX_CHUNK,
    ChainedLog,
    StoredMessage,
    WrongLastSequenceError,
)
from .storage import StorageLimits, StorageUse

__all__ = ["MemoryEventLog"]


class MemoryEventLog(ChainedLog):
    """A single-process log. ``inject`` stores raw bytes (for tests of bad data).

    With ``limits`` it refuses, as the JetStream stream does, messages larger than
    ``max_msg_size`` and new messages once it holds ``max_bytes`` or ``max_msgs``.
    """

    def __init__(self, key: ChainKey, *, limits: StorageLimits | None = None) -> None:
        super().__init__(key)
        # (subject, data, mac, msg id, stored at); index i is stream sequence i + 1.
        self._messages: list[tuple[str, bytes, str, str, datetime]] = []
        self._last_by_subject: dict[str, int] = {}
        self._changed = anyio.Event()
        self._limits = limits
        self._bytes = 0

    async def _publish(
        self, subject: str, sealed: Sealed, expected_seq: int, fence: str | None = None
    ) -> int:
        del fence  # the fake keeps no headers but the MAC
        actual = self._last_by_subject.get(subject, 0)
        if actual != expected_seq:
            raise WrongLastSequenceError(actual)
        limits = self._limits
        if limits is not None:
            size = len(sealed.data) + HEADER_ALLOWANCE
            tenant = sealed.event.tenant
            if size > limits.max_msg_size:
                raise EventTooLargeError(
                    tenant, type(sealed.event).__name__, size, limits.max_msg_size
                )
            if len(self._messages) >= limits.max_msgs:
                raise EventLogFullError(tenant, "maximum messages exceeded")
            if self._bytes + self._size(subject, sealed.data, sealed.mac) > limits.max_bytes:
                raise EventLogFullError(tenant, "maximum bytes exceeded")
        return self._store(subject, sealed.data, sealed.mac, sealed.event.id)

    async def _max_message_bytes(self) -> int | None:
        return None if self._limits is None else self._limits.max_msg_size

    @staticmethod
    def _size(subject: str, data: bytes, mac: str) -> int:
        return len(subject) + len(data) + len(MAC_HEADER) + len(mac)

    def inject(self, subject: str, data: bytes, mac: str = "", msg_id: str = "") -> int:
        """Store a message as-is, bypassing every check (a forger's or a bug's write)."""
        return self._store(subject, data, mac, msg_id)

    def _store(self, subject: str, data: bytes, mac: str, msg_id: str) -> int:
        self._messages.append((subject, data, mac, msg_id, datetime.now(UTC)))
        self._bytes += self._size(subject, data, mac)
        seq = len(self._messages)
        self._last_by_subject[subject] = seq
        self._changed.set()
        self._changed = anyio.Event()
        return seq

    def _stored(self, seq: int) -> StoredMessage:
        subject, data, mac, _, stored_at = self._messages[seq - 1]
        return StoredMessage(seq, subject, data, mac, int(stored_at.timestamp() * 1e9))

    async def _read_subject(self, tenant: str, after: int) -> list[StoredMessage]:
        subject = event_subject(tenant)
        return [
            self._stored(seq)
            for seq in range(after + 1, len(self._messages) + 1)
            if self._messages[seq - 1][0] == subject
        ]

    async def read_chunks(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[list[StoredMessage]]:
        seq = max(start, 1)
        end = len(self._messages)
        while True:
            last = min(len(self._messages) if follow else end, seq + MAX_CHUNK - 1)
            if seq <= last:
                yield [self._stored(s) for s in range(seq, last + 1)]
                seq = last + 1
                continue
            if not follow:
                return
            await self._changed.wait()

    async def head(self, tenant: str) -> Head:
        validate_tenant(tenant)
        seq = self._last_by_subject.get(event_subject(tenant), 0)
        if seq == 0:
            return Head()
        return Head(seq, self._messages[seq - 1][2])

    async def last_seq(self) -> int:
        return len(self._messages)

    async def storage(self) -> list[StorageUse]:
        limits = self._limits
        return [
            StorageUse(
                "memory",
                self._bytes,
                len(self._messages),
                limits.max_bytes if limits else 0,
                limits.max_msgs if limits else 0,
            )
        ]

    async def tenants(self) -> list[str]:
        found = set()
        for subject in self._last_by_subject:
            try:
                found.add(tenant_of_subject(subject))
            except ValueError:
                continue
        return sorted(found)
