"""The inbox of the JetStream adapter's ordered consumers: what the subscription's callback
delivered and the reader has not taken yet (no nats import: messages are only read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .chain import MAC_HEADER
from .log import MAX_CHUNK, StoredMessage

if TYPE_CHECKING:
    from nats.aio.msg import Msg

__all__ = ["Inbox", "position"]


class Inbox:
    """Messages delivered by the subscription callback and not yet taken by the reader.

    The callback blocks (which holds back nats-py's delivery loop, not the connection) while
    :data:`MAX_CHUNK` messages wait, so a slow reader bounds its own buffer.
    """

    def __init__(self) -> None:
        self._messages: list[StoredMessage] = []
        self._arrived = anyio.Event()
        self._space = anyio.Event()

    async def deliver(self, msg: Msg) -> None:
        seq, stored_ns = position(msg)
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


def position(msg: Msg) -> tuple[int, int]:
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
