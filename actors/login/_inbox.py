"""An attempt's handle and inbox: what its actor's loop and its own watcher and timer give it.

The loop gives ``password`` commands (:meth:`Attempt.give`) and stops the attempt
(:meth:`Attempt.stop`); the scan watcher and the timer poke it. The inbox is bounded and is
only ever written without blocking.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import anyio

from ._mail import Envelope

__all__ = ["Attempt", "Item", "Scan", "Tick"]

_INBOX_SIZE = 64


@dataclass(frozen=True, slots=True)
class Scan:
    """The watcher saw ``updateLoginToken``: export again to learn the result."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The timer of wait number ``number`` fired."""

    number: int


Item = Envelope | Scan | Tick


class Attempt:
    """The loop's handle on a running attempt: give it passwords, stop it."""

    __slots__ = ("_receive", "_send", "done", "number", "scope", "tenant")

    def __init__(self, tenant: str, number: int) -> None:
        self.tenant = tenant
        self.number = number
        self.scope = anyio.CancelScope()
        self.done = anyio.Event()
        self._send, self._receive = anyio.create_memory_object_stream[Item](_INBOX_SIZE)

    def give(self, envelope: Envelope) -> bool:
        """Queue a ``password`` command (the attempt answers it); False if the inbox is full."""
        try:
            self._send.send_nowait(envelope)
        except (anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    async def stop(self) -> None:
        """Cancel the attempt and wait until its client is closed."""
        self.scope.cancel()
        await self.done.wait()

    def poke(self, item: Scan | Tick) -> None:
        """Wake the attempt (a full inbox holds work already: it wakes up anyway)."""
        with contextlib.suppress(anyio.WouldBlock, anyio.ClosedResourceError):
            self._send.send_nowait(item)

    async def next_item(self) -> Item:
        """The next queued item (waits for one)."""
        return await self._receive.receive()

    def queued_item(self) -> Item | None:
        """The next queued item, or None."""
        try:
            return self._receive.receive_nowait()
        except anyio.WouldBlock:
            return None

    def close(self, code: str, message: str) -> None:
        """Answer every command still queued; nothing more can be given."""
        self._send.close()
        while True:
            try:
                item = self._receive.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            if isinstance(item, Envelope):
                item.refuse(self.tenant, code, message)
        self._receive.close()
