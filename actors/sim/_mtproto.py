"""MTProto 2.0 message layer, server side (core.telegram.org/mtproto/description), sans IO.

Encryption and decryption of messages with an auth key (``msg_key``, AES-256-IGE, x = 0 for
client-to-server and x = 8 for server-to-client), server ``msg_id``/``seq_no`` generation
per session, unpacking of ``msg_container``/``gzip_packed`` and the service replies.
"""

from __future__ import annotations

import gzip
import hashlib
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from telethon.crypto import AES
from telethon.extensions import BinaryReader
from telethon.tl import TLObject

__all__ = [
    "CONTAINER",
    "GZIP_PACKED",
    "Envelope",
    "Inbound",
    "KeyRecord",
    "MalformedError",
    "Outbound",
    "ServerSession",
    "container",
    "decrypt",
    "encrypt",
    "key_id_of",
    "rpc_error",
    "rpc_result",
    "seal",
    "unpack",
]

CONTAINER: Final = 0x73F1F8DC
GZIP_PACKED: Final = 0x3072CFA1
RPC_RESULT: Final = 0xF35C6D01
RPC_ERROR: Final = 0x2144CA19
_MAX_SESSIONS_PER_KEY: Final = 64
_REMEMBERED_IDS: Final = 512
_MAX_CONTAINER: Final = 1024


class MalformedError(Exception):
    """Raised when an encrypted packet cannot be a valid MTProto message (bad msg_key,
    lengths or padding, broken container). The connection carrying it is closed."""


def _sha1(data: bytes) -> bytes:
    return hashlib.sha1(data).digest()  # noqa: S324 - the key id is defined with SHA1


def key_id_of(auth_key: bytes) -> int:
    """``auth_key_id``: the lower 64 bits of SHA1(auth_key), unsigned."""
    return int.from_bytes(_sha1(auth_key)[-8:], "little")


@dataclass(slots=True)
class ServerSession:
    """The server's side of one client session: outgoing ids and what was already seen."""

    session_id: int
    announced: bool = False  # new_session_created sent
    _seq: int = 0
    _last_msg_id: int = 0
    _seen: deque[int] = field(default_factory=lambda: deque(maxlen=_REMEMBERED_IDS))

    def next_msg_id(self, *, response: bool, now: float) -> int:
        """A new, strictly increasing server msg_id (1 mod 4 for responses, else 3)."""
        residue = 1 if response else 3
        msg_id = (int(now) << 32) | (int((now % 1) * (1 << 32)) & ~3) | residue
        if msg_id <= self._last_msg_id:
            msg_id = (self._last_msg_id & ~3) + 4 + residue
        self._last_msg_id = msg_id
        return msg_id

    def next_seq_no(self, *, content_related: bool) -> int:
        if content_related:
            self._seq += 1
            return self._seq * 2 - 1
        return self._seq * 2

    def first_time(self, msg_id: int) -> bool:
        """False if this client msg_id was already processed in this session."""
        if msg_id in self._seen:
            return False
        self._seen.append(msg_id)
        return True


@dataclass(slots=True)
class KeyRecord:
    """An auth key known to one DC, its current server salt and its sessions."""

    auth_key: bytes = field(repr=False)
    key_id: int
    salt: int
    sessions: dict[int, ServerSession] = field(default_factory=dict)
    layer: int | None = None

    def session(self, session_id: int) -> ServerSession:
        """The session with this id, created (and the oldest forgotten) if needed."""
        session = self.sessions.get(session_id)
        if session is None:
            if len(self.sessions) >= _MAX_SESSIONS_PER_KEY:
                del self.sessions[next(iter(self.sessions))]
            session = self.sessions[session_id] = ServerSession(session_id)
        return session


@dataclass(frozen=True, slots=True)
class Envelope:
    """A decrypted client packet: header fields and the (possibly container) body."""

    salt: int
    session_id: int
    msg_id: int
    seq_no: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Inbound:
    """One client message after unpacking containers and gzip."""

    msg_id: int
    seq_no: int
    body: bytes

    @property
    def constructor(self) -> int:
        return int.from_bytes(self.body[:4], "little") if len(self.body) >= 4 else 0


@dataclass(frozen=True, slots=True)
class Outbound:
    """One server message to send: its serialized body and how to number it."""

    body: bytes
    content_related: bool
    response: bool


def _aes_key_iv(auth_key: bytes, msg_key: bytes, x: int) -> tuple[bytes, bytes]:
    a = hashlib.sha256(msg_key + auth_key[x : x + 36]).digest()
    b = hashlib.sha256(auth_key[x + 40 : x + 76] + msg_key).digest()
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


