"""Fixtures for the simulator tests: a running simulator and real Telethon clients on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from telethon import TelegramClient
from telethon.sessions import StringSession

from actors.sim import Simulator

from ._support import API_HASH, API_ID, FakeClock, OpenClient


@pytest.fixture(autouse=True)
def _reset_telethon_config() -> Iterator[None]:
    # help.getConfig is cached on the TelegramClient class: never leak DC ports between tests.
    TelegramClient._config = None
    yield
    TelegramClient._config = None


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def sim(clock: FakeClock) -> AsyncIterator[Simulator]:
    simulator = Simulator(dc_ids=(1, 2), token_ttl_s=30.0, clock=clock)
    simulator.register_with_telethon()
    async with anyio.create_task_group() as tg:
        await tg.start(simulator.run)
        yield simulator
        assert not _telethon_tasks(), "a Telethon client was left connected"
        tg.cancel_scope.cancel()


def _telethon_tasks() -> list[asyncio.Task[Any]]:
    """Unfinished tasks running Telethon code (a client that was not disconnected)."""
    current = asyncio.current_task()
    leaked = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if task is not current and not task.done() and code and "telethon" in code.co_filename:
            leaked.append(task)
    return leaked


@pytest.fixture
def open_client(sim: Simulator) -> OpenClient:
    """``async with open_client(session=..., dc_id=..., **kwargs) as client``: a connected
    Telethon client, disconnected on exit (checked: none of its tasks survive)."""

    @asynccontextmanager
    async def _open(
        session: str | None = None, dc_id: int | None = None, **kwargs: Any
    ) -> AsyncIterator[TelegramClient]:
        string_session = StringSession(session)
        if session is None:
            dc = sim.home_dc if dc_id is None else dc_id
            string_session.set_dc(dc, *sim.dc_address(dc))
        options: dict[str, Any] = {
            "flood_sleep_threshold": 0,
            "raise_last_call_error": True,
            "retry_delay": 0,
            "request_retries": 0,
        }
        options.update(kwargs)
        client = TelegramClient(string_session, API_ID, API_HASH, **options)
        try:
            await client.connect()
            yield client
        finally:
            await client.disconnect()
        handles = [
            client._updates_handle,
            client._keepalive_handle,
            client._sender._send_loop_handle,
            client._sender._recv_loop_handle,
        ]
        assert all(handle is None or handle.done() for handle in handles)

    return _open
