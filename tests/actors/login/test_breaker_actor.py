"""The login actor and an open Telegram breaker (FakeTelegram, virtual clock): a new ``start``
is refused with ``unavailable`` + ``retry_after_s`` and stores nothing; an attempt already
running waits the breaker out within its deadline (no dial meanwhile), or ends once the wait
would pass its deadline."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace

import anyio
import pytest

from actors.login import Start, run_actor
from actors.telegram import BreakerOpenError, Device, FakeTelegram, Proxy, TelegramClientPort
from events import LoginFailed, QrIssued

from .test_actor import TENANT, Rig

pytestmark = pytest.mark.anyio


class Tripped:
    """FakeTelegram behind a breaker that refuses the first ``refusals`` connections."""

    def __init__(self, fake: FakeTelegram, refusals: int, retry_after_s: float) -> None:
        self.fake = fake
        self.refusals = refusals
        self.retry_after_s = retry_after_s
        self.refused = 0

    def open_client(
        self,
        tenant: str,
        session: str | None = None,
        *,
        device: Device | None = None,
        proxy: Proxy | None = None,
    ) -> AbstractAsyncContextManager[TelegramClientPort]:
        if self.refused < self.refusals:
            self.refused += 1
            raise BreakerOpenError(2, self.retry_after_s)
        return self.fake.open_client(tenant, session, device=device, proxy=proxy)


async def run(rig: Rig, telegram: Tripped, gate: Callable[[], None] | None = None) -> None:
    deps = replace(rig.deps, telegram=telegram, telegram_gate=gate)
    with anyio.fail_after(5):
        await run_actor(TENANT, rig.mailbox, deps)


async def test_a_start_is_refused_while_the_dc_is_down() -> None:
    """The gate says the DC is down: unavailable with retry_after_s; nothing stored or dialled."""
    rig = Rig()

    def gate() -> None:
        raise BreakerOpenError(2, 7.5)

    rig.command(Start())
    await run(rig, Tripped(rig.fake, 0, 0), gate)
    reply = rig.replies[0].to_json()
    assert reply["ok"] is False
    assert reply["error"]["code"] == "unavailable"
    assert reply["error"]["retry_after_s"] == 7.5
    assert await rig.events() == []
    assert rig.fake.statistics().exports == 0


async def test_a_running_attempt_waits_the_breaker_out() -> None:
    """Refused twice (3 s each): the attempt sleeps 3 s twice, then connects and shows a QR."""
    rig = Rig()
    telegram = Tripped(rig.fake, 2, 3.0)
    rig.on(QrIssued, lambda _: rig.send.close())  # stop once the QR is out
    rig.command(Start())
    await run(rig, telegram)
    assert telegram.refused == 2
    assert rig.clock.slept[:2] == [3.0, 3.0]
    kinds = await rig.kinds()
    assert "QrIssued" in kinds
    assert "LoginFailed" not in kinds


async def test_an_attempt_ends_when_the_wait_would_pass_its_deadline() -> None:
    """A breaker open for longer than the attempt has left: LoginFailed(telegram_unavailable)
    at once, after one refused connection (no retry loop)."""
    rig = Rig()
    telegram = Tripped(rig.fake, 100, 10_000.0)
    rig.command(Start())
    await run(rig, telegram)
    last = (await rig.events())[-1]
    assert isinstance(last, LoginFailed)
    assert last.reason == "telegram_unavailable"
    assert telegram.refused == 1
    assert rig.clock.slept == []