def decrypt(key: KeyRecord, packet: bytes) -> Envelope:
    """Decrypt and authenticate a client packet (x = 0). Raises MalformedError."""
    if len(packet) < 24 + 32 or (len(packet) - 24) % 16:
        raise MalformedError("bad encrypted packet length")
    msg_key = packet[8:24]
    aes_key, aes_iv = _aes_key_iv(key.auth_key, msg_key, 0)
    plain = AES.decrypt_ige(packet[24:], aes_key, aes_iv)
    if hashlib.sha256(key.auth_key[88:120] + plain).digest()[8:24] != msg_key:
        raise MalformedError("msg_key mismatch")
    salt, session_id, msg_id, seq_no, length = struct.unpack_from("<qqqii", plain)
    padding = len(plain) - 32 - length
    if length < 4 or length % 4 or not 12 <= padding <= 1024:
        raise MalformedError("bad message length or padding")
    return Envelope(salt, session_id, msg_id, seq_no, plain[32 : 32 + length])


def encrypt(
    key: KeyRecord,
    *,
    session_id: int,
    msg_id: int,
    seq_no: int,
    body: bytes,
    random_bytes: Callable[[int], bytes],
) -> bytes:
    """Encrypt one server message (x = 8) with the key's current salt."""
    plain = struct.pack("<qqqii", key.salt, session_id, msg_id, seq_no, len(body)) + body
    plain += random_bytes(-(len(plain) + 12) % 16 + 12)
    msg_key = hashlib.sha256(key.auth_key[96:128] + plain).digest()[8:24]
    aes_key, aes_iv = _aes_key_iv(key.auth_key, msg_key, 8)
    encrypted: bytes = AES.encrypt_ige(plain, aes_key, aes_iv)
    return struct.pack("<Q", key.key_id) + msg_key + encrypted


def _gunzip(body: bytes) -> bytes:
    with BinaryReader(body[4:]) as reader:
        return gzip.decompress(reader.tgread_bytes())


def unpack(envelope: Envelope) -> list[Inbound]:
    """The messages of an envelope: a container's items, gzip_packed bodies inflated.

    Raises MalformedError for a broken or nested container.
    """
    body = envelope.body
    if int.from_bytes(body[:4], "little") != CONTAINER:
        return [_inflate(Inbound(envelope.msg_id, envelope.seq_no, body))]
    try:
        (count,) = struct.unpack_from("<i", body, 4)
        if not 0 < count <= _MAX_CONTAINER:
            raise MalformedError("bad container size")
        items, offset = [], 8
        for _ in range(count):
            msg_id, seq_no, length = struct.unpack_from("<qii", body, offset)
            offset += 16
            if length < 4 or offset + length > len(body):
                raise MalformedError("container item overruns the container")
            item = Inbound(msg_id, seq_no, body[offset : offset + length])
            if item.constructor == CONTAINER:
                raise MalformedError("nested container")
            items.append(_inflate(item))
            offset += length
    except struct.error as exc:
        raise MalformedError("truncated container") from exc
    return items


def _inflate(item: Inbound) -> Inbound:
    if item.constructor != GZIP_PACKED:
        return item
    try:
        return Inbound(item.msg_id, item.seq_no, _gunzip(item.body))
    except (OSError, EOFError, BufferError, ValueError) as exc:
        raise MalformedError("bad gzip_packed body") from exc


def rpc_result(req_msg_id: int, result: bytes) -> bytes:
    """``rpc_result req_msg_id:long result:Object``."""
    return struct.pack("<Iq", RPC_RESULT, req_msg_id) + result


def rpc_error(req_msg_id: int, code: int, message: str) -> bytes:
    """``rpc_result`` carrying ``rpc_error error_code:int error_message:string``."""
    error = struct.pack("<Ii", RPC_ERROR, code) + TLObject.serialize_bytes(message)
    return rpc_result(req_msg_id, error)


def container(items: list[tuple[int, int, bytes]]) -> bytes:
    """``msg_container`` of ``(msg_id, seq_no, body)`` items."""
    parts = [struct.pack("<Ii", CONTAINER, len(items))]
    parts.extend(struct.pack("<qii", m, s, len(b)) + b for m, s, b in items)
    return b"".join(parts)


def seal(
    key: KeyRecord,
    session: ServerSession,
    messages: list[Outbound],
    random_bytes: Callable[[int], bytes],
    wall_clock: Callable[[], float] = time.time,
) -> bytes:
    """Number ``messages`` in ``session`` and encrypt them as one packet (a container when
    there are several)."""
    now = wall_clock()
    numbered = [
        (
            session.next_msg_id(response=m.response, now=now),
            session.next_seq_no(content_related=m.content_related),
            m.body,
        )
        for m in messages
    ]
    if len(numbered) == 1:
        msg_id, seq_no, body = numbered[0]
    else:
        body = container(numbered)
        msg_id = session.next_msg_id(response=False, now=now)
        seq_no = session.next_seq_no(content_related=False)
    return encrypt(
        key,
        session_id=session.session_id,
        msg_id=msg_id,
        seq_no=seq_no,
        body=body,
        random_bytes=random_bytes,
    )
