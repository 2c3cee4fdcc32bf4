"""Reading what a backup copies out of JetStream: the event stream's messages (with headers and
sequences) and the latest state of each key of a bucket, each from a given sequence on.

One ordered consumer per read, naming its stream (the service role may not look streams up);
the read ends at the sequence the stream had when the backup began, or when the consumer says
nothing more is pending (the tail was deleted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import anyio
import nats.js.errors
from nats.js import api

from ._errors import BackupError
from ._format import BucketEntry, LogMessage

if TYPE_CHECKING:
    from nats.aio.msg import Msg
    from nats.js import JetStreamContext

__all__ = ["StreamEnd", "read_bucket", "read_messages", "stream_end"]

_STALL_S: Final = 15.0
"""How long a read may go without a single message before it fails."""
_KV_OPERATION: Final = "KV-Operation"


class StreamEnd:
    """A stream's first and last sequence (0, 0: no such stream or empty)."""

    __slots__ = ("first", "last")

    def __init__(self, first: int = 0, last: int = 0) -> None:
        self.first, self.last = first, last


async def stream_end(js: JetStreamContext, stream: str) -> StreamEnd | None:
    """The stream's sequence range now (None: no such stream)."""
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        return None
    return StreamEnd(int(info.state.first_seq), int(info.state.last_seq))


def _position(msg: Msg) -> tuple[int, int, int]:
    """Stream sequence, store time (ns) and pending count, read off the ack subject
    (``$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ns>.<pending>``, or two tokens
    longer with a domain and account hash)."""
    tokens = msg.reply.split(".")
    if len(tokens) >= 11:
        tokens = tokens[:2] + tokens[4:]
    return int(tokens[5]), int(tokens[7]), int(tokens[8])


async def _read(
    js: JetStreamContext, stream: str, subject: str, start: int, end: int
) -> list[tuple[Msg, int, int]]:
    """Every message of ``stream`` on ``subject`` from ``start`` to ``end``, in order."""
    out: list[tuple[Msg, int, int]] = []
    if end < start:
        return out
    done = anyio.Event()
    arrived = anyio.Event()

    async def deliver(msg: Msg) -> None:
        seq, stored_ns, pending = _position(msg)
        if seq <= end:
            out.append((msg, seq, stored_ns))
        arrived.set()
        if seq >= end or pending == 0:
            done.set()

    sub = await js.subscribe(
        subject,
        stream=stream,
        cb=deliver,
        ordered_consumer=True,
        inactive_threshold=5.0,
        config=api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start
        ),
        pending_msgs_limit=-1,
        pending_bytes_limit=-1,
    )
    try:
        while not done.is_set():
            count = len(out)
            with anyio.move_on_after(_STALL_S):
                await done.wait()
            if not done.is_set() and len(out) == count:
                raise BackupError(
                    f"reading {stream} stalled at sequence {out[-1][1] if out else start}"
                )
    finally:
        with anyio.CancelScope(shield=True):
            await sub.unsubscribe()
    return out


async def read_messages(
    js: JetStreamContext, stream: str, subject: str, start: int, end: int
) -> list[LogMessage]:
    """The log's messages from ``start`` to ``end`` exactly as stored.

    Raises:
        BackupError: the read stalled.
        nats.errors.Error: JetStream refused or did not answer.
    """
    return [
        LogMessage(seq, msg.subject, msg.data, dict(msg.headers or {}), stored_ns)
        for msg, seq, stored_ns in await _read(js, stream, subject, start, end)
    ]


async def read_bucket(
    js: JetStreamContext, bucket: str, start: int
) -> tuple[list[BucketEntry], int]:
    """The keys of KV ``bucket`` written from stream sequence ``start`` on (their latest
    state: value, or None when deleted), and the sequence read up to (0: no such bucket).

    Raises:
        BackupError: the read stalled.
        nats.errors.Error: JetStream refused or did not answer.
    """
    stream = f"KV_{bucket}"
    end = await stream_end(js, stream)
    if end is None:
        return [], 0
    prefix = f"$KV.{bucket}."
    latest: dict[str, BucketEntry] = {}
    for msg, seq, _ in await _read(js, stream, prefix + ">", max(start, 1), end.last):
        key = msg.subject.removeprefix(prefix)
        operation = (msg.headers or {}).get(_KV_OPERATION)
        value = None if operation in {"DEL", "PURGE"} else msg.data
        latest[key] = BucketEntry(bucket, key, value, seq)
    return sorted(latest.values(), key=lambda e: e.seq), end.last
