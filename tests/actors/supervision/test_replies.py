"""Exactly one reply per command: on a crash, on give-up, on shutdown, and after a timeout."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from actors.login import (
    CommandReply,
    Envelope,
    Logout,
    Mail,
    Mailbox,
    Start,
    refuse_mail,
    run_actor,
)
from actors.supervision import BackoffPolicy, TenantSupervisor
from events import Authorized, ChainKey, LoginStarted, MemoryEventLog, QrIssued

from .test_supervisor import Clock, actor_deps, harness, start

pytestmark = pytest.mark.anyio


class Replies:
    """Collects every reply per envelope (a second reply to one envelope fails the test)."""

    def __init__(self) -> None:
        self.got: dict[int, list[CommandReply]] = {}
        self.changed = anyio.Event()

    def envelope(self, command: Start | Logout, key: int) -> Envelope:
        self.got[key] = []

        def reply(answer: CommandReply) -> None:
            self.got[key].append(answer)
            self.changed.set()
            self.changed = anyio.Event()

        return Envelope(command, reply)

    async def until(self, count: int) -> None:
        while sum(len(v) for v in self.got.values()) < count:
            await self.changed.wait()


def test_an_envelope_is_answered_once_and_an_expired_one_never_runs() -> None:
    """claim/answer/expire: the first answer wins; expire only before the claim."""
    got: list[CommandReply] = []
    queued = Envelope(Start(), got.append)
    assert queued.expire("t", "too late")
    assert not queued.claim()  # answered while it waited: the actor must not run it
    assert not queued.answer(CommandReply(ok=True, tenant="t"))
    running = Envelope(Start(), got.append)
    assert running.claim()
    assert not running.expire("t", "too late")  # running: its own answer will come
    assert running.answer(CommandReply(ok=True, tenant="t"))
    assert not running.refuse("t", "unavailable", "again")
    assert [r.ok for r in got] == [False, True]
    assert got[0].error_code == "unavailable"


def always_crashing(log: MemoryEventLog, clock: Clock) -> TenantSupervisor[Mail]:
    async def runner(
        tenant: str, send: MemoryObjectSendStream[Mail], receive: MemoryObjectReceiveStream[Mail]
    ) -> None:
        raise RuntimeError("boom")

    return TenantSupervisor[Mail](
        runner,
        event_log=log,
        clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.5,
        backoff=BackoffPolicy(),
        refuse=refuse_mail,
    )


async def test_give_up_answers_every_queued_command() -> None:
    """An actor that crashes on every start: after give-up each queued command gets one
    ``unavailable`` reply."""
    clock = Clock()
    log = MemoryEventLog(ChainKey(b"s" * 32))
    supervisor = always_crashing(log, clock)
    replies = Replies()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            for key in range(3):
                supervisor.submit("crashy", replies.envelope(Start(), key))
            await replies.until(3)
            tg.cancel_scope.cancel()
    assert supervisor.statistics().gave_up == 1
    for answers in replies.got.values():
        assert [(r.ok, r.error_code) for r in answers] == [(False, "unavailable")]
        assert "crashed too often" in (answers[0].message or "")


async def test_shutdown_answers_queued_commands() -> None:
    """Cancelling the supervisor answers what its actors never took."""
    clock = Clock()
    log = MemoryEventLog(ChainKey(b"s" * 32))
    started = anyio.Event()

    async def stuck(
        tenant: str, send: MemoryObjectSendStream[Mail], receive: MemoryObjectReceiveStream[Mail]
    ) -> None:
        started.set()
        await anyio.sleep_forever()

    supervisor = TenantSupervisor[Mail](
        stuck,
        event_log=log,
        clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=clock.sleep,
        random=lambda: 0.5,
        refuse=refuse_mail,
    )
    replies = Replies()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            supervisor.submit("alice", replies.envelope(Start(), 0))
            supervisor.submit("alice", replies.envelope(Start(), 1))
            await started.wait()
            tg.cancel_scope.cancel()
    for answers in replies.got.values():
        assert [(r.ok, r.error_code) for r in answers] == [(False, "unavailable")]
        assert "stopping" in (answers[0].message or "")


async def test_a_crash_answers_the_command_in_flight() -> None:
    """A bug while a logout runs: that logout gets ``unavailable``, the actor restarts and the
    next logout works."""
    clock = Clock()
    log, telegram, supervisor = harness(clock)
    replies = Replies()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            assert (await start(supervisor, "alice")).ok
            while not any(isinstance(r.event, QrIssued) for r in await log.read_tenant("alice")):
                await anyio.lowlevel.checkpoint()
            telegram.scan(tenant="alice", user_id=7)
            while not any(isinstance(r.event, Authorized) for r in await log.read_tenant("alice")):
                await anyio.lowlevel.checkpoint()
            telegram.fail_next("auth.logOut", RuntimeError("boom"))
            supervisor.submit("alice", replies.envelope(Logout(), 0))
            await replies.until(1)
            supervisor.submit("alice", replies.envelope(Logout(), 1))
            await replies.until(2)
            tg.cancel_scope.cancel()
    assert [(r.ok, r.error_code) for r in replies.got[0]] == [(False, "unavailable")]
    assert [(r.ok, r.state) for r in replies.got[1]] == [(True, "logged_out")]
    assert supervisor.statistics().restarts == 1


async def test_a_command_that_timed_out_during_a_restart_never_runs() -> None:
    """The gateway gives up on a command while the actor waits out its restart delay: the
    restarted actor skips it, so it never runs and is answered once."""
    clock = Clock()
    log = MemoryEventLog(ChainKey(b"s" * 32))
    deps, _ = actor_deps(clock, log)
    replies = Replies()
    envelope = replies.envelope(Start(), 0)
    runs = [0]

    async def crash_once(
        tenant: str, send: MemoryObjectSendStream[Mail], receive: MemoryObjectReceiveStream[Mail]
    ) -> None:
        runs[0] += 1
        if runs[0] == 1:
            raise RuntimeError("boom")
        await run_actor(tenant, Mailbox(send, receive), deps)

    async def restart_delay(seconds: float) -> None:
        envelope.expire("alice", "no answer in time; it was not run")  # the gateway's timeout
        await clock.sleep(seconds)

    supervisor = TenantSupervisor[Mail](
        crash_once,
        event_log=log,
        clock=clock.wall,
        monotonic=clock.monotonic,
        sleep=restart_delay,
        random=lambda: 0.5,
        refuse=refuse_mail,
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(supervisor.run)
            supervisor.submit("alice", envelope)
            await replies.until(1)
            while runs[0] < 2 or supervisor.statistics().live_actors:
                await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()
    assert [(r.ok, r.error_code) for r in replies.got[0]] == [(False, "unavailable")]
    assert not any(isinstance(r.event, LoginStarted) for r in await log.read_tenant("alice"))
