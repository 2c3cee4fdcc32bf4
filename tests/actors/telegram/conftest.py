"""Fixtures of the Telegram tests: a settable clock, a running simulator, and the ``harness``
that runs each contract test once per TelegramPort implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .tg_harness import Clock, FakeHarness, Harness, SimHarness, simulator_harness


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def running_sim(clock: Clock) -> AsyncIterator[SimHarness]:
    async with simulator_harness(clock) as harness:
        yield harness


@pytest.fixture(params=["fake", "telethon+sim"])
async def harness(request: pytest.FixtureRequest, clock: Clock) -> AsyncIterator[Harness]:
    """Each contract test runs once per implementation."""
    if request.param == "fake":
        yield FakeHarness(clock)
    else:
        async with simulator_harness(clock) as sim_harness:
            yield sim_harness
