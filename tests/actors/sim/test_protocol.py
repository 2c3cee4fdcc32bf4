"""MTProto behaviour of the simulator seen from the wire: salts, sessions, acks, pings,
transports, unknown keys, malformed packets and shutdown."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import struct
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest
from telethon import errors, functions, types
from telethon.crypto import AuthKey
from telethon.network import authenticator
from telethon.network.connection import (
    ConnectionTcpAbridged,
    ConnectionTcpFull,
    ConnectionTcpIntermediate,
    ConnectionTcpObfuscated,
)
from telethon.network.mtprotoplainsender import MTProtoPlainSender
from telethon.network.mtprotostate import MTProtoState
from telethon.sessions import StringSession
from telethon.tl.core import MessageContainer

from actors.sim import Simulator, SimulatorError

from ._support import API_HASH, API_ID, OpenClient

pytestmark = pytest.mark.anyio

_LOGGERS: Any = defaultdict(lambda: logging.getLogger("tests.sim.raw"))


class RawClient:
    """A bare MTProto client made of Telethon's parts: key exchange, then hand-made messages."""

    def __init__(self, connection: Any, state: MTProtoState) -> None:
        self.connection = connection
        self.state = state

    async def send(self, request: Any) -> int:
        buffer = io.BytesIO()
        msg_id: int = self.state.write_data_as_message(buffer, bytes(request), content_related=True)
        await self.connection.send(self.state.encrypt_message_data(buffer.getvalue()))
        return msg_id

    async def receive(self) -> list[Any]:
        """The objects of the next packet (a container's items unpacked)."""
        with anyio.fail_after(5):
            message = self.state.decrypt_message_data(await self.connection.recv())
        if isinstance(message.obj, MessageContainer):
            return [inner.obj for inner in message.obj.messages]
        return [message.obj]


@asynccontextmanager
async def raw_client(sim: Simulator) -> AsyncIterator[RawClient]:
    host, port = sim.dc_address(sim.home_dc)
    connection = ConnectionTcpFull(host, port, sim.home_dc, loggers=_LOGGERS)
    await connection.connect(timeout=5)
    try:
        key, _offset = await authenticator.do_authentication(
            MTProtoPlainSender(connection, loggers=_LOGGERS)
        )
        yield RawClient(connection, MTProtoState(AuthKey(key), loggers=_LOGGERS))
    finally:
        tasks = [t for t in (connection._send_task, connection._recv_task) if t is not None]
        await connection.disconnect()
        if tasks:  # a loop that saw the server close cancels itself: let it finish
            await asyncio.wait(tasks)


async def test_new_session_bad_salt_then_new_session_created(sim: Simulator) -> None:
    """Salt 0 earns bad_server_salt (not processed); with the new salt the session is
    announced, the call answered and acknowledged in one container."""
    async with raw_client(sim) as client:
        first = await client.send(functions.PingRequest(ping_id=1))
        (notice,) = await client.receive()
        assert isinstance(notice, types.BadServerSalt)
        assert notice.bad_msg_id == first
        assert notice.error_code == 48
        client.state.salt = notice.new_server_salt
        second = await client.send(functions.PingRequest(ping_id=2))
        created, pong, ack = await client.receive()
        assert isinstance(created, types.NewSessionCreated)
        assert created.server_salt == notice.new_server_salt
        assert isinstance(pong, types.Pong)
        assert (pong.msg_id, pong.ping_id) == (second, 2)
        assert isinstance(ack, types.MsgsAck)
        assert ack.msg_ids == [second]


async def test_ping_delay_disconnect_closes_after_the_delay(sim: Simulator) -> None:
    """ping_delay_disconnect is answered with pong; the connection closes when the delay
    runs out without another one."""
    async with raw_client(sim) as client:
        await client.send(functions.PingRequest(ping_id=1))
        (notice,) = await client.receive()
        client.state.salt = notice.new_server_salt
        await client.send(functions.PingDelayDisconnectRequest(ping_id=3, disconnect_delay=0))
        replies = await client.receive()
        assert any(isinstance(r, types.Pong) and r.ping_id == 3 for r in replies)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await client.receive()


