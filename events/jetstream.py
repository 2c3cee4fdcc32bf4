"""The JetStream adapter of the EventLog port (the only module of ``events`` importing nats).

Appends are awaited ``js.publish`` calls with ``Nats-Expected-Last-Subject-Sequence`` and
``Nats-Msg-Id`` (never ``publish_async``: a rejected conditional publish there never resolves,
see reference/jetstream.md). Timeouts and 503s are retried with the same Msg-Id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import anyio
import nats.errors
import nats.js.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api

from ._tenant import (
    EVENT_SUBJECT_WILDCARD,
    event_subject,
    tenant_of_subject,
)
from .chain import MAC_HEADER, ChainKey, Head, Sealed
from .errors import EventLogUnavailableError
from .log import (
    MAX_CHUNK,
    ChainedLog,
    StoredMessage,
    WrongLastSequenceError,
)

__all__ = ["STREAM", "JetStreamEventLog", "ensure_stream"]

STREAM: Final = "TGQR_EVENTS"
_DIRECT_READS: Final = 16
"""A tenant's first messages are read one request each (cheapest for the usual short log);
the rest of a longer one streams through an ordered consumer on its subject, so a leased
tenant's renewals do not make its log slow to read."""
_WRONG_LAST_SEQUENCE: Final = frozenset({10071, 10164})
_RETRYABLE: Final = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.js.errors.ServiceUnavailableError,
    nats.errors.ConnectionReconnectingError,
)


async def ensure_stream(
    js: JetStreamContext,
    *,
    name: str = STREAM,
    replicas: int = 1,
    deny_delete: bool = True,
    deny_purge: bool = True,
    subjects: list[str] | None = None,
) -> api.StreamInfo:
    """Create the event stream, or update it to this config; idempotent."""
    config = api.StreamConfig(
        name=name,
        subjects=subjects or [EVENT_SUBJECT_WILDCARD],
        storage=api.StorageType.FILE,
        retention=api.RetentionPolicy.LIMITS,
        num_replicas=replicas,
        duplicate_window=120.0,
        deny_delete=deny_delete,
        deny_purge=deny_purge,
        allow_direct=True,
        discard=api.DiscardPolicy.OLD,
    )
    try:
        await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return await js.add_stream(config)
    return await js.update_stream(config)


class JetStreamEventLog(ChainedLog):
    """EventLog on a JetStream stream (create it first with :func:`ensure_stream`)."""

    def __init__(
        self,
        js: JetStreamContext,
        key: ChainKey,
        *,
        stream: str = STREAM,
        timeout: float = 5.0,
        retries: int = 6,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        super().__init__(key)
        self._js = js
        self._stream = stream
        self._timeout = timeout
        self._retries = retries
        self._sleep = sleep

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
        inbox = _Inbox()
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
        self, subject: str, start: int, inbox: _Inbox
    ) -> JetStreamContext.PushSubscription:
        """An ordered consumer on ``subject`` from stream sequence ``start`` filing into
        ``inbox`` (unsubscribe it when done)."""
        return await self._js.subscribe(
            subject,
            stream=self._stream,
            cb=inbox.deliver,
            ordered_consumer=True,
            config=api.ConsumerConfig(
                deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
            ),
            pending_msgs_limit=-1,
            pending_bytes_limit=-1,
        )

    async def read_chunks(
        self, start: int = 1, *, follow: bool = False
    ) -> AsyncIterator[list[StoredMessage]]:
        end = await self.last_seq()
        if not follow and end < start:
            return
        # nats-py's next_msg() and message iterator spawn a task per message, a third of
        # the read rate; its per-subscription loop hands messages to a callback without one.
        # The callback only files each message in the inbox; the chunks are handed out here.
        inbox = _Inbox()
        sub = await self._follow(EVENT_SUBJECT_WILDCARD, max(start, 1), inbox)
        try:
            while True:
                chunk = inbox.take()
                if not chunk:
                    with anyio.move_on_after(None if follow else self._timeout):
                        await inbox.wait()
                    if inbox.empty() and not follow and await self.last_seq() <= end:
                        return  # nothing arrived although messages up to `end` exist: deleted
                    continue
                if not follow and chunk[-1].seq >= end:
                    yield [message for message in chunk if message.seq <= end]
                    return
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await sub.unsubscribe()

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

    async def tenants(self) -> list[str]:
        info = await self._js.stream_info(self._stream, subjects_filter=EVENT_SUBJECT_WILDCARD)
        found: list[str] = []
        for subject in info.state.subjects or {}:
            try:
                found.append(tenant_of_subject(subject))
            except ValueError:
                continue
        return sorted(found)


class _Inbox:
    """Messages delivered by the subscription callback and not yet taken by the reader.

    The callback blocks (which holds back nats-py's delivery loop, not the connection) while
    :data:`MAX_CHUNK` messages wait, so a slow reader bounds its own buffer.
    """

    def __init__(self) -> None:
        self._messages: list[StoredMessage] = []
        self._arrived = anyio.Event()
        self._space = anyio.Event()

    async def deliver(self, msg: Msg) -> None:
        seq, stored_ns = _position(msg)
        mac = msg.headers.get(MAC_HEADER, "") if msg.headers else ""
        messages = self._messages
        messages.append(StoredMessage(seq, msg.subject, msg.data, mac, stored_ns))
        if len(messages) == 1:
            self._arrived.set()
        while len(self._messages) >= MAX_CHUNK:
            self._space = anyio.Event()
            await self._space.wait()

    def empty(self) -> bool:
        return not self._messages

    def take(self) -> list[StoredMessage]:
        """Everything delivered so far (possibly nothing); frees the callback."""
        taken, self._messages = self._messages, []
        if taken:
            self._space.set()
        return taken

    async def wait(self) -> None:
        """Until something is delivered."""
        if not self._messages:
            self._arrived = anyio.Event()
            await self._arrived.wait()


def _position(msg: Msg) -> tuple[int, int]:
    """Stream sequence and store time (ns) of a consumer message, read off its ack subject.

    ``msg.metadata`` parses the same subject into several objects per message, which costs
    a third of the read rate; this reads the two fields the log needs. Ack subjects are
    ``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>`` or, with a
    domain and account hash, two tokens longer (ADR-15).
    """
    tokens = msg.reply.split(".")
    if len(tokens) == 9:
        return int(tokens[5]), int(tokens[7])
    if len(tokens) >= 11:
        return int(tokens[7]), int(tokens[9])
    meta = msg.metadata
    return meta.sequence.stream, int(meta.timestamp.timestamp() * 1e9)


def _actual_from(description: str | None) -> int | None:
    # "wrong last sequence: 42"
    if description and ":" in description:
        tail = description.rsplit(":", 1)[1].strip()
        if tail.isdigit():
            return int(tail)
    return None
