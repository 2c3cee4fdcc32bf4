"""The JetStream adapter of the EventLog port (with :mod:`events.jsstorage`, the only modules of
``events`` importing nats).

Appends are awaited ``js.publish`` calls with ``Nats-Expected-Last-Subject-Sequence`` and
``Nats-Msg-Id`` (never ``publish_async``: a rejected conditional publish there never resolves,
see reference/jetstream.md). Every request, append or read, is retried with short tries within
one deadline (:class:`events.jsretry.RetryPolicy`), appends with the same Msg-Id, so a stream
leader election stalls a call for the election plus about a try; a full stream and an oversize
message are refused at once. Reads through a consumer use ordered consumers that the server
deletes :data:`OWN_CONSUMER_IDLE_S` after the read ends, re-created from where the read stands
when they stop delivering.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final, TypeVar

import anyio
import nats.js.errors
from nats.js import JetStreamContext, api

from ._jsinbox import Inbox
from ._tenant import (
    EVENT_SUBJECT_WILDCARD,
    event_subject,
    tenant_of_subject,
)
from .chain import MAC_HEADER, ChainKey, Head, Sealed
from .errors import EventLogFullError, EventLogUnavailableError, EventTooLargeError
from .jsretry import DEFAULT_POLICY, TRANSIENT, RetryPolicy, conditional_publish, retrying
from .jsstorage import SERVICE_BUCKETS, STREAM, bucket_stream, ensure_stream, stream_use
from .log import (
    FENCE_HEADER,
    HEADER_ALLOWANCE,
    ChainedLog,
    StoredMessage,
    WrongLastSequenceError,
)
from .storage import StorageUse

__all__ = ["OWN_CONSUMER_IDLE_S", "STREAM", "JetStreamEventLog", "ensure_stream"]

_DIRECT_READS: Final = 16
"""A tenant's first messages are read one request each (cheapest for the usual short log);
the rest of a longer one streams through an ordered consumer on its subject, so a leased
tenant's renewals do not make its log slow to read."""
OWN_CONSUMER_IDLE_S: Final = 2.0
"""The server deletes a consumer of ours this long after its reader unsubscribed (it is created
a round trip before the subscription, so it must outlive that)."""
_STALLS: Final = 2
"""How often a whole-log read re-creates its consumer when nothing arrives although the
stream holds the next message, before it gives up with EventLogUnavailableError."""
_WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_TOO_LARGE: Final = 10054  # message size exceeds maximum allowed
_FULL: Final = frozenset({10077, 10047})  # maximum bytes/messages exceeded; no room on server
T = TypeVar("T")


