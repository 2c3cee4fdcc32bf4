"""Debian's ``microsocks`` on loopback, started by a test: a real SOCKS5 proxy with a password.

``make test`` installs it (apt, as root). A missing binary fails the test with one line saying
how to install it: a skip would hide that the proxy path went untested.
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
import pytest

__all__ = ["OUTGOING", "Socks", "microsocks"]

#: microsocks binds its outgoing connections here, so the simulator sees them come from it.
OUTGOING = "127.0.0.2"
_READY_WITHIN_S = 10.0


@dataclass(frozen=True)
class Socks:
    port: int
    user: str
    password: str

    def url(self, password: str | None = None) -> str:
        secret = self.password if password is None else password
        return f"socks5://{self.user}:{secret}@127.0.0.1:{self.port}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@asynccontextmanager
async def microsocks(
    user: str = "tenant7",
    password: str = "s3cret-proxy",  # noqa: S107 - a test proxy's password
) -> AsyncIterator[Socks]:
    """A running ``microsocks -u USER -P PASS`` on 127.0.0.1 (a free port), stopped on exit."""
    binary = shutil.which("microsocks")
    if binary is None:
        pytest.fail("microsocks is missing: run `make test` as root, or apt-get install microsocks")
    port = _free_port()
    args = [binary, "-i", "127.0.0.1", "-p", str(port), "-u", user, "-P", password, "-b", OUTGOING]
    async with await anyio.open_process(args) as process:
        try:
            # It prints nothing when ready: connect until it accepts (bounded, a few ms apart).
            with anyio.fail_after(_READY_WITHIN_S):
                while True:
                    try:
                        stream = await anyio.connect_tcp("127.0.0.1", port)
                    except OSError:
                        await anyio.sleep(0.01)
                        continue
                    await stream.aclose()
                    break
            yield Socks(port, user, password)
        finally:
            process.terminate()
