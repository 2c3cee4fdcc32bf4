"""The supervisor: one-for-one restarts with backoff, give-up per tenant, idle actors leave."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from cryptography.fernet import Fernet, MultiFernet

from actors.login import (
    ActorDeps,
    CommandReply,
    Envelope,
    Mail,
    Mailbox,
    Start,
    refuse_mail,
    run_actor,
)
from actors.supervision import BackoffPolicy, TenantSupervisor
from actors.telegram import FakeTelegram
from actors.vault import MemorySessionVault
from events import ActorRestarted, Authorized, ChainKey, LoginFailed, MemoryEventLog, QrIssued

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """Virtual wall and monotonic time; ``sleep`` jumps forward and records the delay."""

    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return (self.now - T0).total_seconds()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += timedelta(seconds=max(seconds, 0.0))
        await anyio.lowlevel.checkpoint()


def actor_deps(clock: Clock, log: MemoryEventLog) -> tuple[ActorDeps, FakeTelegram]:
    telegram = FakeTelegram(clock=clock.wall)
    deps = ActorDeps(
        log=log,
        telegram=telegram,
        vault=MemorySessionVault(MultiFernet([Fernet(Fernet.generate_key())])),
        clock=clock.wall,
        sleep=clock.sleep,
        random=lambda: 0.5,
    )
    return deps, telegram


def harness(clock: Clock) -> tuple[MemoryEventLog, FakeTelegram, TenantSupervisor[Mail]]:
    log = MemoryEventLog(ChainKey(b"s" * 32))
    deps, telegram = actor_deps(clock, log)

    async def runner(
        tenant: str, send: MemoryObjectSendStream[Mail], receive: MemoryObjectReceiveStream[Mail]
    ) -> None:
        await run_actor(tenant, Mailbox(send, receive), deps)

    supervisor = TenantSupervisor[Mail](
        runner,
        event_log=log,
        clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.5,
        backoff=BackoffPolicy(),
        refuse=refuse_mail,
    )
    return log, telegram, supervisor


async def start(supervisor: TenantSupervisor[Mail], tenant: str) -> CommandReply:
    answered = anyio.Event()
    replies: list[CommandReply] = []

    def reply(answer: CommandReply) -> None:
        replies.append(answer)
        answered.set()

    supervisor.submit(tenant, Envelope(Start(), reply))
    await answered.wait()
    return replies[0]


async def test_crash_loop_backs_off_then_gives_up_while_others_log_in() -> None:
    """Six crashes within 60 s: five ActorRestarted on the backoff schedule, then
    LoginFailed(crashed); another tenant logs in normally meanwhile."""
    clock = Clock()
    log, telegram, supervisor = harness(clock)
    telegram.fail_next("auth.exportLoginToken", RuntimeError("boom"), times=6)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            assert (await start(supervisor, "crashy")).ok
            while not any(
                isinstance(r.event, LoginFailed) for r in await log.read_tenant("crashy")
            ):
                await anyio.lowlevel.checkpoint()
            assert (await start(supervisor, "calm")).ok
            while not (calm := await log.read_tenant("calm")) or not any(
                isinstance(r.event, QrIssued) for r in calm
            ):
                await anyio.lowlevel.checkpoint()
            telegram.scan(tenant="calm", user_id=42)
            while not any(isinstance(r.event, Authorized) for r in await log.read_tenant("calm")):
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()

    events = [r.event for r in await log.read_tenant("crashy")]
    restarts = [e for e in events if isinstance(e, ActorRestarted)]
    assert [e.restart for e in restarts] == [1, 2, 3, 4, 5]
    # min(30, 0.5 * 2**n) * (1 + 0.2 * 0.5)
    assert [e.delay_s for e in restarts] == [0.55, 1.1, 2.2, 4.4, 8.8]
    assert all(e.error == "RuntimeError" for e in restarts)
    failed = [e for e in events if isinstance(e, LoginFailed)]
    assert [e.reason for e in failed] == ["crashed"]
    assert supervisor.statistics().gave_up == 1
    assert telegram.statistics().open_clients == 0


async def test_idle_actor_leaves_and_the_next_command_brings_it_back() -> None:
    """An actor whose tenant rests returns; the next command starts it again from the log."""
    clock = Clock()
    log, telegram, supervisor = harness(clock)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            assert (await start(supervisor, "alice")).state == "pending"
            while not any(isinstance(r.event, QrIssued) for r in await log.read_tenant("alice")):
                await anyio.lowlevel.checkpoint()
            telegram.scan(tenant="alice", user_id=7)
            while supervisor.statistics().live_actors:
                await anyio.lowlevel.checkpoint()
            again = await start(supervisor, "alice")
            assert again.state == "authorized"
            tg.cancel_scope.cancel()
