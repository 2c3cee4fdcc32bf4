"""A minimal MTProxy on loopback, started by a test, in front of the simulator.

It does what a real MTProxy does with a client's first 64 bytes (the obfuscated2 init):
derives the two AES-256-CTR keys from them and the secret, mirrored from Telethon's
``MTProxyIO.init_header`` (client → proxy: ``sha256(init[8:40] + secret)``, IV
``init[40:56]``; proxy → client: the same on ``init[8:56]`` reversed), decrypts the init and
checks that it names the intermediate framing (``0xeeeeeeee``, or ``0xdddddddd`` padded) and a
DC it knows. Then it opens a plain connection to that DC, sends the framing's 4-byte tag and
pipes the decrypted stream to it. Toward the client it frames each packet itself, as a real
MTProxy does (it terminates the client's framing): with a ``dd`` secret it pads a packet with
0-3 random bytes, which is what Telethon's randomized intermediate codec strips (the simulator
pads with up to 15, as the transport spec allows a server). Anything else (another secret gives a garbage tag) closes
the connection, as a real MTProxy does: the client learns nothing but that it was closed.
"""

from __future__ import annotations

import hashlib
import secrets
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteStream, SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = ["MTProxy", "mtproxy"]

_INIT = 64
_TAGS = (b"\xee\xee\xee\xee", b"\xdd\xdd\xdd\xdd")
_CHUNK = 65536
_ENCRYPTED_HEADER = 24


@dataclass
class MTProxy:
    """A running test MTProxy: its port, its secret (hex) and what it refused."""

    port: int
    secret: str
    refused: list[str] = field(default_factory=list)
    forwarded: list[int] = field(default_factory=list)  # the DC id of each forwarded client

    def url(self, secret: str | None = None, *, padded: bool = False) -> str:
        given = self.secret if secret is None else secret
        return f"mtproxy://{'dd' if padded else ''}{given}@127.0.0.1:{self.port}"


def _ctr(key_material: bytes, secret: bytes, iv: bytes) -> CipherContext:
    key = hashlib.sha256(key_material + secret).digest()
    return Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()  # CTR: same both ways


async def _pipe(source: ByteStream, sink: ByteStream, cipher: CipherContext) -> None:
    with suppress(anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
        while True:
            await sink.send(cipher.update(await source.receive(_CHUNK)))
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await sink.aclose()


def _unpadded(packet: bytes) -> bytes:
    """An MTProto packet without the padding the simulator may add (plain: 20 bytes of header
    and the length they name; encrypted: 24 bytes of header and whole AES blocks)."""
    if len(packet) < _ENCRYPTED_HEADER:
        return packet  # a transport error code
    if packet[:8] == bytes(8):
        return packet[: 20 + int.from_bytes(packet[16:20], "little")]
    return packet[: len(packet) - (len(packet) - _ENCRYPTED_HEADER) % 16]


async def _reframe(
    upstream: SocketStream, client: ByteStream, cipher: CipherContext, *, pad: bool
) -> None:
    """Each intermediate packet from the DC, unpadded, re-framed (padded 0-3 bytes when ``pad``)
    and encrypted for the client; closes the client's side when the DC closes."""
    buffered = BufferedByteReceiveStream(upstream)
    with suppress(
        anyio.EndOfStream,
        anyio.IncompleteRead,
        anyio.BrokenResourceError,
        anyio.ClosedResourceError,
    ):
        while True:
            (length,) = struct.unpack("<I", await buffered.receive_exactly(4))
            packet = _unpadded(await buffered.receive_exactly(length & 0x7FFF_FFFF))
            if pad:
                packet += secrets.token_bytes(secrets.randbelow(4))
            await client.send(cipher.update(struct.pack("<I", len(packet)) + packet))
    with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
        await client.aclose()


async def _read_init(client: SocketStream) -> bytes:
    init = b""
    while len(init) < _INIT:
        init += await client.receive(_INIT - len(init))
    return init


async def _serve(proxy: MTProxy, dcs: Mapping[int, tuple[str, int]], client: SocketStream) -> None:
    secret = bytes.fromhex(proxy.secret)
    async with client:
        try:
            init = await _read_init(client)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return
        from_client = _ctr(init[8:40], secret, init[40:56])
        reverse = init[8:56][::-1]
        to_client = _ctr(reverse[:32], secret, reverse[32:48])
        plain = from_client.update(init)
        tag, dc_id = plain[56:60], abs(int.from_bytes(plain[60:62], "little", signed=True))
        if tag not in _TAGS or dc_id not in dcs:
            proxy.refused.append("bad init: another secret, framing or DC")
            return
        proxy.forwarded.append(dc_id)
        async with await anyio.connect_tcp(*dcs[dc_id]) as upstream:
            await upstream.send(tag)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pipe, client, upstream, from_client)
                await _reframe(upstream, client, to_client, pad=tag == _TAGS[1])
                tg.cancel_scope.cancel()


@asynccontextmanager
async def mtproxy(dcs: Mapping[int, tuple[str, int]]) -> AsyncIterator[MTProxy]:
    """A test MTProxy on 127.0.0.1 (a free port) with a fresh secret, forwarding to ``dcs``
    (DC id → host and port); stopped on exit."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = int(listener.extra(SocketAttribute.local_port))  # noqa: S610 (anyio, not Django)
    proxy = MTProxy(port, secrets.token_hex(16))

    async def handle(client: SocketStream) -> None:
        await _serve(proxy, dcs, client)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle, tg)
        try:
            yield proxy
        finally:
            tg.cancel_scope.cancel()
