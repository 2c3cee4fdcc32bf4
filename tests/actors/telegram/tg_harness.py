"""Harnesses that script a TelegramPort implementation through the simulator's verbs: the
in-process fake, and the Telethon adapter against a running simulator over loopback TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.lowlevel

# Imported, not probed: a simulator that fails to import fails these tests, never skips them.
from actors.sim import Simulator, SimulatorError
from actors.telegram import (
    SIMULATOR_API_HASH,
    SIMULATOR_API_ID,
    FakeTelegram,
    ScanError,
    TelegramPort,
    TelethonTelegram,
)

TTL = 20.0  # short enough that advancing a simulator's clock past it stays within
# Telethon's tolerance for server message times (30 s)


@dataclass
class Clock:
    """A settable clock shared by a harness and its Telegram."""

    now: float = field(default_factory=time.time)

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)


class Harness:
    """What the contract tests see of one implementation."""

    name: str
    port: TelegramPort
    home_dc: int = 1
    ttl: float = TTL
    scan_error: type[Exception]

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.sleeps: list[float] = []

    async def record_sleep(self, seconds: float) -> None:
        """The adapter's injected sleep: records, never waits."""
        self.sleeps.append(seconds)
        await anyio.lowlevel.checkpoint()

    def now(self) -> datetime:
        return self.clock.utc()

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds

    def _telegram(self) -> Any:
        raise NotImplementedError

    def add_user(self, user_id: int, **kwargs: Any) -> None:
        self._telegram().add_user(user_id, **kwargs)

    def scan(self, *, url: str, user_id: int, **kwargs: Any) -> None:
        self._telegram().scan(url=url, user_id=user_id, **kwargs)

    def flood_next(self, method: str, seconds: int) -> None:
        self._telegram().flood_next(method, seconds)

    def fail_next(self, method: str) -> None:
        self._telegram().fail_next(method)

    def revoke(self, user_id: int) -> None:
        self._telegram().revoke(user_id)

    def open_count(self) -> int:
        raise NotImplementedError

    async def wait_closed(self) -> None:
        """Until every client is closed server-side (the simulator sees EOF a moment after
        the client's disconnect: spin on the event loop, no sleeping)."""
        with anyio.fail_after(5):
            while self.open_count():
                await anyio.lowlevel.checkpoint()


class FakeHarness(Harness):
    name = "fake"
    scan_error = ScanError

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.fake = FakeTelegram(token_ttl_s=TTL, clock=clock.utc)
        self.port = self.fake

    def _telegram(self) -> Any:
        return self.fake

    def open_count(self) -> int:
        return self.fake.statistics().open_clients


class SimHarness(Harness):
    name = "telethon+sim"

    def __init__(self, clock: Clock, sim: Simulator, scan_error: type[Exception]) -> None:
        super().__init__(clock)
        self.sim = sim
        self.scan_error = scan_error
        self.home_dc = sim.home_dc
        sim.register_with_telethon()
        host, port = sim.dc_address(sim.home_dc)
        # What TelethonTelegram.for_simulator builds, with a sleep that records.
        self.port = TelethonTelegram(
            api_id=SIMULATOR_API_ID,
            api_hash=SIMULATOR_API_HASH,
            dc=(sim.home_dc, host, port),
            throttle_s=(0.0, 0.0),
            sleep=self.record_sleep,
        )

    def _telegram(self) -> Any:
        return self.sim

    def open_count(self) -> int:
        return int(self.sim.statistics().open_connections)


def telethon_tasks() -> list[asyncio.Task[Any]]:
    """Live asyncio tasks running Telethon code (should be none once clients are closed)."""
    found = []
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        if code is not None and "telethon" in code.co_filename:
            found.append(task)
    return found


@asynccontextmanager
async def simulator_harness(clock: Clock) -> AsyncIterator[SimHarness]:
    """A simulator serving on loopback for the block's duration."""
    sim = Simulator(token_ttl_s=TTL, clock=clock)
    async with anyio.create_task_group() as tg:
        await tg.start(sim.run)
        yield SimHarness(clock, sim, SimulatorError)
        tg.cancel_scope.cancel()