async def test_future_salts(sim: Simulator) -> None:
    """get_future_salts lists the salt in use."""
    async with raw_client(sim) as client:
        await client.send(functions.PingRequest(ping_id=1))
        (notice,) = await client.receive()
        client.state.salt = notice.new_server_salt
        await client.send(functions.GetFutureSaltsRequest(num=3))
        replies = await client.receive()
        (salts,) = [r for r in replies if isinstance(r, types.FutureSalts)]
        assert [s.salt for s in salts.salts] == [notice.new_server_salt]


@pytest.mark.parametrize(
    "connection",
    [ConnectionTcpAbridged, ConnectionTcpIntermediate, ConnectionTcpObfuscated],
    ids=["abridged", "intermediate", "obfuscated"],
)
async def test_other_transports(sim: Simulator, open_client: OpenClient, connection: Any) -> None:
    """Besides the full transport, abridged, intermediate and obfuscated2 framing work."""
    async with open_client(connection=connection) as client:
        result = await client(functions.auth.ExportLoginTokenRequest(API_ID, API_HASH, []))
    assert isinstance(result, types.auth.LoginToken)


async def test_unknown_auth_key_is_404(sim: Simulator, open_client: OpenClient) -> None:
    """A key the DC does not know gets transport error -404 (Telethon: AuthKeyNotFound)."""
    session = StringSession()
    session.set_dc(sim.home_dc, *sim.dc_address(sim.home_dc))
    session.auth_key = AuthKey(os.urandom(256))
    with pytest.raises(errors.AuthKeyNotFound):
        async with open_client(session=session.save(), auto_reconnect=False):
            pass


async def test_auth_keys_belong_to_one_dc(sim: Simulator, open_client: OpenClient) -> None:
    """A key created on DC 1 is unknown to DC 2."""
    async with open_client() as client:
        key = client.session.auth_key
    session = StringSession()
    session.set_dc(2, *sim.dc_address(2))
    session.auth_key = key
    with pytest.raises(errors.AuthKeyNotFound):
        async with open_client(session=session.save(), auto_reconnect=False):
            pass


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xef\x05" + bytes(20),  # abridged, a plain message that is no TL object
        struct.pack("<ii", 24, 0) + bytes(12) + b"\x00\x00\x00\x00",  # full, wrong CRC32
        bytes(range(1, 65)),  # an obfuscated2 header with an unknown protocol tag
    ],
    ids=["bad-plain-message", "bad-crc", "bad-obfuscation"],
)
async def test_malformed_packet_closes_only_that_connection(
    sim: Simulator, open_client: OpenClient, garbage: bytes
) -> None:
    """A malformed packet closes its own connection; others keep working."""
    async with open_client() as healthy:
        host, port = sim.dc_address(sim.home_dc)
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(garbage)
            with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
        assert await healthy.get_me() is None
    assert sim.statistics().malformed_connections == 1


async def test_stopping_the_simulator_closes_connections() -> None:
    """Cancelling run() closes every connection and releases the ports."""
    simulator = Simulator()
    serving = anyio.CancelScope()

    async def serve(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        with serving:
            await simulator.run(task_status=task_status)

    async with anyio.create_task_group() as tg:
        await tg.start(serve)
        host, port = simulator.dc_address(simulator.home_dc)
        async with await anyio.connect_tcp(host, port) as stream:
            await stream.send(b"\xef")  # abridged, then silence
            serving.cancel()
            with anyio.fail_after(5), pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await stream.receive()
    assert simulator.statistics().open_connections == 0
    with pytest.raises(SimulatorError, match="not running"):
        simulator.dc_address(simulator.home_dc)
