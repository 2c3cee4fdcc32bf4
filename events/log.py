"""The EventLog port and the append algorithm its adapters share.

An adapter supplies four primitives (publish one sealed event at an expected subject sequence,
read a tenant after a sequence, read the whole log, stream bookkeeping); :class:`ChainedLog`
turns them into chained, optimistic, idempotent appends. The in-memory fake and the JetStream
adapter both subclass it and pass one contract suite (``tests/events/test_log_contract.py``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import msgspec

from ._tenant import event_subject, tenant_of_subject
from .catalogue import Event
from .chain import ChainKey, Head, Sealed, seal
from .codec import decode_event
from .errors import ConcurrencyConflictError, UndecodableEventError

__all__ = [
    "MAX_CHUNK",
    "ChainedLog",
    "EventLog",
    "Record",
    "StoredMessage",
    "Undecodable",
    "WrongLastSequenceError",
    "decode_stored",
]

MAX_CHUNK: Final = 4096
"""The most messages one :meth:`EventLog.read_chunks` chunk holds (it bounds the buffer)."""


class StoredMessage(msgspec.Struct, frozen=True, gc=False):
    """One message as the log stores it, not decoded: what bulk readers (the projector) take.

    ``stored_ns`` is the store's timestamp in nanoseconds since the epoch (0 if unknown).
    A msgspec Struct because readers build one per message on their hottest path.
    """

    seq: int
    subject: str
    data: bytes
    mac: str
    stored_ns: int = 0

    @property
    def stored_at(self) -> datetime | None:
        """``stored_ns`` as an aware UTC datetime (None if unknown)."""
        if not self.stored_ns:
            return None
        return datetime.fromtimestamp(self.stored_ns / 1e9, UTC)


@dataclass(frozen=True, slots=True)
class Record:
    """One stored event with its stream position, its MAC and its exact bytes."""

    seq: int
    tenant: str
    event: Event
    mac: str
    data: bytes
    stored_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A message on an event subject that is not a valid event (see ``error``)."""

    seq: int
    subject: str
    data: bytes
    mac: str
    error: UndecodableEventError


def decode_stored(message: StoredMessage) -> Record | Undecodable:
    """Decode one stored message: a :class:`Record`, or :class:`Undecodable` saying why."""
    seq, subject, data, mac = message.seq, message.subject, message.data, message.mac
    try:
        tenant = tenant_of_subject(subject)
        event = decode_event(data, seq=seq, subject=subject)
    except UndecodableEventError as exc:
        return Undecodable(seq, subject, data, mac, exc)
    except ValueError as exc:
        return Undecodable(seq, subject, data, mac, UndecodableEventError(seq, subject, str(exc)))
    return Record(seq, tenant, event, mac, data, message.stored_at)


class WrongLastSequenceError(Exception):
    """Adapter-internal: the store refused a publish because the subject moved on."""

    def __init__(self, actual: int | None) -> None:
        self.actual = actual
        super().__init__(f"wrong last sequence: {actual}")


class EventLog(abc.ABC):
    """The port: an append-only log of events, one chain per tenant."""

    @abc.abstractmethod
    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        """Append ``events`` after ``head`` and return the new head.

        Raises:
            InvalidTenantError: ``tenant`` is not a valid id (nothing is published).
            ValueError: an event belongs to another tenant.
            ConcurrencyConflictError: another writer appended after ``head``.
            EventLogUnavailableError: the store did not answer after retries.
        """

    @abc.abstractmethod
    async def read_tenant(self, tenant: str, after: int = 0) -> list[Record]:
        """The tenant's events with stream sequence greater than ``after``, in order.

        Raises:
            UndecodableEventError: a stored message is not a valid event (names its sequence).
        """

    @abc.abstractmethod
    def read_chunks(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[list[StoredMessage]]:
        """Every message from stream sequence ``start`` on, undecoded, in stream order, in
        non-empty chunks of whatever has arrived (at most :data:`MAX_CHUNK` messages each).

        Without ``follow`` it stops at the last message stored when it began; with ``follow``
        it keeps waiting for new ones until cancelled.
        """

    async def read_all(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[Record | Undecodable]:
        """:meth:`read_chunks`, decoded one message at a time."""
        async for chunk in self.read_chunks(start, follow=follow):
            for message in chunk:
                yield decode_stored(message)

    @abc.abstractmethod
    async def head(self, tenant: str) -> Head:
        """The tenant's current head (``Head()`` for a tenant without events)."""

    @abc.abstractmethod
    async def last_seq(self) -> int:
        """The stream's last sequence (0 when empty)."""

    @abc.abstractmethod
    async def tenants(self) -> list[str]:
        """Every tenant with at least one event, sorted."""


class ChainedLog(EventLog):
    """Chained, optimistic, idempotent ``append`` over an adapter's single-event publish."""

    def __init__(self, key: ChainKey) -> None:
        self._key = key

    @abc.abstractmethod
    async def _publish(self, subject: str, sealed: Sealed, expected_seq: int) -> int:
        """Store one event if the subject's last sequence is ``expected_seq``; return its seq.

        Raises:
            WrongLastSequenceError: the subject's last sequence differs.
            EventLogUnavailableError: no answer after retries with the same ``Nats-Msg-Id``.
        """

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        subject = event_subject(tenant)
        if any(event.tenant != tenant for event in events):
            raise ValueError(f"every event appended for {tenant!r} must belong to it")
        pending = list(events)
        while pending:
            sealed = seal(pending[0], head.mac, self._key)
            # The sealed event keeps its id from now on: a resend carries the same Nats-Msg-Id.
            pending[0] = sealed.event
            try:
                seq = await self._publish(subject, sealed, head.seq)
            except WrongLastSequenceError as exc:
                head, done = await self._reconcile(tenant, pending, head, exc.actual)
                pending = pending[done:]
                continue
            head = Head(seq, sealed.mac)
            pending.pop(0)
        return head

    async def _reconcile(
        self, tenant: str, pending: list[Event], head: Head, actual: int | None
    ) -> tuple[Head, int]:
        """ "Maybe mine": the events stored after ``head`` are ours iff their ids are a prefix
        of ``pending``. Returns the head after them and how many of ``pending`` they cover.

        Raises:
            ConcurrencyConflictError: anything else was stored after ``head``.
        """
        try:
            stored = await self.read_tenant(tenant, after=head.seq)
        except UndecodableEventError as exc:
            raise ConcurrencyConflictError(tenant, head.seq, exc.seq) from exc
        if not stored or len(stored) > len(pending):
            raise ConcurrencyConflictError(tenant, head.seq, actual)
        for record, event in zip(stored, pending, strict=False):
            if record.event.id != event.id:
                raise ConcurrencyConflictError(tenant, head.seq, actual)
        last = stored[-1]
        return Head(last.seq, last.mac), len(stored)
