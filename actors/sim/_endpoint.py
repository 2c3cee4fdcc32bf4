"""One connection's MTProto endpoint, sans IO: packets in, packets (to seal) out.

Plain packets drive the auth-key exchange; encrypted ones are checked (auth key, msg_key,
msg_id time and parity, server salt, seq_no parity), unpacked (containers, gzip) and answered:
service messages here (ping, ping_delay_disconnect, get_future_salts; msgs_ack and other
client notices are read and dropped), API calls through :class:`RpcHandler`. Replies to one
packet go back as one packet: the results, then a ``msgs_ack`` for the client's
content-related messages.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import TLRequest, functions, types

from ._errors import RpcFailure
from ._handshake import Handshake, HandshakeError, RsaKey
from ._mtproto import (
    CONTAINER,
    Envelope,
    Inbound,
    KeyRecord,
    MalformedError,
    Outbound,
    ServerSession,
    decrypt,
    key_id_of,
    rpc_error,
    rpc_result,
    seal,
    unpack,
)
from ._rpc import RpcHandler

__all__ = ["Batch", "DataCentre", "Endpoint", "UnknownAuthKeyError"]

_log = logging.getLogger(__name__)

_MSGS_ACK: Final = types.MsgsAck.CONSTRUCTOR_ID
_TOO_OLD_S: Final = 300
_TOO_NEW_S: Final = 30
# bad_msg_notification codes (core.telegram.org/mtproto/service_messages_about_messages)
_MSG_ID_TOO_LOW, _MSG_ID_TOO_HIGH, _MSG_ID_NOT_MOD4 = 16, 17, 18
_EVEN_SEQ_EXPECTED, _ODD_SEQ_EXPECTED, _BAD_SALT = 34, 35, 48


def _answer(body: bytes) -> Outbound:
    """A content-related reply to a client message (rpc_result, pong, future_salts)."""
    return Outbound(body, content_related=True, response=True)


def _notice(body: bytes) -> Outbound:
    """A service notice about a client message (bad_msg_notification, bad_server_salt)."""
    return Outbound(body, content_related=False, response=True)


class UnknownAuthKeyError(Exception):
    """Raised for an encrypted packet whose auth key this DC does not know: the connection
    answers the transport error -404 and closes."""


@dataclass(slots=True)
class DataCentre:
    """What the connections of one simulated DC share: its auth keys and services."""

    dc_id: int
    rsa_key: RsaKey
    rpc: RpcHandler
    random_bytes: Callable[[int], bytes]
    wall_clock: Callable[[], float] = time.time
    keys: dict[int, KeyRecord] = field(default_factory=dict)
    handshakes: int = 0
    #: called when an auth key is created (to persist it)
    on_change: Callable[[], None] = field(default=lambda: None)


@dataclass(frozen=True, slots=True)
class Batch:
    """Messages for one session, numbered and encrypted only when written (so ids grow in
    the order packets leave)."""

    key: KeyRecord
    session: ServerSession
    messages: list[Outbound]


Out = bytes | Batch


class Endpoint:
    """The protocol state of one TCP connection to ``dc``."""

    def __init__(self, dc: DataCentre, peer: str = "?") -> None:
        self.dc = dc
        self.peer = peer  # the client's address, as the DC sees it
        self.key: KeyRecord | None = None
        self.session: ServerSession | None = None
        #: set by ping_delay_disconnect: close the connection this many seconds from now
        self.disconnect_delay: float | None = None
        self._handshake: Handshake | None = None
        self._plain_ids = ServerSession(0)

    def receive(self, packet: bytes) -> list[Out]:
        """Process one transport payload; returns what to send back, in order.

        Raises MalformedError or HandshakeError (close the connection) and
        UnknownAuthKeyError (answer -404, then close).
        """
        if len(packet) < 8:
            raise MalformedError("packet shorter than an auth_key_id")
        (auth_key_id,) = struct.unpack_from("<Q", packet)
        if auth_key_id == 0:
            return [self._plain(packet)]
        key = self.dc.keys.get(auth_key_id)
        if key is None:
            raise UnknownAuthKeyError
        return self._encrypted(key, decrypt(key, packet))

    def seal(self, out: Out) -> bytes:
        """The transport payload for ``out`` (encrypting a Batch)."""
        if isinstance(out, bytes):
            return out
        return seal(out.key, out.session, out.messages, self.dc.random_bytes, self.dc.wall_clock)

    def push(self, body: bytes) -> Batch | None:
        """A server-initiated content message (an update) for the connection's current
        session, or None before the client sent an encrypted message."""
        if self.key is None or self.session is None:
            return None
        return Batch(self.key, self.session, [Outbound(body, content_related=True, response=False)])

    # --- plain messages: the key exchange -------------------------------------------------

    def _plain(self, packet: bytes) -> bytes:
        if len(packet) < 20:
            raise MalformedError("plain packet too short")
        _, _msg_id, length = struct.unpack_from("<qqi", packet)
        if length != len(packet) - 20:
            raise MalformedError("plain message length mismatch")
        try:
            with BinaryReader(packet[20:]) as reader:
                request = reader.tgread_object()
        except (TypeNotFoundError, BufferError, struct.error, ValueError) as exc:
            raise HandshakeError("unreadable plain message") from exc
        if isinstance(request, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            self._handshake = Handshake(self.dc.dc_id, self.dc.rsa_key, self.dc.random_bytes)
        if self._handshake is None:
            raise HandshakeError("key exchange must start with req_pq_multi")
        reply, auth_key = self._handshake.handle(request)
        if auth_key is not None:
            key_id = key_id_of(auth_key)
            if key_id in self.dc.keys:
                raise HandshakeError("auth_key_id collision")
            self.dc.keys[key_id] = KeyRecord(auth_key, key_id, self._handshake.initial_salt())
            self.dc.handshakes += 1
            self.dc.on_change()
            self._handshake = None
        body = bytes(reply)
        msg_id = self._plain_ids.next_msg_id(response=True, now=self.dc.wall_clock())
        return struct.pack("<qqi", 0, msg_id, len(body)) + body

    # --- encrypted messages ---------------------------------------------------------------

    def _encrypted(self, key: KeyRecord, envelope: Envelope) -> list[Out]:
        session = key.session(envelope.session_id)
        self.key, self.session = key, session
        replies: list[Outbound] = []
        problem = self._check_msg_id(envelope.msg_id)
        if problem is None and envelope.body[:4] == CONTAINER.to_bytes(4, "little"):
            problem = _EVEN_SEQ_EXPECTED if envelope.seq_no % 2 else None
        if problem is not None:
            notice = types.BadMsgNotification(envelope.msg_id, envelope.seq_no, problem)
            return [Batch(key, session, [_notice(bytes(notice))])]
        if envelope.salt != key.salt:
            notice = types.BadServerSalt(envelope.msg_id, envelope.seq_no, _BAD_SALT, key.salt)
            return [Batch(key, session, [_notice(bytes(notice))])]
        if not session.announced:
            session.announced = True
            unique_id = int.from_bytes(self.dc.random_bytes(8), "little", signed=True)
            created = types.NewSessionCreated(envelope.msg_id, unique_id, key.salt)
            replies.append(Outbound(bytes(created), content_related=True, response=False))
        acks: list[int] = []
        for item in unpack(envelope):
            if session.first_time(item.msg_id):
                self._message(key, item, replies, acks)
        if acks:
            ack = bytes(types.MsgsAck(acks))
            replies.append(Outbound(ack, content_related=False, response=False))
        return [Batch(key, session, replies)] if replies else []

    def _check_msg_id(self, msg_id: int) -> int | None:
        if msg_id % 4:
            return _MSG_ID_NOT_MOD4
        delta = (msg_id >> 32) - self.dc.wall_clock()
        if delta < -_TOO_OLD_S:
            return _MSG_ID_TOO_LOW
        if delta > _TOO_NEW_S:
            return _MSG_ID_TOO_HIGH
        return None

    def _message(
        self, key: KeyRecord, item: Inbound, replies: list[Outbound], acks: list[int]
    ) -> None:
        if item.constructor == _MSGS_ACK:
            return
        try:
            with BinaryReader(item.body) as reader:
                obj = reader.tgread_object()
        except TypeNotFoundError as exc:
            error = f"INPUT_METHOD_INVALID_{exc.invalid_constructor_id:08x}"
            replies.append(_answer(rpc_error(item.msg_id, 400, error)))
            acks.append(item.msg_id)
            return
        except (BufferError, struct.error, ValueError, UnicodeDecodeError):
            replies.append(_answer(rpc_error(item.msg_id, 400, "INPUT_REQUEST_INVALID")))
            acks.append(item.msg_id)
            return
        if not isinstance(obj, TLRequest):
            _log.debug("ignoring client message %s", type(obj).__name__)
            return
        if item.seq_no % 2 == 0:
            notice = types.BadMsgNotification(item.msg_id, item.seq_no, _ODD_SEQ_EXPECTED)
            replies.append(_notice(bytes(notice)))
            return
        acks.append(item.msg_id)
        reply = self._service(key, item.msg_id, obj)
        if reply is None:
            reply = _answer(self._rpc(key, item.msg_id, obj))
        replies.append(reply)

    def _service(self, key: KeyRecord, msg_id: int, obj: Any) -> Outbound | None:
        if isinstance(obj, functions.PingDelayDisconnectRequest):
            self.disconnect_delay = float(obj.disconnect_delay)
        if isinstance(obj, functions.PingRequest | functions.PingDelayDisconnectRequest):
            return _answer(bytes(types.Pong(msg_id, obj.ping_id)))
        if isinstance(obj, functions.GetFutureSaltsRequest):
            now = int(self.dc.wall_clock())
            salt = types.FutureSalt(valid_since=now - 60, valid_until=now + 86_400, salt=key.salt)
            return _answer(bytes(types.FutureSalts(msg_id, now, [salt])))
        return None

    def _rpc(self, key: KeyRecord, msg_id: int, obj: Any) -> bytes:
        try:
            return rpc_result(msg_id, self.dc.rpc.call(key, self.dc.dc_id, obj, peer=self.peer))
        except RpcFailure as failure:
            return rpc_error(msg_id, failure.code, failure.message)
        except Exception:
            # A bug in a handler must not take the connection down: answer like Telegram would.
            _log.exception("DC %d: handler for %s failed", self.dc.dc_id, type(obj).__name__)
            return rpc_error(msg_id, 500, "INTERNAL")
