"""A small HTTP CONNECT proxy with Basic authentication, in the test's own task group.

No package in the Debian or PyPI lists checked here refuses a client that also offers "no
auth", so the HTTP side of the proxy support is held to this one: it answers ``407`` to a wrong
or missing ``Proxy-Authorization`` and pipes bytes both ways after ``200``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["HttpProxy", "http_connect_proxy"]


@dataclass(frozen=True)
class HttpProxy:
    port: int
    user: str
    password: str

    def url(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"http://{self.user}:{secret}@127.0.0.1:{self.port}"


async def _pipe(source: SocketStream | BufferedByteReceiveStream, sink: SocketStream) -> None:
    try:
        while True:
            data = await source.receive()
            await sink.send(data)
    except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        return


async def _serve(client: SocketStream, expected: str) -> None:
    async with client:
        buffered = BufferedByteReceiveStream(client)
        try:
            head = await buffered.receive_until(b"\r\n\r\n", 8192)
        except (anyio.IncompleteRead, anyio.DelimiterNotFound, anyio.EndOfStream):
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        auth = next(
            (v.strip() for k, _, v in (h.partition(":") for h in lines[1:])
             if k.lower() == "proxy-authorization"),
            "",
        )  # fmt: skip
        if method != "CONNECT" or auth != f"Basic {expected}":
            await client.send(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
            return
        host, _, port = target.rpartition(":")
        async with await anyio.connect_tcp(host, int(port)) as upstream:
            await client.send(b"HTTP/1.1 200 Connection established\r\n\r\n")
            async with anyio.create_task_group() as tg:
                tg.start_soon(_pipe, upstream, client)
                await _pipe(buffered, upstream)
                tg.cancel_scope.cancel()


@asynccontextmanager
async def http_connect_proxy(
    user: str = "tenant8",
    password: str = "http-s3cret",  # noqa: S107 - a test proxy's password
) -> AsyncIterator[HttpProxy]:
    """An HTTP CONNECT proxy on 127.0.0.1 (a free port) until the block ends."""
    expected = base64.b64encode(f"{user}:{password}".encode()).decode()
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        port = listener.extra(SocketAttribute.local_port)  # noqa: S610 - anyio, not Django

        async def handle(client: SocketStream) -> None:
            await _serve(client, expected)

        tg.start_soon(listener.serve, handle)
        yield HttpProxy(port, user, password)
        tg.cancel_scope.cancel()
