"""MTProto TCP transports, server side (core.telegram.org/mtproto/mtproto-transports).

The client's first bytes pick the framing: ``0xef`` abridged, ``0xeeeeeeee`` intermediate,
``0xdddddddd`` padded intermediate, a length + zero sequence number full (Telethon's default
``ConnectionTcpFull``), anything else a 64-byte obfuscated2 header (AES-256-CTR around one
of the others). :func:`open_transport` reads that prelude and returns a :class:`Transport`.
"""

from __future__ import annotations

import os
import struct
import zlib
from typing import Final, Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = ["Transport", "TransportError", "open_transport"]

_MAX_PACKET: Final = 2 * 1024 * 1024
_ABRIDGED: Final = b"\xef"
_INTERMEDIATE: Final = b"\xee\xee\xee\xee"
_PADDED: Final = b"\xdd\xdd\xdd\xdd"
_QUICK_ACK: Final = 0x8000_0000


class TransportError(Exception):
    """Raised for a framing violation (bad length, CRC or sequence number, unknown
    obfuscation tag); the connection is closed."""


class _Reader(Protocol):
    async def receive_exactly(self, nbytes: int) -> bytes: ...


class _CtrReader:
    """Decrypts an obfuscated2 stream on the fly."""

    def __init__(self, inner: _Reader, decryptor: CipherContext) -> None:
        self._inner = inner
        self._decryptor = decryptor

    async def receive_exactly(self, nbytes: int) -> bytes:
        return self._decryptor.update(await self._inner.receive_exactly(nbytes))


class Transport:
    """Frames packets for one connection. Subclasses implement one framing."""

    def __init__(self, reader: _Reader) -> None:
        self._reader = reader
        self._encryptor: CipherContext | None = None

    async def receive(self) -> bytes:
        """The next packet's payload. Blocks; raises TransportError, and anyio's
        IncompleteRead / EndOfStream when the client goes away."""
        raise NotImplementedError

    def _frame(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def encode(self, payload: bytes) -> bytes:
        """The bytes to write for one payload (encrypted when obfuscated)."""
        data = self._frame(payload)
        if self._encryptor is not None:
            return self._encryptor.update(data)
        return data

    def error(self, code: int) -> bytes:
        """A transport error such as -404 (unknown auth key), framed like a packet."""
        return self.encode(struct.pack("<i", -code))

    @staticmethod
    def _check(length: int) -> int:
        if not 0 < length <= _MAX_PACKET:
            raise TransportError(f"bad packet length {length}")
        return length


class _Abridged(Transport):
    async def receive(self) -> bytes:
        (first,) = await self._reader.receive_exactly(1)
        length = first & 0x7F
        if length == 0x7F:
            length = int.from_bytes(await self._reader.receive_exactly(3), "little")
        return await self._reader.receive_exactly(self._check(length * 4))

    def _frame(self, payload: bytes) -> bytes:
        words = len(payload) // 4
        if words < 0x7F:
            return bytes([words]) + payload
        return b"\x7f" + words.to_bytes(3, "little") + payload


class _Intermediate(Transport):
    async def receive(self) -> bytes:
        (length,) = struct.unpack("<I", await self._reader.receive_exactly(4))
        return await self._reader.receive_exactly(self._check(length & ~_QUICK_ACK))

    def _frame(self, payload: bytes) -> bytes:
        return struct.pack("<I", len(payload)) + payload


class _PaddedIntermediate(_Intermediate):
    async def receive(self) -> bytes:
        data = await super().receive()
        # MTProto payloads: plain = 20 + length; encrypted = 24 + a multiple of 16.
        if len(data) >= 20 and data[:8] == bytes(8):
            return data[: 20 + int.from_bytes(data[16:20], "little")]
        return data[: len(data) - (len(data) - 24) % 16]

    def _frame(self, payload: bytes) -> bytes:
        return super()._frame(payload + os.urandom(os.urandom(1)[0] % 16))


class _Full(Transport):
    def __init__(self, reader: _Reader, first: bytes) -> None:
        super().__init__(reader)
        self._pending_header: bytes | None = first
        self._receive_seq = 0
        self._send_seq = 0

    async def receive(self) -> bytes:
        header = self._pending_header or await self._reader.receive_exactly(8)
        self._pending_header = None
        length, seq = struct.unpack("<ii", header)
        if length < 12 or seq != self._receive_seq:
            raise TransportError(f"bad full-transport header (length {length}, seq {seq})")
        rest = await self._reader.receive_exactly(self._check(length - 8))
        (crc,) = struct.unpack("<I", rest[-4:])
        if zlib.crc32(header + rest[:-4]) != crc:
            raise TransportError("CRC32 mismatch")
        self._receive_seq += 1
        return rest[:-4]

    def _frame(self, payload: bytes) -> bytes:
        data = struct.pack("<ii", len(payload) + 12, self._send_seq) + payload
        self._send_seq += 1
        return data + struct.pack("<I", zlib.crc32(data))


def _aes_ctr(key: bytes, iv: bytes) -> CipherContext:
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()


async def open_transport(stream: _Reader) -> Transport:
    """Read the client's prelude and return the matching transport.

    Blocks until the prelude arrived; raises TransportError for an unknown obfuscated tag.
    """
    first = await stream.receive_exactly(1)
    if first == _ABRIDGED:
        return _Abridged(stream)
    head = first + await stream.receive_exactly(7)
    if head[:4] == _INTERMEDIATE:
        return _prepend(_Intermediate, stream, head[4:])
    if head[:4] == _PADDED:
        return _prepend(_PaddedIntermediate, stream, head[4:])
    if head[4:8] == bytes(4):
        return _Full(stream, head)
    header = head + await stream.receive_exactly(56)
    decryptor = _aes_ctr(header[8:40], header[40:56])
    plain = decryptor.update(header)
    reversed_part = header[8:56][::-1]
    kinds: dict[bytes, type[Transport]] = {
        _ABRIDGED * 4: _Abridged,
        _INTERMEDIATE: _Intermediate,
        _PADDED: _PaddedIntermediate,
    }
    kind = kinds.get(plain[56:60])
    if kind is None:
        raise TransportError("unknown obfuscated2 protocol tag")
    transport = kind(_CtrReader(stream, decryptor))
    transport._encryptor = _aes_ctr(reversed_part[:32], reversed_part[32:48])
    return transport


class _Prefixed:
    """A reader that first returns bytes already consumed while sniffing the prelude."""

    def __init__(self, inner: _Reader, prefix: bytes) -> None:
        self._inner = inner
        self._prefix = prefix

    async def receive_exactly(self, nbytes: int) -> bytes:
        if not self._prefix:
            return await self._inner.receive_exactly(nbytes)
        taken, self._prefix = self._prefix[:nbytes], self._prefix[nbytes:]
        if len(taken) < nbytes:
            taken += await self._inner.receive_exactly(nbytes - len(taken))
        return taken


def _prepend(kind: type[Transport], stream: _Reader, prefix: bytes) -> Transport:
    return kind(_Prefixed(stream, prefix))