class JetStreamEventLog(ChainedLog):
    """EventLog on a JetStream stream (create it first with :func:`ensure_stream`).

    ``buckets``: the KV buckets whose fill :meth:`storage` reports after the log's.
    ``retry``: how each request is tried (the default gives up after 15 s). ``timeout``: how
    long a whole-log read waits for a consumer that delivers nothing before it checks.
    """

    def __init__(
        self,
        js: JetStreamContext,
        key: ChainKey,
        *,
        stream: str = STREAM,
        timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_POLICY,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        clock: Callable[[], float] = time.monotonic,
        buckets: Sequence[str] = SERVICE_BUCKETS,
    ) -> None:
        super().__init__(key)
        self._js = js
        self._stream = stream
        self._timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._buckets = tuple(buckets)
        self._max_msg_size: int | None = None

    async def _call(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        """``call`` retried within the policy (``what`` names it in the error).

        Raises:
            EventLogUnavailableError: no answer within the deadline.
        """
        try:
            return await retrying(call, policy=self._retry, clock=self._clock, sleep=self._sleep)
        except TRANSIENT as exc:
            raise EventLogUnavailableError(f"{what}: no answer: {exc!r}") from exc

    async def _publish(
        self, subject: str, sealed: Sealed, expected_seq: int, fence: str | None = None
    ) -> int:
        try:
            return await conditional_publish(
                self._js,
                subject,
                sealed.data,
                stream=self._stream,
                msg_id=sealed.event.id,
                expected_seq=expected_seq,
                headers={MAC_HEADER: sealed.mac, **({FENCE_HEADER: fence} if fence else {})},
                policy=self._retry,
                sleep=self._sleep,
            )
        except nats.js.errors.APIError as exc:
            if exc.err_code in _WRONG_LAST_SEQUENCE:
                raise WrongLastSequenceError(_actual_from(exc.description)) from exc
            tenant = tenant_of_subject(subject)
            if exc.err_code == _TOO_LARGE:
                size = len(sealed.data) + HEADER_ALLOWANCE
                limit = self._max_msg_size or 0
                kind = type(sealed.event).__name__
                raise EventTooLargeError(tenant, kind, size, limit) from exc
            if exc.err_code in _FULL:
                raise EventLogFullError(tenant, exc.description or "no room") from exc
            raise EventLogUnavailableError(f"append refused: {exc.description}") from exc
        except TRANSIENT as exc:
            raise EventLogUnavailableError(f"append not acknowledged: {exc!r}") from exc

    async def _max_message_bytes(self) -> int | None:
        if self._max_msg_size is None:
            info = await self._call(lambda: self._js.stream_info(self._stream), "stream info")
            self._max_msg_size = info.config.max_msg_size or -1
        return self._max_msg_size if self._max_msg_size > 0 else None

    async def _read_subject(self, tenant: str, after: int) -> list[StoredMessage]:
        subject = event_subject(tenant)
        out: list[StoredMessage] = []
        seq = after + 1
        while len(out) < _DIRECT_READS:
            try:
                # Leader read (not direct): read-after-write consistent.
                msg = await self._call(
                    lambda seq=seq: self._js.get_msg(  # type: ignore[misc]
                        self._stream, seq=seq, subject=subject, next=True
                    ),
                    f"read of {tenant!r}",
                )
            except nats.js.errors.NotFoundError:
                return out
            stored_ns = int(msg.time.timestamp() * 1e9) if msg.time else 0
            mac = (msg.headers or {}).get(MAC_HEADER, "")
            out.append(
                StoredMessage(int(msg.seq or 0), msg.subject or subject, msg.data or b"", mac,
                              stored_ns)
            )  # fmt: skip
            seq = out[-1].seq + 1
        try:
            last = await self._call(
                lambda: self._js.get_last_msg(self._stream, subject), f"read of {tenant!r}"
            )
        except nats.js.errors.NotFoundError:
            return out
        end = int(last.seq or 0)
        if end >= seq:
            out.extend(await self._stream_subject(subject, seq, end))
        return out

    async def _stream_subject(self, subject: str, start: int, end: int) -> list[StoredMessage]:
        """The subject's messages from ``start`` to ``end`` through an ordered consumer,
        re-created from where the read stands when nothing arrives for two tries' time (its
        server died with the stream leader), within the policy's deadline.

        Raises:
            EventLogUnavailableError: the messages did not all arrive within the deadline.
        """
        deadline = self._clock() + self._retry.deadline_s
        out: list[StoredMessage] = []
        while True:
            position = out[-1].seq + 1 if out else start
            inbox = Inbox()
            sub = await self._follow(subject, position, inbox)
            try:
                while not out or out[-1].seq < end:
                    chunk = inbox.take()
                    if chunk:
                        out.extend(message for message in chunk if message.seq <= end)
                        continue
                    with anyio.move_on_after(2 * self._retry.try_s) as waited:
                        await inbox.wait()
                    if waited.cancelled_caught:
                        break
                else:
                    return out
            finally:
                with anyio.CancelScope(shield=True):
                    await sub.unsubscribe()
            if self._clock() >= deadline:
                raise EventLogUnavailableError(
                    f"read of {subject} stalled at sequence {position}: nothing delivered"
                )

    async def _follow(
        self, subject: str, start: int, inbox: Inbox
    ) -> JetStreamContext.PushSubscription:
        """An ordered consumer on ``subject`` from stream sequence ``start`` filing into
        ``inbox`` (unsubscribe it when done). A try cut short leaves at most a consumer that
        nobody listens to, which the server deletes when idle.

        Raises:
            EventLogUnavailableError: the consumer was not created within the deadline.
        """
        return await self._call(
            lambda: self._js.subscribe(
                subject,
                stream=self._stream,
                cb=inbox.deliver,
                ordered_consumer=True,
                inactive_threshold=OWN_CONSUMER_IDLE_S,
                config=api.ConsumerConfig(
                    deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
                ),
                pending_msgs_limit=-1,
                pending_bytes_limit=-1,
            ),
            f"consumer on {subject}",
        )

    async def read_chunks(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[list[StoredMessage]]:
        """See :meth:`EventLog.read_chunks`. Without ``follow``, a wait of ``timeout`` with
        nothing delivered ends the read only when the stream confirms that the messages up to
        the end are gone (deleted); otherwise the consumer is re-created from where the read
        stands, and after :data:`_STALLS` such stalls the read fails.

        Raises:
            EventLogUnavailableError: the stream did not answer, or holds messages that were
                not delivered.
        """
        end = await self.last_seq()
        if not follow and end < start:
            return
        position = max(start, 1)
        stalls = 0
        while True:
            # nats-py's next_msg() and message iterator spawn a task per message, a third of
            # the read rate; its per-subscription loop hands messages to a callback without
            # one. The callback only files each message in the inbox; chunks are handed out
            # here.
            inbox = Inbox()
            sub = await self._follow(EVENT_SUBJECT_WILDCARD, position, inbox)
            try:
                while True:
                    chunk = inbox.take()
                    if chunk:
                        stalls = 0
                        position = chunk[-1].seq + 1
                        if not follow and chunk[-1].seq >= end:
                            yield [message for message in chunk if message.seq <= end]
                            return
                        yield chunk
                        continue
                    with anyio.move_on_after(None if follow else self._timeout):
                        await inbox.wait()
                    if inbox.empty() and not follow:
                        break
            finally:
                with anyio.CancelScope(shield=True):
                    await sub.unsubscribe()
            if not await self._stored_between(position, end):
                return  # confirmed: the messages up to `end` were deleted
            stalls += 1
            if stalls > _STALLS:
                raise EventLogUnavailableError(
                    f"read of the log stalled at sequence {position}: the stream holds it, "
                    f"but nothing was delivered within {self._timeout}s, {stalls} times"
                )

    async def _stored_between(self, first: int, last: int) -> bool:
        """Whether the stream still holds a message with a sequence from ``first`` to
        ``last`` (a leader read: what the stream holds now, not what a replica has seen)."""
        try:
            msg = await self._call(
                lambda: self._js.get_msg(
                    self._stream, seq=first, subject=EVENT_SUBJECT_WILDCARD, next=True
                ),
                "read of the log",
            )
        except nats.js.errors.NotFoundError:
            return False
        return int(msg.seq or 0) <= last

    async def head(self, tenant: str) -> Head:
        subject = event_subject(tenant)
        try:
            msg = await self._call(
                lambda: self._js.get_last_msg(self._stream, subject), f"head of {tenant!r}"
            )
        except nats.js.errors.NotFoundError:
            return Head()
        return Head(int(msg.seq or 0), (msg.headers or {}).get(MAC_HEADER, ""))

    async def last_seq(self) -> int:
        info = await self._call(lambda: self._js.stream_info(self._stream), "stream info")
        return int(info.state.last_seq)

    async def storage(self) -> list[StorageUse]:
        uses: list[StorageUse] = []
        for name in (self._stream, *(bucket_stream(b) for b in self._buckets)):
            use = await stream_use(self._js, name, retry=self._retry)
            if use is not None:
                uses.append(use)
        return uses

    async def tenants(self) -> list[str]:
        info = await self._call(
            lambda: self._js.stream_info(self._stream, subjects_filter=EVENT_SUBJECT_WILDCARD),
            "stream info",
        )
        found: list[str] = []
        for subject in info.state.subjects or {}:
            try:
                found.append(tenant_of_subject(subject))
            except ValueError:
                continue
        return sorted(found)


def _actual_from(description: str | None) -> int | None:
    # "wrong last sequence: 42"
    if description and ":" in description:
        tail = description.rsplit(":", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return None
