"""The EventLog port and the append algorithm its adapters share.

An adapter supplies four primitives (publish one sealed event at an expected subject sequence,
read a tenant after a sequence, read the whole log, stream bookkeeping); :class:`ChainedLog`
turns them into chained, optimistic, idempotent appends. The in-memory fake and the JetStream
adapter both subclass it and pass one contract suite (``tests/events/test_log_contract.py``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Final

from ._tenant import event_subject
from .catalogue import Event
from .chain import ChainKey, Head, Sealed, seal
from .errors import ConcurrencyConflictError, EventTooLargeError, TenantQuarantinedError
from .quarantine import TenantLog, check_tenant
from .records import Record, StoredMessage, Undecodable, decode_stored
from .storage import StorageUse

__all__ = [
    "FENCE_HEADER",
    "HEADER_ALLOWANCE",
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
FENCE_HEADER: Final = "Tgqr-Fence"
"""``<instance> <partition>/<fence>``: which instance appended a message, under which claim of
the tenant's partition (several instances; README, "Running more than one"). Not covered by
the chain's MAC: it is the writers' bookkeeping, which an audit compares, not the event."""
HEADER_ALLOWANCE: Final = 512
"""Bytes counted for an event's headers (id, expected sequence, MAC, stream) when its size is
checked against the log's message size limit before anything is published."""


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
            EventTooLargeError: an event is larger than the log takes (nothing is stored).
            ConcurrencyConflictError: another writer appended after ``head``.
            TenantQuarantinedError: a message that does not verify was stored after ``head``.
            EventLogFullError: the log is at its size limit (what was stored before stays).
            EventLogUnavailableError: the store did not answer after retries.
        """

    @abc.abstractmethod
    async def load_tenant(self, tenant: str, *, after: Head | None = None) -> TenantLog:
        """The tenant's chain as it verifies: its events, its head and any bad messages.

        Never raises for what the log holds: a message that does not verify is listed in
        ``bad`` (see :mod:`events.quarantine`). ``after``: only the messages after that head.

        Raises:
            EventLogUnavailableError: the store did not answer.
        """

    async def read_tenant(self, tenant: str, after: int = 0) -> list[Record]:
        """The tenant's verified events with stream sequence greater than ``after``, in order.

        Raises:
            TenantQuarantinedError: a stored message of the tenant does not verify.
            EventLogUnavailableError: the store did not answer.
        """
        log = await self.load_tenant(tenant)
        if log.bad:
            raise TenantQuarantinedError(tenant, tuple((b.seq, b.reason) for b in log.bad))
        return [record for record in log.records if record.seq > after]

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

    @abc.abstractmethod
    async def storage(self) -> list[StorageUse]:
        """How full the log is (first) and the other stores kept beside it, if any.

        Raises:
            EventLogUnavailableError: the store did not answer.
        """


class ChainedLog(EventLog):
    """Chained, optimistic, idempotent ``append`` over an adapter's single-event publish."""

    fence: Callable[[str], str] | None = None
    """Set by a service that shares the log with other instances: the :data:`FENCE_HEADER`
    of an append of the tenant's, asked before each message. It raises when this instance may
    not write the tenant now, and nothing more is published. Aggregates whose id starts with
    ``_`` (the service's own chains) are not fenced."""

    def __init__(self, key: ChainKey) -> None:
        self._key = key

    @abc.abstractmethod
    async def _read_subject(self, tenant: str, after: int) -> list[StoredMessage]:
        """Every message stored on the tenant's subject after sequence ``after``, in order.

        Raises:
            EventLogUnavailableError: the store did not answer.
        """

    async def load_tenant(self, tenant: str, *, after: Head | None = None) -> TenantLog:
        messages = await self._read_subject(tenant, after.seq if after else 0)
        items = (decode_stored(message) for message in messages)
        return check_tenant(tenant, items, self._key, after=after)

    @abc.abstractmethod
    async def _publish(
        self, subject: str, sealed: Sealed, expected_seq: int, fence: str | None = None
    ) -> int:
        """Store one event if the subject's last sequence is ``expected_seq``; return its seq.
        ``fence``: the :data:`FENCE_HEADER` to store with it.

        Raises:
            WrongLastSequenceError: the subject's last sequence differs.
            EventTooLargeError: the store refused the message's size.
            EventLogFullError: the store is at its size limit.
            EventLogUnavailableError: no answer after retries with the same ``Nats-Msg-Id``.
        """

    @abc.abstractmethod
    async def _max_message_bytes(self) -> int | None:
        """The largest message the store takes, headers included (None: no limit known)."""

    async def _check_sizes(self, tenant: str, events: Sequence[Event], head: Head) -> None:
        """Refuse the whole call before publishing anything if one event is too large: an
        append is never left half-written by a size limit."""
        limit = await self._max_message_bytes()
        if limit is None:
            return
        prev = head.mac
        for event in events:
            sealed = seal(event, prev, self._key)
            size = len(sealed.data) + HEADER_ALLOWANCE
            if size > limit:
                raise EventTooLargeError(tenant, type(event).__name__, size, limit)
            prev = sealed.mac

    async def append(self, tenant: str, events: Sequence[Event], head: Head) -> Head:
        subject = event_subject(tenant)
        if any(event.tenant != tenant for event in events):
            raise ValueError(f"every event appended for {tenant!r} must belong to it")
        await self._check_sizes(tenant, events, head)
        pending = list(events)
        while pending:
            sealed = seal(pending[0], head.mac, self._key)
            # The sealed event keeps its id from now on: a resend carries the same Nats-Msg-Id.
            pending[0] = sealed.event
            fence = None
            if self.fence is not None and not tenant.startswith("_"):
                fence = self.fence(tenant)
            try:
                seq = await self._publish(subject, sealed, head.seq, fence)
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
            TenantQuarantinedError: a message that does not verify was stored after ``head``.
            ConcurrencyConflictError: anything else was stored after ``head``.
        """
        log = await self.load_tenant(tenant, after=head)
        if log.bad:
            raise TenantQuarantinedError(tenant, tuple((b.seq, b.reason) for b in log.bad))
        stored = log.records
        if not stored or len(stored) > len(pending):
            raise ConcurrencyConflictError(tenant, head.seq, actual)
        for record, event in zip(stored, pending, strict=False):
            if record.event.id != event.id:
                raise ConcurrencyConflictError(tenant, head.seq, actual)
        last = stored[-1]
        return Head(last.seq, last.mac), len(stored)
