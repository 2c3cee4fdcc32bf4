"""One client TCP connection to a simulated DC: the IO shell around :class:`Endpoint`.

A reader task turns packets into replies; a writer task owns the socket's send side, seals
(numbers and encrypts) what it is given in order, and writes it. Server pushes (updates) go
through the same bounded queue without blocking. Anything malformed closes this connection
only, with one log line.
"""

from __future__ import annotations

import logging
import math
import struct
from collections.abc import Callable
from typing import Final

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from ._endpoint import DataCentre, Endpoint, Out, UnknownAuthKeyError
from ._handshake import HandshakeError
from ._mtproto import MalformedError
from ._state import KeyRef
from ._transport import Transport, TransportError, open_transport

__all__ = ["Connection"]

_log = logging.getLogger(__name__)
_QUEUE: Final = 64
_UNKNOWN_KEY: Final = struct.pack("<i", -404)
_GONE: Final = (
    anyio.EndOfStream,
    anyio.IncompleteRead,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    ConnectionError,
)


class Connection:
    """Serves one accepted socket until the client leaves, breaks the protocol, lets a
    ``ping_delay_disconnect`` expire, or the simulator stops (cancellation)."""

    def __init__(
        self,
        dc: DataCentre,
        stream: SocketStream,
        *,
        on_bind: Callable[[Connection, KeyRef | None, KeyRef], None],
    ) -> None:
        self.dc = dc
        self._stream = stream
        address = stream.extra(SocketAttribute.remote_address, None)  # noqa: S610
        self._peer = f"{address[0]}:{address[1]}" if isinstance(address, tuple) else "?"
        self._endpoint = Endpoint(dc, self._peer)
        self._on_bind = on_bind
        self._ref: KeyRef | None = None
        self._send: MemoryObjectSendStream[Out] | None = None
        self.malformed = False

    @property
    def ref(self) -> KeyRef | None:
        """``(dc_id, auth_key_id)`` of the key this connection last used."""
        return self._ref

    def push(self, body: bytes) -> bool:
        """Queue a server-initiated message; False if it cannot be delivered here. Never
        blocks: a client too slow to drain 64 packets loses the update (logged)."""
        batch = self._endpoint.push(body)
        if batch is None or self._send is None:
            return False
        try:
            self._send.send_nowait(batch)
        except anyio.WouldBlock:
            _log.warning("DC %d %s: send queue full, update dropped", self.dc.dc_id, self._peer)
            return False
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False
        return True

    async def serve(self) -> None:
        """Serve until the connection ends; closes the socket. Never raises but for
        cancellation: whatever goes wrong stays inside this connection."""
        try:
            async with self._stream:
                await self._serve()
        except Exception as exc:  # includes ExceptionGroup from the reader/writer pair
            _log.exception("DC %d %s: connection failed", self.dc.dc_id, self._peer)
            self._malformed(exc)

    async def _serve(self) -> None:
        try:
            transport = await open_transport(BufferedByteReceiveStream(self._stream))
        except _GONE:
            return
        except TransportError as exc:
            self._malformed(exc)
            return
        send, receive = anyio.create_memory_object_stream[Out](_QUEUE)
        self._send = send
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._write, transport, receive, tg.cancel_scope)
            async with send:
                await self._read(transport, send)

    async def _read(self, transport: Transport, send: MemoryObjectSendStream[Out]) -> None:
        endpoint = self._endpoint
        idle_deadline = math.inf  # moved by ping_delay_disconnect
        while True:
            try:
                with anyio.CancelScope(deadline=idle_deadline) as idle:
                    packet = await transport.receive()
                if idle.cancelled_caught:
                    _log.info("DC %d %s: ping_delay_disconnect expired", self.dc.dc_id, self._peer)
                    return
                replies = endpoint.receive(packet)
            except _GONE:
                return
            except UnknownAuthKeyError:
                _log.info("DC %d %s: unknown auth key, answering -404", self.dc.dc_id, self._peer)
                await send.send(_UNKNOWN_KEY)
                return
            except (TransportError, MalformedError, HandshakeError) as exc:
                self._malformed(exc)
                return
            except Exception as exc:
                _log.exception("DC %d %s: unexpected failure", self.dc.dc_id, self._peer)
                self._malformed(exc)
                return
            if endpoint.key is not None:
                ref = (self.dc.dc_id, endpoint.key.key_id)
                if ref != self._ref:
                    self._on_bind(self, self._ref, ref)
                    self._ref = ref
            if endpoint.disconnect_delay is not None:
                idle_deadline = anyio.current_time() + endpoint.disconnect_delay
                endpoint.disconnect_delay = None
            try:
                for reply in replies:
                    await send.send(reply)
            except _GONE:  # the writer stopped: the client left
                return

    async def _write(
        self,
        transport: Transport,
        receive: MemoryObjectReceiveStream[Out],
        scope: anyio.CancelScope,
    ) -> None:
        async with receive:
            try:
                async for out in receive:
                    await self._stream.send(transport.encode(self._endpoint.seal(out)))
            except _GONE:
                scope.cancel()  # the client left: stop reading too

    def _malformed(self, exc: BaseException) -> None:
        self.malformed = True
        _log.warning(
            "DC %d %s: closing connection: %s: %s",
            self.dc.dc_id,
            self._peer,
            type(exc).__name__,
            exc,
        )
