"""The JetStream adapter of the EventLog port (with :mod:`events.jsstorage`, the only modules of
``events`` importing nats).

Appends are awaited ``js.publish`` calls with ``Nats-Expected-Last-Subject-Sequence`` and
``Nats-Msg-Id`` (never ``publish_async``: a rejected conditional publish there never resolves,
see reference/jetstream.md). Timeouts and 503s are retried with the same Msg-Id; a full stream
and an oversize message are refused at once. Reads through a consumer use ordered consumers that
the server deletes :data:`OWN_CONSUMER_IDLE_S` after the read ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Final

import anyio
import nats.errors
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
from .jsstorage import SERVICE_BUCKETS, STREAM, bucket_stream, ensure_stream, stream_use
from .log import (
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
_RETRYABLE: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
)


class JetStreamEventLog(ChainedLog):
    """EventLog on a JetStream stream (create it first with :func:`ensure_stream`).

    ``buckets``: the KV buckets whose fill :meth:`storage` reports after the log's.
    """

    def __init__(
        self,
        js: JetStreamContext,
        key: ChainKey,
        *,
        stream: str = STREAM,
        timeout: float = 5.0,
        retries: int = 6,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        buckets: Sequence[str] = SERVICE_BUCKETS,
    ) -> None:
        super().__init__(key)
        self._js = js
        self._stream = stream
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep
        self._buckets = tuple(buckets)
        self._max_msg_size: int | None = None

    async def _publish(self, subject: str, sealed: Sealed, expected_seq: int) -> int:
        delay = 0.1
        for attempt in range(self._retries + 1):
            # js.publish mutates the dict it is given: a fresh one for every try.
            headers = {
                "Nats-Msg-Id": sealed.event.id,
                "Nats-Expected-Last-Subject-Sequence": str(expected_seq),
                MAC_HEADER: sealed.mac,
            }
            try:
                ack = await self._js.publish(
                    subject,
                    sealed.data,
                    timeout=self._timeout,
                    stream=self._stream,
                    headers=headers,
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
                if exc.code != 503 or attempt == self._retries:
                    raise EventLogUnavailableError(f"append refused: {exc.description}") from exc
            except _RETRYABLE as exc:
                if attempt == self._retries:
                    raise EventLogUnavailableError(f"append not acknowledged: {exc!r}") from exc
            else:
                return int(ack.seq)
            await self._sleep(delay)
            delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _max_message_bytes(self) -> int | None:
        if self._max_msg_size is None:
            try:
                info = await self._js.stream_info(self._stream)
            except _RETRYABLE as exc:
                raise EventLogUnavailableError(f"stream info unavailable: {exc!r}") from exc
            self._max_msg_size = info.config.max_msg_size or -1
        return self._max_msg_size if self._max_msg_size > 0 else None

    async def _read_subject(self, tenant: str, after: int) -> list[StoredMessage]:
        subject = event_subject(tenant)
        out: list[StoredMessage] = []
        seq = after + 1
        while len(out) < _DIRECT_READS:
            try:
                # Leader read (not direct): read-after-write consistent.
                msg = await self._js.get_msg(self._stream, seq=seq, subject=subject, next=True)
            except nats.js.errors.NotFoundError:
                return out
            except _RETRYABLE as exc:
                raise EventLogUnavailableError(f"read of {tenant!r} failed: {exc!r}") from exc
            stored_ns = int(msg.time.timestamp() * 1e9) if msg.time else 0
            mac = (msg.headers or {}).get(MAC_HEADER, "")
            out.append(
                StoredMessage(int(msg.seq or 0), msg.subject or subject, msg.data or b"", mac,
                              stored_ns)
            )  # fmt: skip
            seq = out[-1].seq + 1
        try:
            last = await self._js.get_last_msg(self._stream, subject)
            end = int(last.seq or 0)
            if end >= seq:
                out.extend(await self._stream_subject(subject, seq, end))
        except nats.js.errors.NotFoundError:
            pass
        except (*_RETRYABLE, TimeoutError) as exc:
            raise EventLogUnavailableError(f"read of {tenant!r} failed: {exc!r}") from exc
        return out

    async def _stream_subject(self, subject: str, start: int, end: int) -> list[StoredMessage]:
        """The subject's messages from ``start`` to ``end`` through an ordered consumer."""
        inbox = Inbox()
        sub = await self._follow(subject, start, inbox)
        out: list[StoredMessage] = []
        try:
            with anyio.fail_after(self._timeout):
                while not out or out[-1].seq < end:
                    chunk = inbox.take()
                    if chunk:
                        out.extend(message for message in chunk if message.seq <= end)
                    else:
                        await inbox.wait()
        finally:
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()
        return out

    async def _follow(
        self, subject: str, start: int, inbox: Inbox
    ) -> JetStreamContext.PushSubscription:
        """An ordered consumer on ``subject`` from stream sequence ``start`` filing into
        ``inbox`` (unsubscribe it when done)."""
        return await self._js.subscribe(
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
            msg = await self._js.get_msg(
                self._stream, seq=first, subject=EVENT_SUBJECT_WILDCARD, next=True
            )
        except nats.js.errors.NotFoundError:
            return False
        except _RETRYABLE as exc:
            raise EventLogUnavailableError(f"read of the log failed: {exc!r}") from exc
        return int(msg.seq or 0) <= last

    async def head(self, tenant: str) -> Head:
        subject = event_subject(tenant)
        try:
            msg = await self._js.get_last_msg(self._stream, subject)
        except nats.js.errors.NotFoundError:
            return Head()
        except _RETRYABLE as exc:
            raise EventLogUnavailableError(f"head of {tenant!r} unavailable: {exc!r}") from exc
        return Head(int(msg.seq or 0), (msg.headers or {}).get(MAC_HEADER, ""))

    async def last_seq(self) -> int:
        try:
            info = await self._js.stream_info(self._stream)
        except _RETRYABLE as exc:
            raise EventLogUnavailableError(f"stream info unavailable: {exc!r}") from exc
        return int(info.state.last_seq)

    async def storage(self) -> list[StorageUse]:
        uses: list[StorageUse] = []
        for name in (self._stream, *(bucket_stream(b) for b in self._buckets)):
            use = await stream_use(self._js, name)
            if use is not None:
                uses.append(use)
        return uses

    async def tenants(self) -> list[str]:
        info = await self._js.stream_info(self._stream, subjects_filter=EVENT_SUBJECT_WILDCARD)
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
